#!/bin/sh
# lavapipe: dcce354 (before this session's dispatch changes) against 8864aaa (the count in
# the channels' dispatch, the running update in the finalize and one-pass kernels, no
# chan[C + c] write there), alternating processes, 6 rounds, the shapes; then 2
# rounds of 8864aaa with --per-dispatch.
C="--case 32x64x28x28:NCHW --case 16x32x64x64:NCHW --case 16x32x64x64:NHWC --case 64x256x7x7:NCHW --case 2x1000000:NC"
for r in 1 2 3 4 5 6; do for b in dcce354 8864aaa; do
  echo "== round $r $b"
  WGPU_BACKEND=vulkan /tmp/lvp3/bench-$b --reps 10 --warmup 2 $C 2>&1 | grep -E "adapter|fwd|back"
done; done > lavapipe.log 2>&1
for r in 1 2; do
  echo "== round $r per-dispatch"
  WGPU_BACKEND=vulkan /tmp/lvp3/bench-8864aaa --reps 10 --warmup 2 --per-dispatch $C 2>&1 | grep -v XDG
done > per-dispatch.log 2>&1
