#!/bin/sh
# One command on a GPU machine with PyTorch (CUDA): times this crate and PyTorch on the same
# suite, same card, one after the other, and joins the figures into a speedup table.
#
#   benches/compare.sh [--quick] [OUT_DIR]        (OUT_DIR defaults to target/bench)
#
# BENCH_BIN names a prebuilt `bench` example binary (built elsewhere with
# `cargo build --release --example bench`); without it the script builds one.
# WGPU_BACKEND picks the wgpu backend as usual (vulkan on NVIDIA).
set -eu
quick=""
if [ "${1:-}" = "--quick" ]; then
    quick="--quick"
    shift
fi
out=${1:-target/bench}
mkdir -p "$out"
bin=${BENCH_BIN:-}
if [ -z "$bin" ]; then
    cargo build --release --example bench
    bin=target/release/examples/bench
fi
"$bin" $quick --json "$out/wgpu.json"
python3 "$(dirname "$0")/pytorch_bn.py" $quick --json "$out/torch.json"
python3 "$(dirname "$0")/join.py" "$out/wgpu.json" "$out/torch.json" | tee "$out/speedup.md"
