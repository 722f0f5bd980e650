#!/bin/bash
# Before and after this session on the CPU adapters, as landed: /tmp/bench-head (319a69a,
# the last session's HEAD) against /tmp/bench-ea2 (ea28d30), lavapipe 3 rounds, llvmpipe 3.
C="--case 32x64x28x28:NCHW --case 16x32x64x64:NCHW --case 64x256x7x7:NCHW --case 4096x256:NC --case 16x32x64x64:NHWC"
for i in 1 2 3; do
  for api in vulkan gl; do for b in head ea2; do
    echo "== round $i $api-$b"
    WGPU_BACKEND=$api timeout 600 /tmp/bench-$b --reps 10 --warmup 2 $C 2>&1 | grep -v XDG
  done; done
done
