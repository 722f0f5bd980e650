// SGD with momentum, as torch.optim.SGD (dampening 0, no weight decay, not Nesterov):
// v = momentum v + g; p = p - lr v. The velocity starts at 0, which gives PyTorch's first
// step (v = g).
struct Hyper {
    lr: f32,
    momentum: f32,
    _pad0: f32,
    _pad1: f32,
}

@group(0) @binding(0) var<uniform> hyper: Hyper;
@group(0) @binding(1) var<storage, read_write> p: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if i >= arrayLength(&p) {
        return;
    }
    let velocity = hyper.momentum * v[i] + g[i];
    v[i] = velocity;
    p[i] = p[i] - hyper.lr * velocity;
}
