// The batch's mean loss and correct count into the step's slot, summed by one invocation
// over the rows in order: the same sum on every run.
@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<uniform> step: Step;
@group(0) @binding(2) var<storage, read> row_loss: array<f32>;
@group(0) @binding(3) var<storage, read> row_correct: array<u32>;
@group(0) @binding(4) var<storage, read_write> losses: array<f32>;
@group(0) @binding(5) var<storage, read_write> correct: array<u32>;

@compute @workgroup_size(1)
fn main() {
    var total = 0.0;
    var hits = 0u;
    for (var r = 0u; r < dims.rows; r++) {
        total += row_loss[r];
        hits += row_correct[r];
    }
    losses[step.slot] = total / f32(dims.rows);
    correct[step.slot] = hits;
}
