// A batch gathered from the data set: x[r, f] = data[order[offset + r], f], and its labels.
@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<uniform> step: Step;
@group(0) @binding(2) var<storage, read> order: array<u32>;
@group(0) @binding(3) var<storage, read> data: array<f32>;
@group(0) @binding(4) var<storage, read> labels: array<u32>;
@group(0) @binding(5) var<storage, read_write> x: array<f32>;
@group(0) @binding(6) var<storage, read_write> y: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if i >= dims.rows * dims.inputs {
        return;
    }
    let r = i / dims.inputs;
    let f = i % dims.inputs;
    let sample = order[step.offset + r];
    x[i] = data[sample * dims.inputs + f];
    if f == 0u {
        y[r] = labels[sample];
    }
}
