set -u
OUTD=${OUT:-/tmp/o}; mkdir -p $OUTD
source bench/gpu/env.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem,power.limit --format=csv | tee $OUTD/card.txt
which nvcc || ls /usr/local/cuda*/bin/nvcc
timeout 120 nvcc -O3 -std=c++17 -arch=sm_90a -Xptxas -v -o /tmp/sm_stream bench/gpu/sm_stream.cu > $OUTD/build.log 2>&1; echo build rc=$?
grep -i error $OUTD/build.log | head
timeout 200 /tmp/sm_stream 64 5 2>&1 | tee $OUTD/sm_stream.txt | grep -v '^{'
