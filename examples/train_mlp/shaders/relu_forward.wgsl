// y = max(x, 0) for the network without batch norm (with it, the layer fuses the ReLU);
// NaN stays NaN, as torch.relu.
@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if i >= dims.rows * dims.outputs {
        return;
    }
    let v = x[i];
    y[i] = select(v, 0.0, v < 0.0);
}
