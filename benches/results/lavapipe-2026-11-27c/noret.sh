#!/bin/bash
# The vec4 kernels' two loops as if / else if (no early return) against 1407b05 (early
# returns), both at 8 vec4s per invocation, lavapipe.
C="--case 16x32x64x64:NHWC --case 4096x256:NC --case 32x64x28x28:NCHW --case 16x32x64x64:NCHW"
for i in 1 2 3; do for b in ret noret; do
  echo "== round $i $b"
  WGPU_BACKEND=vulkan timeout 600 /tmp/bench-$b --reps 10 --warmup 2 --vec4 8 $C 2>&1 | grep -v XDG
done; done
