#!/bin/bash
C="--case 32x64x28x28:NCHW --case 4096x256:NC"
for i in 1 2 3 4 5; do for b in 9e9 head2; do echo "== round $i $b"; WGPU_BACKEND=vulkan timeout 300 /tmp/bench-$b --reps 15 --warmup 3 $C 2>&1 | grep -v XDG; done; done
