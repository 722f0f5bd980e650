// dx = dy where the ReLU's output was positive, else 0 (PyTorch's threshold_backward).
@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if i >= dims.rows * dims.outputs {
        return;
    }
    dx[i] = select(0.0, dy[i], y[i] > 0.0);
}
