#!/bin/sh
# llvmpipe (GL): dcce354 against 8864aaa, alternating processes, 4 rounds, the shapes.
C="--case 32x64x28x28:NCHW --case 16x32x64x64:NCHW --case 16x32x64x64:NHWC --case 64x256x7x7:NCHW --case 2x1000000:NC"
for r in 1 2 3 4; do for b in dcce354 8864aaa; do
  echo "== round $r $b"
  WGPU_BACKEND=gl /tmp/lvp3/bench-$b --reps 10 --warmup 2 $C 2>&1 | grep -E "adapter|fwd|back"
done; done > llvmpipe.log 2>&1
