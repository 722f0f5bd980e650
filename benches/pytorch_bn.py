#!/usr/bin/env python3
"""PyTorch side of the batch-norm comparison.

Times torch.nn.functional.batch_norm (f32, PyTorch's defaults: momentum 0.1, eps 1e-5,
affine, running statistics) on the suite of `examples/bench/` with CUDA events, and writes
JSON in the same form, for `benches/join.py`:

    python3 benches/pytorch_bn.py --json target/bench/torch.json [--quick] [--reps N]

Passes: fwd-train (training forward, updates the running statistics), fwd-eval (eval
forward), backward (the training forward's autograd backward: grad input, weight and
bias, with `retain_graph` so the forward is not timed). Each figure is the median of
`--reps` repetitions after `--warmup`, each between two CUDA events; inputs rotate over
enough sets that their bytes exceed 256 MiB, as in the Rust benchmark. The streaming
baseline is `y.copy_(x)` on the same bytes (read + write, 2B).

`--device cpu` runs the same code on the CPU with a host clock: a smoke test of the script
where there is no GPU, not a comparison.
"""

import argparse
import datetime
import json
import subprocess
import time

import torch
import torch.nn.functional as F

FULL = [
    ((32, 64, 112, 112), "NCHW"),
    ((32, 64, 112, 112), "NHWC"),
    ((64, 256, 56, 56), "NCHW"),
    ((64, 256, 56, 56), "NHWC"),
    ((256, 2048, 7, 7), "NCHW"),
    ((256, 2048, 7, 7), "NHWC"),
    ((16, 32, 256, 256), "NCHW"),
    ((16, 32, 256, 256), "NHWC"),
    ((4096, 4096), "NC"),
    ((1, 1000000, 2), "NCHW"),
    ((2, 1000000), "NC"),
    ((1, 262144, 64), "NCHW"),
    ((64, 262144), "NC"),
]
QUICK = [
    ((8, 16, 32, 32), "NCHW"),
    ((8, 16, 32, 32), "NHWC"),
    ((16, 128, 7, 7), "NCHW"),
    ((16, 128, 7, 7), "NHWC"),
    ((512, 256), "NC"),
    ((1, 20000, 2), "NCHW"),
    ((2, 20000), "NC"),
]
PASSES = [("fwd-train", 3), ("fwd-eval", 2), ("backward", 5)]
ROTATE_BYTES = 256 << 20


def parse_case(text):
    dims, _, layout = text.partition(":")
    if layout not in ("NCHW", "NHWC", "NC"):
        raise SystemExit(f"--case {text!r}: layout must be NCHW, NHWC or NC")
    return tuple(int(d) for d in dims.split("x")), layout


def tensor(shape, layout, mean, std, device):
    t = torch.randn(shape, device=device) * std + mean
    if layout == "NHWC":
        t = t.contiguous(memory_format=torch.channels_last)
    return t


