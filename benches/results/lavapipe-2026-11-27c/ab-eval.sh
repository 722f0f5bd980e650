#!/bin/bash
# A/B of the vec4 elementwise loop (HEAD 319a69a against the whole-sample stride), each at
# 4 and 16 vec4s per invocation; /tmp/bench-head and /tmp/bench-new are the two builds.
C="--case 16x32x64x64:NCHW --case 32x64x28x28:NCHW --case 16x32x64x64:NHWC --case 4096x256:NC"
for i in 1 2 3; do for b in head new; do for v in 4 16; do
  echo "== round $i $b-v$v"
  WGPU_BACKEND=vulkan timeout 300 /tmp/bench-$b --reps 10 --warmup 2 --vec4 $v $C 2>&1 | grep -v XDG
done; done; done
