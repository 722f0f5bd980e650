#!/bin/bash
# scalar elementwise passes: elements per invocation, on the 7x7 shape (scalar kernels)
for i in 1 2 3; do for s in 1 4 16; do echo "== round $i s$s"; WGPU_BACKEND=vulkan timeout 300 /tmp/bench-tun --reps 10 --warmup 2 --scalar $s --case 64x256x7x7:NCHW --case 32x64x14x14:NHWC --case 8x30x33x33:NCHW 2>&1 | grep -v XDG; done; done
# merge width on the row shapes
for i in 1 2 3; do for w in 1 256; do echo "== round $i w$w"; WGPU_BACKEND=vulkan timeout 300 /tmp/bench-tun --reps 10 --warmup 2 --stats --merge-width $w --case 16x32x64x64:NHWC --case 4096x256:NC --case 16x32x64x64:NCHW 2>&1 | grep -v XDG; done; done
