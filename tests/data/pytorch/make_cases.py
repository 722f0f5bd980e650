#!/usr/bin/env python3
"""PyTorch's own float32 error on ordinary batch-norm data, the yardstick of
`tests/suite/pytorch.rs`.

For each case below this draws x, dy, gamma and beta from a generator that the Rust test
reproduces bit for bit (`tests/suite/pytorch.rs`: splitmix64, 24-bit uniforms, the
Irwin-Hall sum of twelve of them as a normal-like value; only exact arithmetic, so
Python and Rust agree on every bit), runs PyTorch's batch norm in training mode (forward,
running-statistics update, backward) and in eval mode, once in float64 and once in
float32, and writes to `cases.json`:

- `f64`: PyTorch's float64 results, in full for the per-channel outputs (saved mean and
  invstd, running mean and variance, dgamma, dbeta) and as (L2 norm, sum) for y and dx,
  so that the test can check that the crate's f64 reference computes the same thing from
  the same data;
- `f32_error`: the relative L2 error of each of PyTorch's float32 outputs against its
  float64 outputs, ||y32 - y64|| / ||y64||.

The test requires each of the crate's outputs to be within max(2 x PyTorch's error, 1e-7)
of the crate's f64 reference.

    python3 -m venv /tmp/tv && /tmp/tv/bin/pip install torch numpy
    /tmp/tv/bin/python tests/data/pytorch/make_cases.py

Channels-last cases are given to PyTorch as (N, C, *S) tensors in `channels_last` memory
format (its channels-last kernels); (N, C) inputs have the channel innermost in both.
"""

import json
import os
import platform

import numpy as np
import torch

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
M1 = np.uint64(0xBF58476D1CE4E5B9)
M2 = np.uint64(0x94D049BB133111EB)


