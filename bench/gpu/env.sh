# Source on the GPU machine: NCCL shim (cudarc loads libnccl.so; point it at torch's pip NCCL),
# NVRTC and headers from the pip CUDA 13 wheels, NVLink multicast off.
SP=$(python3 -c 'import site;print(site.getsitepackages()[0])')
mkdir -p /tmp/shim && ln -sf "$SP/nvidia/nccl/lib/libnccl.so.2" /tmp/shim/libnccl.so
export LD_LIBRARY_PATH=/tmp/shim:$SP/nvidia/cu13/lib:$SP/nvidia/nccl/lib:${LD_LIBRARY_PATH:-}
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
if [ -f "$SP/nvidia/cu13/include/cuda_bf16.h" ]; then export DCP_CUDA_INCLUDE=$SP/nvidia/cu13/include;
elif [ -f /usr/local/cuda/include/cuda_bf16.h ]; then export DCP_CUDA_INCLUDE=/usr/local/cuda/include; fi
export PYTHONUNBUFFERED=1
DCP=${DCP:-target/release/dcp}
