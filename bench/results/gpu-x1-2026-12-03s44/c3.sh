set -u
source bench/gpu/env.sh
nvcc -O3 -std=c++17 -arch=sm_90a -Xptxas -v -o /tmp/sm_stream bench/gpu/sm_stream.cu > /tmp/b.log 2>&1; echo build rc=$?; grep -i "error" /tmp/b.log | head; grep -A2 "dsm_mini" /tmp/b.log | grep -i "spill\|Used" | head -10
timeout 120 /tmp/sm_stream 64 5 mini 2>&1 | grep -v '^{'
