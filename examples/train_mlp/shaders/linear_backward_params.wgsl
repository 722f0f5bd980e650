// dW = dy^T x and db = the column sums of dy (overwritten, not accumulated); the sums run
// over the rows in order, so the result is the same on every run.
@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> dw: array<f32>;
@group(0) @binding(4) var<storage, read_write> db: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    let weights = dims.outputs * dims.inputs;
    if i < weights {
        let o = i / dims.inputs;
        let k = i % dims.inputs;
        var acc = 0.0;
        for (var r = 0u; r < dims.rows; r++) {
            acc += dy[r * dims.outputs + o] * x[r * dims.inputs + k];
        }
        dw[i] = acc;
    } else if i < weights + dims.outputs {
        let o = i - weights;
        var acc = 0.0;
        for (var r = 0u; r < dims.rows; r++) {
            acc += dy[r * dims.outputs + o];
        }
        db[o] = acc;
    }
}
