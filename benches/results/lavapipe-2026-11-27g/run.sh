#!/bin/sh
# lavapipe, dcce354 (kernels as at bd9d6fe), the shapes: 8 rounds for percent of
# stream, then 3 rounds with --per-dispatch (each dispatch's median).
C="--case 32x64x28x28:NCHW --case 16x32x64x64:NCHW --case 16x32x64x64:NHWC --case 64x256x7x7:NCHW --case 2x1000000:NC"
for r in 1 2 3 4 5 6 7 8; do
  echo "== round $r dcce354"
  WGPU_BACKEND=vulkan /tmp/lvp2/bench-dcce354 --reps 10 --warmup 2 $C 2>&1 | grep -E "adapter|fwd|back"
done > lavapipe.log 2>&1
for r in 1 2 3; do
  echo "== round $r per-dispatch"
  WGPU_BACKEND=vulkan /tmp/lvp2/bench-dcce354 --reps 10 --warmup 2 --stats --per-dispatch $C 2>&1 | grep -v XDG
done > per-dispatch.log 2>&1
