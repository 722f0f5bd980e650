#!/bin/bash
# One device run, everything built beforehand by `benches/device_prepare.sh` (nothing is
# built here): on the lent GPU machine, from the repository root,
#
#   bash benches/device_run.sh NAME [STEPS]
#
# STEPS, comma-separated (default tests,compare,dispatch,eval, and ab where
# .bin/bench-base exists):
#   tests     the unit tests and the whole suite on the GPU (about 45 s on an H200);
#   compare   benches/compare.sh: this crate and PyTorch on the full suite, speedup table
#             (about 100 s);
#   dispatch  bench --per-dispatch --stats on the rows slower than PyTorch in the last run:
#             each dispatch's median time (about 30 s); DISPATCH_CASES replaces its
#             `--case` arguments (e.g. small shapes for a dry run on lavapipe);
#   ab        the same rows, .bin/bench (this commit) and .bin/bench-base (the BASE given
#             to device_prepare.sh) in alternating processes, AB_ROUNDS rounds (default
#             3), medians table (about 2 min on an H200 for the 8 rows).
#   eval      the eval forward in one dispatch (`normalize_vec4_eval`, the GPU table entry)
#             against two (`--eval-recomputes 0`: `eval_coeffs` first), .bin/bench in
#             alternating processes, AB_ROUNDS rounds, on the rows whose vec4 pass keeps
#             its channels (EVAL_CASES replaces them); about 80 s.
# Results go to /tmp/NAME and, as NAME.tgz, to $OUT (the device tool brings that back):
# summary.txt, the logs, the JSON, a clock log (nvidia-smi every 100 ms). A short table ends
# the output. Keep the whole call under the device's time left.
set -u
name=${1:?usage: device_run.sh NAME [STEPS]}
default=tests,compare,dispatch,eval
[ -x .bin/bench-base ] && default=$default,ab
steps=${2:-$default}
# The Vulkan loader, where the machine lacks it (unpacking over a system that has it could
# break it).
if ! ldconfig -p | grep -q libvulkan.so.1; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
fi
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f $icd ] && export VK_DRIVER_FILES=$icd
export WGPU_BACKEND=vulkan
commit=$(cat .bin/COMMIT)
R=/tmp/$name
mkdir -p "$R"
S=$R/summary.txt
echo "$name at $commit, $(date -u +%FT%TZ)" | tee "$S"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1 | tee -a "$S"
nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw --format=csv -lms 100 \
    > "$R/clocks.csv" 2>&1 &
smi=$!
has() { case ",$steps," in *",$1,"*) return 0 ;; esac; return 1; }

if has tests; then
    timeout 20 .bin/unit > "$R/unit.log" 2>&1
    echo "unit rc=$? $(grep 'test result' "$R/unit.log")" | tee -a "$S"
    timeout 120 .bin/suite > "$R/suite.log" 2>&1
    echo "suite rc=$? $(grep 'test result' "$R/suite.log")" | tee -a "$S"
    grep -E "FAILED|panicked" "$R/suite.log" | head -5 | tee -a "$S"
fi
if has compare; then
    t=$(date +%s)
    WGPU_BATCHNORM_COMMIT=$commit BENCH_BIN=.bin/bench timeout 200 \
        sh benches/compare.sh "$R/compare" > "$R/compare.log" 2>&1
    echo "compare rc=$? $(($(date +%s) - t)) s" | tee -a "$S"
fi
cases=${DISPATCH_CASES:-"--case 32x64x112x112:NHWC --case 64x256x56x56:NCHW \
    --case 64x256x56x56:NHWC --case 256x2048x7x7:NCHW --case 256x2048x7x7:NHWC \
    --case 16x32x256x256:NHWC --case 4096x4096:NC --case 64x262144:NC"}
if has dispatch; then
    t=$(date +%s)
    # shellcheck disable=SC2086 # the cases are separate arguments
    WGPU_BATCHNORM_COMMIT=$commit timeout 120 .bin/bench --reps 50 --warmup 5 --stats \
        --per-dispatch --json "$R/dispatch.json" $cases > "$R/dispatch.log" 2>&1
    echo "dispatch rc=$? $(($(date +%s) - t)) s" | tee -a "$S"
fi
if has ab; then
    t=$(date +%s)
    base=$(cat .bin/BASE)
    for r in $(seq "${AB_ROUNDS:-3}"); do
        for b in base head; do
            bin=.bin/bench
            [ $b = base ] && bin=.bin/bench-base
            echo "== round $r $b"
            # shellcheck disable=SC2086
            timeout 40 $bin --reps 50 --warmup 5 $cases 2>&1 | grep -v XDG_RUNTIME
        done
    done > "$R/ab.log" 2>&1
    echo "ab ($base -> $commit) $(($(date +%s) - t)) s" | tee -a "$S"
fi
eval_cases=${EVAL_CASES:-"--case 32x64x112x112:NCHW --case 32x64x112x112:NHWC \
    --case 64x256x56x56:NCHW --case 64x256x56x56:NHWC --case 16x32x256x256:NCHW \
    --case 16x32x256x256:NHWC --case 4096x4096:NC --case 64x262144:NC"}
if has eval; then
    t=$(date +%s)
    for r in $(seq "${AB_ROUNDS:-3}"); do
        for b in two one; do
            flag=""
            [ $b = two ] && flag="--eval-recomputes 0"
            echo "== round $r $b"
            # shellcheck disable=SC2086
            timeout 40 .bin/bench --reps 50 --warmup 5 $flag $eval_cases 2>&1 |
                grep -v XDG_RUNTIME
        done
    done > "$R/eval.log" 2>&1
    echo "eval (two dispatches -> one) $(($(date +%s) - t)) s" | tee -a "$S"
fi
kill $smi 2>/dev/null
cp benches/device_run.sh "$R/"
mkdir -p "${OUT:-/tmp}"
tar czf "${OUT:-/tmp}/$name.tgz" -C /tmp "$name"

echo "== clocks (MHz, count of samples: the two most frequent)"
awk -F, 'NR>1{print $2}' "$R/clocks.csv" | sort | uniq -c | sort -rn | head -2
if [ -f "$R/compare/speedup.md" ]; then
    echo "== against PyTorch"
    grep -E "geometric" "$R/compare/speedup.md"
    grep '^|' "$R/compare/speedup.md" | tail -n +3 | cut -d'|' -f2-7 | sed 's/  */ /g'
fi
if [ -f "$R/ab.log" ]; then
    echo "== base $(cat .bin/BASE) against head $commit (medians of ${AB_ROUNDS:-3} rounds)"
    python3 benches/medians.py "$R/ab.log" base head | sed 's/  */ /g'
fi
if [ -f "$R/eval.log" ]; then
    echo "== eval forward: eval_coeffs + normalize (two) against one pass (one), medians"
    python3 benches/medians.py "$R/eval.log" two one | grep -E "shape|fwd-eval" |
        sed 's/  */ /g'
fi
if [ -f "$R/dispatch.log" ]; then
    echo "== per dispatch"
    grep -vE "^(adapter|plan|protocol|wrote|error: XDG)" "$R/dispatch.log" | sed 's/  */ /g'
fi
