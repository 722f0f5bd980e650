#!/bin/bash
# burn 0.22.1 (benches/burn_peer, fusion and autotune on, its Vulkan adapter: lavapipe)
# against this crate (examples/bench --host-clock, HEAD binary /tmp/bench-peer), the speed
# issue's four shapes, host clock around each repetition and a wait for the device on both
# sides, 3 alternating rounds.
C="--case 32x64x28x28:NCHW --case 16x32x64x64:NCHW --case 64x256x7x7:NCHW --case 4096x256:NC"
B="--case 32x64x28x28 --case 16x32x64x64 --case 64x256x7x7 --case 4096x256"
for i in 1 2 3; do
  echo "== round $i ours"
  WGPU_BACKEND=vulkan timeout 600 /tmp/bench-peer --host-clock --reps 30 --warmup 3 $C 2>&1 | grep -v XDG
  echo "== round $i burn"
  timeout 900 ../../burn_peer/target/release/burn_peer --reps 30 --warmup 5 $B 2>&1 | grep -v XDG
done