def median_ms(fn, sets, reps, warmup, device, warm_up_s=0.3):
    # At least `warmup` calls and `warm_up_s` seconds, as the wgpu bench (1 s for a case's
    # first figure, 0.3 s otherwise): a GPU lowers its clocks while the host prepares a case.
    started = time.perf_counter()
    i = 0
    while i < warmup or time.perf_counter() - started < warm_up_s:
        fn(i % sets)
        i += 1
        if device != "cpu" and i % max(warmup, 1) == 0:
            torch.cuda.synchronize()
    if device == "cpu":
        times = []
        for i in range(reps):
            start = time.perf_counter()
            fn(i % sets)
            times.append((time.perf_counter() - start) * 1e3)
        times.sort()
        return times[len(times) // 2]
    torch.cuda.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    for i in range(reps):
        starts[i].record()
        fn(i % sets)
        ends[i].record()
    torch.cuda.synchronize()
    times = sorted(s.elapsed_time(e) for s, e in zip(starts, ends))
    return times[len(times) // 2]


def driver_version():
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip().splitlines()[0]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small shapes")
    ap.add_argument("--reps", type=int, default=0)
    ap.add_argument("--warmup", type=int, default=0)
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument(
        "--device",
        default="cuda",
        choices=["cuda", "cpu"],
        help="cpu: a smoke test of this script without a GPU (host clock), not a comparison",
    )
    ap.add_argument(
        "--case",
        action="append",
        default=[],
        help="DIMS:LAYOUT, e.g. 8x64x56x56:NHWC (repeatable; replaces the suite)",
    )
    args = ap.parse_args()
    reps = args.reps or (15 if args.quick else 100)
    warmup = args.warmup or (3 if args.quick else 10)
    dev = args.device
    if dev == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this script times PyTorch on a CUDA GPU")
    torch.manual_seed(1)
    suite = [parse_case(c) for c in args.case] or (QUICK if args.quick else FULL)
    device_name = (
        torch.cuda.get_device_name() if dev == "cuda" else "CPU (smoke test, host clock)"
    )
    driver = driver_version() if dev == "cuda" else ""
    print(
        f"device: {device_name}, driver {driver}, "
        f"torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}"
    )
    rows = []
    for shape, layout in suite:
        c = shape[1]
        numel = 1
        for d in shape:
            numel *= d
        nbytes = 4 * numel
        sets = min(max(-(-ROTATE_BYTES // nbytes), 2), 16)
        xs = [tensor(shape, layout, 0.5, 2.0, dev) for _ in range(sets)]
        dys = [tensor(shape, layout, 0.0, 1.0, dev) for _ in range(sets)]
        outs = [torch.empty_like(x) for x in xs]
        weight = torch.randn(c, device=dev) * 0.2 + 1.0
        bias = torch.randn(c, device=dev) * 0.2
        rmean = torch.zeros(c, device=dev)
        rvar = torch.ones(c, device=dev)

        stream_ms = median_ms(lambda s: outs[s].copy_(xs[s]), sets, reps, warmup, dev, 1.0)

        def train(s):
            F.batch_norm(xs[s], rmean, rvar, weight, bias, training=True)

        def evaluate(s):
            F.batch_norm(xs[s], rmean, rvar, weight, bias, training=False)

        leaves = [x.detach().requires_grad_() for x in xs]
        w = weight.detach().requires_grad_()
        b = bias.detach().requires_grad_()
        graphs = [F.batch_norm(x, rmean, rvar, w, b, training=True) for x in leaves]

        def backward(s):
            torch.autograd.grad(graphs[s], (leaves[s], w, b), dys[s], retain_graph=True)

        for (name, times), fn in zip(PASSES, [train, evaluate, backward]):
            ms = median_ms(fn, sets, reps, warmup, dev)
            gbps = times * nbytes / (ms * 1e6)
            stream_gbps = 2 * nbytes / (stream_ms * 1e6)
            row = {
                "shape": list(shape),
                "layout": layout,
                "pass": name,
                "bytes": times * nbytes,
                "ms": ms,
                "gbps": gbps,
                "stream_ms": stream_ms,
                "stream_pct": 100 * gbps / stream_gbps,
            }
            rows.append(row)
            print(
                f"{str(list(shape)):>20} {layout:<4} {name:<9} {ms:9.4f} ms {gbps:7.1f} GB/s "
                f"{row['stream_pct']:5.1f}% of copy ({stream_gbps:.1f} GB/s)"
            )
        del xs, dys, outs, leaves, graphs
        if dev == "cuda":
            torch.cuda.empty_cache()

    doc = {
        "impl": f"PyTorch {torch.__version__} (cuDNN {torch.backends.cudnn.version()})",
        "device": device_name,
        "driver": driver,
        "backend": f"CUDA {torch.version.cuda}" if dev == "cuda" else "CPU",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "commit": "",
        "reps": reps,
        "warmup": warmup,
        "protocol": "repetitions back to back between CUDA events"
        if dev == "cuda"
        else "host clock per repetition",
        "results": rows,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
