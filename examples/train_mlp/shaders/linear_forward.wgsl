// y = x W^T + b, as torch.nn.Linear: x is (rows, inputs), W (outputs, inputs), y (rows, outputs).
@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if i >= dims.rows * dims.outputs {
        return;
    }
    let r = i / dims.outputs;
    let o = i % dims.outputs;
    var acc = 0.0;
    for (var k = 0u; k < dims.inputs; k++) {
        acc += x[r * dims.inputs + k] * w[o * dims.inputs + k];
    }
    y[i] = acc + b[o];
}
