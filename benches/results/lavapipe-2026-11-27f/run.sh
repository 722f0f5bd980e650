#!/bin/sh
# lavapipe, 5 alternating rounds: 4d53404 (before this session's changes) against 3c43e12
# (squares in blocks of four, wgpu's loop bounding off, one-pass forwards without the
# coefficient write), each binary built with `cargo build --release --example bench` at its
# commit. Table: python3 benches/medians.py lavapipe.log 4d53404 3c43e12
for r in 1 2 3 4 5; do for b in 4d53404 3c43e12; do
  echo "== round $r $b"
  WGPU_BACKEND=vulkan /tmp/bench-$b --reps 10 --warmup 2 --case 32x64x28x28:NCHW \
    --case 16x32x64x64:NCHW --case 16x32x64x64:NHWC --case 64x256x7x7:NCHW \
    --case 2x1000000:NC 2>&1 | grep -E "adapter|fwd|back"
done; done > lavapipe.log 2>&1
