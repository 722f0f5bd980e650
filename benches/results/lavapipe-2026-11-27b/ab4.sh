#!/bin/bash
C="--case 32x64x28x28:NCHW --case 16x32x64x64:NCHW --case 16x32x64x64:NHWC --case 64x256x7x7:NCHW --case 4096x256:NC"
for be in vulkan gl; do for i in 1 2 3; do for b in 9e9 head2; do echo "== round $i $be-$b"; WGPU_BACKEND=$be timeout 300 /tmp/bench-$b --reps 10 --warmup 2 $C 2>&1 | grep -v XDG; done; done; done
