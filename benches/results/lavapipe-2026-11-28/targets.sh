#!/bin/sh
# The targets at HEAD (the binary /tmp/base/bench-HEAD), on lavapipe and llvmpipe:
# 6 rounds each of the suite shapes larger than 4 MB and the speed issue's other shapes,
# `bench --reps 10 --warmup 2`; then this crate alone on burn's four shapes with the host
# clock (`--host-clock --reps 30 --warmup 3`, 3 rounds), the protocol of
# benches/results/burn-lavapipe-2026-11-27 (burn itself not rebuilt here).
C="--case 32x64x28x28:NCHW --case 16x32x64x64:NCHW --case 16x32x64x64:NHWC --case 64x256x7x7:NCHW --case 4096x256:NC"
for backend in vulkan gl; do
  for r in 1 2 3 4 5 6; do
    echo "== round $r $backend"
    WGPU_BACKEND=$backend /tmp/base/bench-HEAD --reps 10 --warmup 2 $C 2>&1 | grep -E "adapter|fwd|back"
  done
done > targets.log 2>&1
B="--case 32x64x28x28:NCHW --case 16x32x64x64:NCHW --case 64x256x7x7:NCHW --case 4096x256:NC"
for r in 1 2 3; do
  echo "== round $r ours"
  WGPU_BACKEND=vulkan /tmp/base/bench-HEAD --host-clock --reps 30 --warmup 3 $B 2>&1 | grep -E "adapter|fwd|back"
done > burn-rows.log 2>&1
# llvmpipe (GL): (2, 10^6), 258c594 against HEAD, 4 alternating rounds.
for r in 1 2 3 4; do for b in 258c594 HEAD; do
  echo "== round $r $b"
  WGPU_BACKEND=gl /tmp/base/bench-$b --reps 10 --warmup 2 --case 2x1000000:NC 2>&1 | grep -E "adapter|fwd|back"
done; done > llvmpipe-ab-eval.log 2>&1
