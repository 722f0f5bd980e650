#!/bin/bash
# (Ran on an H200: no H100 was free. Its folder was benches/results/h100-2026-11-27-run17 then.)
# Device run 17: candidate "new" = 4d53404 + squares summed in blocks of four in the statistics
# (shifted_push4) and the thin forward on shifted sums. Unit tests and the whole suite of the
# candidate; the full comparison with PyTorch ("new"); the full bench of 4d53404 ("head") and of
# the candidate with wgpu's loop bounding off ("noloop", BN_CHECKS, a diagnostic build) joined
# with the same PyTorch figures; then alternating processes, --stats: head, new, a (differences
# summed in plain blocks too: not exact enough, arithmetic bound only), noloop, none (all of
# wgpu's shader runtime checks off). Builds nothing. One tarball back.
set -u
for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig
J=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f $J ] && export VK_DRIVER_FILES=$J
export WGPU_BACKEND=vulkan
R=/tmp/r17; mkdir -p $R/new $R/head $R/noloop
S=$R/summary.txt
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $S
nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw --format=csv -lms 100 > $R/clocks.csv 2>&1 &
SMI=$!
t0=$(date +%s)
timeout 90 .bin/suite > $R/suite.log 2>&1; echo "suite rc=$? $(grep 'test result' $R/suite.log)" | tee -a $S
timeout 30 .bin/unit > $R/unit.log 2>&1; echo "unit rc=$? $(grep 'test result' $R/unit.log)" | tee -a $S
grep -E "FAILED|panicked" $R/suite.log | head -5 | tee -a $S
t1=$(date +%s)
WGPU_BATCHNORM_COMMIT=4d53404+blocks BENCH_BIN=.bin/bench-new timeout 170 sh benches/compare.sh $R/new > $R/new/compare.log 2>&1; echo "compare rc=$? $(( $(date +%s) - t1 )) s" | tee -a $S
t2=$(date +%s)
{
C="--case 32x64x112x112:NHWC --case 64x256x56x56:NCHW --case 256x2048x7x7:NCHW --case 4096x4096:NC --case 64x262144:NC"
for r in 1 2; do
  for b in head new a; do echo "== round $r $b"; timeout 40 .bin/bench-$b --reps 50 --stats $C; done
  for m in noloop none; do echo "== round $r $m"; BN_CHECKS=$m timeout 40 .bin/bench-nc --reps 50 --stats $C; done
done
} > $R/probes.log 2>&1
echo "probes $(( $(date +%s) - t2 )) s" | tee -a $S
t3=$(date +%s)
WGPU_BATCHNORM_COMMIT=4d53404 timeout 100 .bin/bench-head --json $R/head/wgpu.json > $R/head/bench.log 2>&1; echo "head bench rc=$? $(( $(date +%s) - t3 )) s" | tee -a $S
python3 benches/join.py $R/head/wgpu.json $R/new/torch.json > $R/head/speedup.md
t4=$(date +%s)
WGPU_BATCHNORM_COMMIT=4d53404+blocks+noloop BN_CHECKS=noloop timeout 100 .bin/bench-nc --json $R/noloop/wgpu.json > $R/noloop/bench.log 2>&1; echo "noloop bench rc=$? $(( $(date +%s) - t4 )) s" | tee -a $S
python3 benches/join.py $R/noloop/wgpu.json $R/new/torch.json > $R/noloop/speedup.md
echo "total $(( $(date +%s) - t0 )) s" | tee -a $S
kill $SMI
cp benches/results/h100-2026-11-27-run17/run17.sh $R/
tar czf $OUT/r17.tgz -C /tmp r17
for d in head new noloop; do echo "== $d $(grep -E "geometric" $R/$d/speedup.md)"; done
paste -d'|' <(grep '^|' $R/new/speedup.md | cut -d'|' -f2-7) <(grep '^|' $R/head/speedup.md | cut -d'|' -f5,7) <(grep '^|' $R/noloop/speedup.md | cut -d'|' -f5,7) | sed 's/  */ /g' | tail -n +3
python3 benches/medians.py $R/probes.log head new a noloop none | sed 's/  */ /g'
awk -F, 'NR>1{print $2}' $R/clocks.csv | sort | uniq -c | sort -rn | head -3
