#!/bin/sh
# lavapipe: 258c594 (eval = eval_coeffs + normalize) against the eval forward in one pass
# (normalize_eval / normalize_vec4_eval), alternating processes, 6 rounds: the issue's
# shapes, a scalar-kernel shape (7x7) and a vec4 shape whose invocations walk the channels
# (2 samples, fewer than vec4s per invocation).
C="--case 32x64x28x28:NCHW --case 16x32x64x64:NCHW --case 16x32x64x64:NHWC --case 64x256x7x7:NCHW --case 2x1000000:NC --case 2x64x128x128:NCHW"
for r in 1 2 3 4 5 6; do for b in 258c594 eval1; do
  echo "== round $r $b"
  WGPU_BACKEND=${BACKEND:-vulkan} /tmp/base/bench-$b --reps 10 --warmup 2 $C 2>&1 | grep -E "adapter|fwd|back"
done; done