def splitmix64(seed, start, n):
    """Outputs start .. start + n of splitmix64 from `seed` (output i mixes seed + (i + 1) * golden)."""
    i = np.arange(start + 1, start + n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + i * GOLDEN
        z = (z ^ (z >> np.uint64(30))) * M1
        z = (z ^ (z >> np.uint64(27))) * M2
        z = z ^ (z >> np.uint64(31))
    return z


def normal_like(seed, n, loc, scale):
    """n values loc + scale * z as float32, z the sum of 12 uniforms on [0, 1) minus 6
    (mean 0, variance 1); the uniforms are the top 24 bits of splitmix64 / 2^24, so z is
    exact in f64 and only the final loc + scale * z rounds (once in f64, once to f32)."""
    u = (splitmix64(seed, 0, 12 * n) >> np.uint64(40)).astype(np.float64) / 16777216.0
    z = u.reshape(n, 12).sum(axis=1) - 6.0
    return (loc + scale * z).astype(np.float32)


# (name, dims as the crate sees them, layout, x loc, x scale, affine, seed)
CASES = [
    ("cf_8x16x32x32", [8, 16, 32, 32], "first", 0.01, 1.0, True, 1),
    ("cf_16x16x64x64", [16, 16, 64, 64], "first", 0.01, 1.0, True, 2),
    ("cf_4x3x64x64", [4, 3, 64, 64], "first", 0.01, 1.0, True, 3),
    ("cf_32x8x512", [32, 8, 512], "first", 0.01, 1.0, True, 4),
    ("cf_2x8x16x16x16", [2, 8, 16, 16, 16], "first", 0.01, 1.0, True, 5),
    ("cf_64x32x128", [64, 32, 128], "first", -0.01, 3.0, True, 6),
    ("cf_128x4x256", [128, 4, 256], "first", 0.01, 1.0, False, 7),
    ("cf_8x16x32x32_far", [8, 16, 32, 32], "first", 1000.0, 1.0, True, 8),
    ("cf_16x8x64x64_small", [16, 8, 64, 64], "first", 0.0, 0.001, True, 9),
    ("cf_8x16x32x32_offset", [8, 16, 32, 32], "first", -5.0, 0.1, True, 10),
    ("nc_8192x64", [8192, 64], "last", 0.01, 1.0, True, 11),
    ("nc_32768x4", [32768, 4], "last", 0.01, 1.0, True, 12),
    ("nc_16384x16_far", [16384, 16], "last", 1000.0, 1.0, True, 13),
    ("cl_8x32x32x16", [8, 32, 32, 16], "last", 0.01, 1.0, True, 14),
    ("cl_16x64x64x16", [16, 64, 64, 16], "last", 0.01, 1.0, True, 15),
    ("cl_4x64x64x8", [4, 64, 64, 8], "last", 0.01, 1.0, False, 16),
    ("cl_8x32x32x32_far", [8, 32, 32, 32], "last", 1000.0, 1.0, True, 17),
    ("cl_2x16x16x16x8", [2, 16, 16, 16, 8], "last", 0.01, 1.0, True, 18),
    ("cf_64x256x2", [64, 256, 2], "first", 0.01, 1.0, True, 19),
    ("cl_16x16x16x64_offset", [16, 16, 16, 64], "last", -5.0, 0.1, True, 20),
]

# The crate takes eps, momentum and the running statistics as f32: PyTorch gets the same
# values (0.1 as f32 is 0.100000001490116...), so that its float64 results are the exact
# results for the crate's inputs.
EPS = float(np.float32(1e-5))
MOMENTUM = float(np.float32(0.1))
EVAL_MEAN = float(np.float32(0.02))
EVAL_VAR = float(np.float32(0.9))


def to_torch(a, dims, layout, dtype):
    """The crate's memory order `a` as PyTorch's (N, C, *S) tensor."""
    t = torch.from_numpy(a.astype(np.float64)).to(dtype).reshape(dims)
    if layout == "last" and len(dims) > 2:
        # (N, *S, C) -> (N, C, *S): a view in PyTorch's channels-last memory format.
        perm = [0, len(dims) - 1] + list(range(1, len(dims) - 1))
        t = t.permute(perm)
    return t


def run(x, dy, gamma, beta, c, dtype, training):
    x = x.detach().clone().requires_grad_(True)
    w = gamma.to(dtype).detach().clone().requires_grad_(True) if gamma is not None else None
    b = beta.to(dtype).detach().clone().requires_grad_(True) if beta is not None else None
    rm = torch.zeros(c, dtype=dtype)
    rv = torch.ones(c, dtype=dtype)
    if not training:
        # Eval from running statistics that look like a previous batch's.
        rm = torch.full((c,), EVAL_MEAN, dtype=dtype)
        rv = torch.full((c,), EVAL_VAR, dtype=dtype)
    if training:
        y, save_mean, save_invstd = torch.native_batch_norm(x, w, b, rm, rv, True, MOMENTUM, EPS)
    else:
        y = torch.nn.functional.batch_norm(x, rm, rv, w, b, False, MOMENTUM, EPS)
    y.backward(dy)
    out = {"y": y, "dx": x.grad}
    if training:
        out.update(mean=save_mean, invstd=save_invstd, running_mean=rm, running_var=rv)
    if w is not None:
        out.update(dgamma=w.grad, dbeta=b.grad)
    return {k: v.detach().to(torch.float64) for k, v in out.items()}


def main():
    torch.set_num_threads(2)
    cases = []
    for name, dims, layout, loc, scale, affine, seed in CASES:
        c = dims[-1] if layout == "last" else dims[1]
        n = int(np.prod(dims))
        x = normal_like(4 * seed, n, loc, scale)
        dy = normal_like(4 * seed + 1, n, 0.0, 1.0)
        gamma = normal_like(4 * seed + 2, c, 1.0, 0.2) if affine else None
        beta = normal_like(4 * seed + 3, c, 0.0, 0.2) if affine else None
        for training in (True, False):
            if not training and seed % 4 != 1:
                continue  # eval only for a few cases: it is elementwise
            res = {}
            for dtype in (torch.float64, torch.float32):
                g = torch.from_numpy(gamma.astype(np.float64)) if affine else None
                bt = torch.from_numpy(beta.astype(np.float64)) if affine else None
                res[dtype] = run(
                    to_torch(x, dims, layout, dtype),
                    to_torch(dy, dims, layout, dtype),
                    g,
                    bt,
                    c,
                    dtype,
                    training,
                )
            r64, r32 = res[torch.float64], res[torch.float32]
            f64 = {}
            err = {}
            for k, v in r64.items():
                if k in ("y", "dx"):
                    f64[k] = {"l2": float(v.norm()), "sum": float(v.sum())}
                else:
                    f64[k] = [float(e) for e in v]
                err[k] = float((r32[k] - v).norm() / v.norm())
            cases.append(
                {
                    "name": name + ("" if training else "_eval"),
                    "dims": dims,
                    "layout": layout,
                    "x": {"seed": 4 * seed, "loc": loc, "scale": scale},
                    "dy": {"seed": 4 * seed + 1, "loc": 0.0, "scale": 1.0},
                    "gamma": {"seed": 4 * seed + 2, "loc": 1.0, "scale": 0.2} if affine else None,
                    "beta": {"seed": 4 * seed + 3, "loc": 0.0, "scale": 0.2} if affine else None,
                    "training": training,
                    "f64": f64,
                    "f32_error": err,
                }
            )
            print(name, "train" if training else "eval", {k: f"{v:.1e}" for k, v in err.items()})
    doc = {
        "generator": "tests/data/pytorch/make_cases.py",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "threads": torch.get_num_threads(),
        "eps": EPS,
        "momentum": MOMENTUM,
        "running_start": {"train": [0.0, 1.0], "eval": [EVAL_MEAN, EVAL_VAR]},
        "cases": cases,
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases.json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
