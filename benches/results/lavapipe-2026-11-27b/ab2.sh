#!/bin/bash
C="--case 16x32x64x64:NHWC --case 4096x256:NC --case 16x32x64x64:NCHW"
for i in 1 2 3 4; do for b in f8e 3ff 80f; do echo "== round $i $b"; WGPU_BACKEND=vulkan timeout 300 /tmp/bench-$b --reps 10 --warmup 2 --stats $C 2>&1 | grep -v XDG; done; done
