#!/bin/bash
# Before and after this session on the CPU adapters: /tmp/bench-head (319a69a, the last
# session's HEAD) against /tmp/bench-final (31ed799), and 31ed799 with 16 vec4s per
# invocation (Tuning::vec4_per_invocation) on lavapipe.
C="--case 32x64x28x28:NCHW --case 16x32x64x64:NCHW --case 64x256x7x7:NCHW --case 4096x256:NC --case 16x32x64x64:NHWC"
for i in 1 2 3; do
  for b in head final; do
    echo "== round $i vk-$b"
    WGPU_BACKEND=vulkan timeout 600 /tmp/bench-$b --reps 10 --warmup 2 $C 2>&1 | grep -v XDG
  done
  echo "== round $i vk-final-v16"
  WGPU_BACKEND=vulkan timeout 600 /tmp/bench-final --reps 10 --warmup 2 --vec4 16 $C 2>&1 | grep -v XDG
  if [ $i -le 2 ]; then for b in head final; do
    echo "== round $i gl-$b"
    WGPU_BACKEND=gl timeout 600 /tmp/bench-$b --reps 10 --warmup 2 $C 2>&1 | grep -v XDG
  done; fi
done
