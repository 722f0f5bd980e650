#!/bin/sh
# lavapipe: the channel-first vec4 eval rows where every invocation keeps its channel,
# 258c594 against the one-pass eval, 8 alternating rounds with --per-dispatch.
C="--case 32x64x28x28:NCHW --case 16x32x64x64:NCHW"
for r in 1 2 3 4 5 6 7 8; do for b in 258c594 eval1; do
  echo "== round $r $b"
  WGPU_BACKEND=vulkan /tmp/base/bench-$b --reps 10 --warmup 2 --per-dispatch $C 2>&1 | grep -E "fwd-eval|normalize|eval_coeffs"
done; done
