#!/bin/sh
# lavapipe, 8 alternating rounds: 3c43e12 as committed (wgpu's loop bounding off) against
# the same source with RUNTIME_CHECKS = ShaderRuntimeChecks::checked() ("checked", loop
# bounding on), on the two rows where run.sh's medians had 3c43e12 slowest in eval.
# Table: python3 benches/medians.py loops.log checked 3c43e12
for r in 1 2 3 4 5 6 7 8; do for b in checked 3c43e12; do
  echo "== round $r $b"
  WGPU_BACKEND=vulkan /tmp/bench-$b --reps 10 --warmup 2 --case 32x64x28x28:NCHW \
    --case 16x32x64x64:NHWC 2>&1 | grep -E "adapter|fwd|back"
done; done > loops.log 2>&1
