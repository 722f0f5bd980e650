#!/bin/sh
# lavapipe: 258c594 (eval = eval_coeffs + normalize) against a4dbcf0 with the CPU table
# entry (one pass only where each channel's coefficients are computed once: here
# (2, 10^6)) and a4dbcf0 with the GPU entry forced (--eval-recomputes 1000000000: one pass
# wherever the vec4 pass keeps its channels), alternating processes, 6 rounds.
C="--case 32x64x28x28:NCHW --case 16x32x64x64:NCHW --case 16x32x64x64:NHWC --case 64x256x7x7:NCHW --case 2x1000000:NC --case 2x64x128x128:NCHW"
for r in 1 2 3 4 5 6; do
  for b in 258c594 a4dbcf0 a4dbcf0-gpu-rule; do
    echo "== round $r $b"
    case $b in
      *-gpu-rule) WGPU_BACKEND=vulkan /tmp/base/bench-a4dbcf0 --eval-recomputes 1000000000 --reps 10 --warmup 2 $C ;;
      *) WGPU_BACKEND=vulkan /tmp/base/bench-$b --reps 10 --warmup 2 $C ;;
    esac 2>&1 | grep -E "adapter|tuning|fwd|back"
  done
done
