// dx = dy W: dx is (rows, inputs), dy (rows, outputs).
@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if i >= dims.rows * dims.inputs {
        return;
    }
    let r = i / dims.inputs;
    let k = i % dims.inputs;
    var acc = 0.0;
    for (var o = 0u; o < dims.outputs; o++) {
        acc += dy[r * dims.outputs + o] * w[o * dims.inputs + k];
    }
    dx[i] = acc;
}
