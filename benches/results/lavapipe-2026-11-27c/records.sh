#!/bin/bash
# Tuning::invocation_records swept on one binary (9ae1435, /tmp/bench-rec): 0 is the
# record per workgroup of before, N a record per invocation where each gets >= N values.
C="--case 32x64x28x28:NCHW --case 16x32x64x64:NCHW --case 64x256x7x7:NCHW --case 4096x256:NC --case 16x32x64x64:NHWC"
for i in 1 2 3; do for v in 0 16 64 128; do
  echo "== round $i r$v"
  WGPU_BACKEND=vulkan timeout 600 /tmp/bench-rec --reps 10 --warmup 2 --stats --invocation-records $v $C 2>&1 | grep -v XDG
done; done
