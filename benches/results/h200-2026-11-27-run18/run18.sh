#!/bin/bash
# (Ran on an H200. Its folder was benches/results/gpu-2026-11-27-run18 then.)
# Device run 18: HEAD 1d88da2 (squares in blocks of four, wgpu's loop bounding off): unit
# tests, the whole suite, and the full comparison with PyTorch. Builds nothing. One tarball.
set -u
for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig
J=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f $J ] && export VK_DRIVER_FILES=$J
export WGPU_BACKEND=vulkan
R=/tmp/r18; mkdir -p $R/new
S=$R/summary.txt
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $S
nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw --format=csv -lms 100 > $R/clocks.csv 2>&1 &
SMI=$!
t0=$(date +%s)
timeout 80 .bin/suite > $R/suite.log 2>&1; echo "suite rc=$? $(grep 'test result' $R/suite.log)" | tee -a $S
timeout 20 .bin/unit > $R/unit.log 2>&1; echo "unit rc=$? $(grep 'test result' $R/unit.log)" | tee -a $S
grep -E "FAILED|panicked" $R/suite.log | head -5 | tee -a $S
t1=$(date +%s)
WGPU_BATCHNORM_COMMIT=1d88da2 BENCH_BIN=.bin/bench timeout 130 sh benches/compare.sh $R/new > $R/new/compare.log 2>&1; echo "compare rc=$? $(( $(date +%s) - t1 )) s" | tee -a $S
kill $SMI
cp benches/results/gpu-2026-11-27-run18/run18.sh $R/
tar czf $OUT/r18.tgz -C /tmp r18
grep -E "geometric" $R/new/speedup.md
grep '^|' $R/new/speedup.md | tail -n +3 | cut -d'|' -f2-7 | sed 's/  */ /g'
awk -F, 'NR>1{print $2}' $R/clocks.csv | sort | uniq -c | sort -rn | head -2
