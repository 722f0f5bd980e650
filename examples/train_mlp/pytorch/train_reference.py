"""PyTorch's run of the training example's model, for examples/train_mlp's check.

Reads inputs.safetensors (written by `cargo run --release --example train_mlp --
--export-pytorch examples/train_mlp/pytorch/inputs.safetensors`: the wine data, the split,
the batch order of the first 100 steps and the initial linear weights), trains
Linear(11, 64) -> [BatchNorm1d] -> ReLU -> Linear(64, 64) -> [BatchNorm1d] -> ReLU ->
Linear(64, 6) with cross-entropy and SGD (momentum 0.9) on the CPU, and writes each step's
loss to losses.csv: per configuration (names as the example's) one column in float32 and one
(`_f64`) in float64 from the same inputs. The float64 run shows how far float32 training can be
followed at all: where PyTorch's own float32 run leaves its float64 run, rounding differences
have grown into different trajectories, and no float32 implementation can be expected to
follow another beyond that step.

    python3 examples/train_mlp/pytorch/train_reference.py
"""

import os

import torch
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIGS = [
    (f"{'bn' if bn else 'plain'}_lr{lr}", bn, lr) for bn in (False, True) for lr in (0.01, 0.1, 1.0)
]


def model(inputs, batch_norm):
    layers = []
    for i, (fan_in, fan_out) in enumerate([(11, 64), (64, 64), (64, 6)]):
        linear = torch.nn.Linear(fan_in, fan_out)
        with torch.no_grad():
            linear.weight.copy_(inputs[f"fc{i + 1}.weight"])
            linear.bias.copy_(inputs[f"fc{i + 1}.bias"])
        layers.append(linear)
        if i < 2:
            if batch_norm:
                layers.append(torch.nn.BatchNorm1d(fan_out))
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def losses(inputs, batch_norm, lr):
    net = model(inputs, batch_norm).train()
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    features, labels = inputs["features"], inputs["labels"]
    out = []
    for batch in inputs["order"]:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(features[batch]), labels[batch])
        loss.backward()
        optimizer.step()
        out.append(loss.item())
    return out


def main():
    torch.set_num_threads(1)
    inputs = load_file(os.path.join(HERE, "inputs.safetensors"))
    inputs64 = {k: v.double() if v.is_floating_point() else v for k, v in inputs.items()}
    columns, names = [], []
    for name, bn, lr in CONFIGS:
        columns.append(losses(inputs, bn, lr))
        torch.set_default_dtype(torch.float64)
        columns.append(losses(inputs64, bn, lr))
        torch.set_default_dtype(torch.float32)
        names += [name, f"{name}_f64"]
    with open(os.path.join(HERE, "losses.csv"), "w") as f:
        f.write("step," + ",".join(names) + "\n")
        for step, row in enumerate(zip(*columns)):
            f.write(f"{step + 1}," + ",".join(repr(v) for v in row) + "\n")
    print(f"torch {torch.__version__}: wrote losses.csv ({len(columns[0])} steps)")


if __name__ == "__main__":
    main()
