#!/bin/bash
# Tuning::vec4_per_invocation 4, 8, 16 on 31ed799 (/tmp/bench-final), lavapipe, the three
# suite shapes above 4 MB, 4 alternating rounds.
C="--case 32x64x28x28:NCHW --case 16x32x64x64:NCHW --case 16x32x64x64:NHWC"
for i in 1 2 3 4; do for v in 4 8 16; do
  echo "== round $i v$v"
  WGPU_BACKEND=vulkan timeout 600 /tmp/bench-final --reps 10 --warmup 2 --vec4 $v $C 2>&1 | grep -v XDG
done; done
