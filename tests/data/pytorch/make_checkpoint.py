#!/usr/bin/env python3
"""A small PyTorch checkpoint for `tests/suite/checkpoint.rs`, as a user's model would
save it: `safetensors.torch.save_file(model.state_dict(), ...)`.

The model holds five batch-norm layers that differ in what a loader must handle:

- `features.1`: BatchNorm2d(5), float32, trained 7 steps (running statistics moved);
- `features.3`: BatchNorm2d(4, affine=False), float16 running statistics;
- `block.bn`:   BatchNorm1d(3), bfloat16 parameters and statistics;
- `head.bn`:    BatchNorm1d(6), float64 parameters and statistics, num_batches_tracked set
  to 2^32 - 1 (the Rust test trains it past 2^32);
- `free.bn`:    BatchNorm2d(2, track_running_stats=False): weight and bias only.

Every layer's weight and bias are random (not PyTorch's 1 and 0), so loading them is seen.
`checkpoint.safetensors` holds the state dict; `checkpoint_io.safetensors` holds, per
layer, an input `{prefix}x` (float32) and PyTorch's eval-mode output `{prefix}y` computed
in float64 from the state as saved (the converted dtypes included), so that the test
compares the loaded layer's eval output with PyTorch's.

    python3 -m venv /tmp/tv && /tmp/tv/bin/pip install torch numpy safetensors
    /tmp/tv/bin/python tests/data/pytorch/make_checkpoint.py
"""

import os

import torch
from safetensors.torch import save_file

torch.manual_seed(20261126)
HERE = os.path.dirname(os.path.abspath(__file__))

layers = {
    "features.1": (torch.nn.BatchNorm2d(5), (6, 5, 3, 4), torch.float32),
    "features.3": (torch.nn.BatchNorm2d(4, affine=False), (4, 4, 2, 3), torch.float16),
    "block.bn": (torch.nn.BatchNorm1d(3), (8, 3, 5), torch.bfloat16),
    "head.bn": (torch.nn.BatchNorm1d(6), (10, 6), torch.float64),
    "free.bn": (torch.nn.BatchNorm2d(2, track_running_stats=False), (3, 2, 4, 4), torch.float32),
}

state = {}
io = {}
for prefix, (bn, shape, dtype) in layers.items():
    if bn.affine:
        with torch.no_grad():
            bn.weight.copy_(1.0 + 0.3 * torch.randn(bn.num_features))
            bn.bias.copy_(0.5 * torch.randn(bn.num_features))
    bn.train()
    for _ in range(7):
        bn(2.0 + 3.0 * torch.randn(shape))
    if prefix == "head.bn":
        bn.num_batches_tracked.fill_(2**32 - 1)
    sd = {k: v.clone() for k, v in bn.state_dict().items()}
    for k, v in sd.items():
        if v.is_floating_point():
            sd[k] = v.to(dtype)
    for k, v in sd.items():
        state[prefix + "." + k] = v.contiguous()

    # PyTorch's eval output in float64 from the state as saved.
    ref = type(bn)(bn.num_features, affine=bn.affine, track_running_stats=bn.track_running_stats)
    ref.load_state_dict({k: v.to(torch.float64) if v.is_floating_point() else v for k, v in sd.items()})
    ref = ref.double().eval()
    x = (2.0 + 3.0 * torch.randn(shape)).float()
    with torch.no_grad():
        y = ref(x.double())
    io[prefix + ".x"] = x.contiguous()
    io[prefix + ".y"] = y.contiguous()

save_file(state, os.path.join(HERE, "checkpoint.safetensors"))
save_file(io, os.path.join(HERE, "checkpoint_io.safetensors"))
for k, v in state.items():
    print(k, v.dtype, tuple(v.shape))
