#!/usr/bin/env python3
"""Joins the JSON of examples/bench/ (this crate) and benches/pytorch_bn.py (PyTorch)
into a Markdown speedup table, and checks the targets of the performance issue:

  - every shape x layout x pass at least as fast as PyTorch (speedup >= 1.0);
  - geometric-mean speedup over the suite >= 1.5;
  - tensors larger than L2 at >= 85% of the same-run streaming kernel's bandwidth
    (under the 3B / 2B / 5B byte counts).

    python3 benches/join.py target/bench/wgpu.json target/bench/torch.json [--l2-mib 50]

Prints the tables and one line per target, "met" or "MISSED" with the cases that miss.
Exits 0 either way (a missed target is a finding, not a failure of the script); exits 1 if
the two files do not cover the same cases.
"""

import argparse
import json
import math
import sys


def key(r):
    return (tuple(r["shape"]), r["layout"], r["pass"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ours", help="JSON of examples/bench/")
    ap.add_argument("theirs", help="JSON of benches/pytorch_bn.py")
    ap.add_argument(
        "--l2-mib",
        type=float,
        default=50.0,
        help="L2 size: tensors above it count for the bandwidth target (H100/H200: 50)",
    )
    args = ap.parse_args()
    with open(args.ours) as f:
        ours = json.load(f)
    with open(args.theirs) as f:
        theirs = json.load(f)
    mine = {key(r): r for r in ours["results"]}
    ref = {key(r): r for r in theirs["results"]}
    if set(mine) != set(ref):
        only = sorted(set(mine) ^ set(ref))
        print(f"the files cover different cases: {only}", file=sys.stderr)
        sys.exit(1)

    print(f"- this crate: {ours['impl']} at {ours['commit']}, {ours['backend']}, "
          f"{ours['device']}, driver {ours['driver']}, {ours['date']}, "
          f"median of {ours['reps']} after {ours['warmup']} warm-up, "
          f"{ours.get('protocol', 'one submission per repetition, waited for')}")
    print(f"- reference: {theirs['impl']}, {theirs['backend']}, {theirs['device']}, "
          f"driver {theirs['driver']}, {theirs['date']}, "
          f"median of {theirs['reps']} after {theirs['warmup']} warm-up, "
          f"{theirs.get('protocol', 'repetitions back to back between CUDA events')}")
    print()
    print("| shape | layout | pass | wgpu-batchnorm ms | PyTorch ms | speedup "
          "| wgpu-batchnorm GB/s | % of wgpu stream | PyTorch GB/s | % of torch copy |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    speedups = []
    slow = []
    below = []
    above_l2 = 0
    for k in [key(r) for r in ours["results"]]:
        a, b = mine[k], ref[k]
        s = b["ms"] / a["ms"]
        speedups.append(s)
        shape, layout, p = k
        tensor_mib = a["bytes"] / {"fwd-train": 3, "fwd-eval": 2, "backward": 5}[p] / 2**20
        if s < 1.0:
            slow.append(f"{list(shape)} {layout} {p} ({s:.2f}x)")
        above_l2 += tensor_mib > args.l2_mib
        if tensor_mib > args.l2_mib and a["stream_pct"] < 85.0:
            below.append(f"{list(shape)} {layout} {p} ({a['stream_pct']:.0f}%)")
        print(f"| {', '.join(map(str, shape))} | {layout} | {p} | {a['ms']:.3f} | {b['ms']:.3f} "
              f"| {s:.2f} | {a['gbps']:.1f} | {a['stream_pct']:.0f}% | {b['gbps']:.1f} "
              f"| {b['stream_pct']:.0f}% |")
    geo = math.exp(sum(math.log(s) for s in speedups) / len(speedups))
    print()
    print(f"geometric-mean speedup: {geo:.2f} over {len(speedups)} cases")
    print(f"- every case >= 1.0x: {'met' if not slow else 'MISSED: ' + '; '.join(slow)}")
    print(f"- geometric mean >= 1.5x: {'met' if geo >= 1.5 else f'MISSED ({geo:.2f}x)'}")
    if above_l2 == 0:
        verdict = "not measured (no tensor in this suite is larger than L2)"
    elif below:
        verdict = "MISSED: " + "; ".join(below)
    else:
        verdict = f"met ({above_l2} cases)"
    print(f"- tensors > {args.l2_mib:g} MiB at >= 85% of stream: {verdict}")


if __name__ == "__main__":
    main()
