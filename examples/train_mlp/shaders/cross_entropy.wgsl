// Softmax cross-entropy (torch.nn.functional.cross_entropy, mean over the batch): each
// sample's loss, whether its arg-max is its label, and the gradient of the mean loss with
// respect to the logits. `loss_reduce.wgsl` sums the losses.
@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(4) var<storage, read_write> row_loss: array<f32>;
@group(0) @binding(5) var<storage, read_write> row_correct: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let r = id.x;
    if r >= dims.rows {
        return;
    }
    let k = dims.outputs;
    let base = r * k;
    var m = logits[base];
    var best = 0u;
    for (var j = 1u; j < k; j++) {
        if logits[base + j] > m {
            m = logits[base + j];
            best = j;
        }
    }
    var s = 0.0;
    for (var j = 0u; j < k; j++) {
        s += exp(logits[base + j] - m);
    }
    let label = labels[r];
    row_loss[r] = log(s) + m - logits[base + label];
    row_correct[r] = select(0u, 1u, best == label);
    let scale = 1.0 / f32(dims.rows);
    for (var j = 0u; j < k; j++) {
        let p = exp(logits[base + j] - m) / s;
        dlogits[base + j] = (p - select(0.0, 1.0, j == label)) * scale;
    }
}
