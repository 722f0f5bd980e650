#!/bin/bash
# MERGE_CHAIN alone: 9ae1435 (/tmp/bench-rec, forced to 64 values per invocation record)
# against 31ed799 (/tmp/bench-final, the same setting by default), lavapipe, --stats.
C="--case 32x64x28x28:NCHW --case 16x32x64x64:NCHW --case 4096x256:NC --case 16x32x64x64:NHWC"
for i in 1 2 3; do
  echo "== round $i tree"
  WGPU_BACKEND=vulkan timeout 600 /tmp/bench-rec --reps 10 --warmup 2 --stats --invocation-records 64 $C 2>&1 | grep -v XDG
  echo "== round $i chain"
  WGPU_BACKEND=vulkan timeout 600 /tmp/bench-final --reps 10 --warmup 2 --stats $C 2>&1 | grep -v XDG
done
