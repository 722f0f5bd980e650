#!/bin/bash
C="--case 32x64x28x28:NCHW --case 16x32x64x64:NCHW --case 16x32x64x64:NHWC --case 64x256x7x7:NCHW --case 4096x256:NC"
for i in 1 2 3 4; do for b in f8e 80f; do echo "== round $i $b"; WGPU_BACKEND=vulkan timeout 300 /tmp/bench-$b --reps 10 --warmup 2 --stats $C 2>&1 | grep -v XDG; done; done
