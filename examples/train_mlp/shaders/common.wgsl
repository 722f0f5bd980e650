// Shared by every kernel of the training example (prepended to each file).

// A batch's sizes: `rows` samples, a layer's `inputs` and `outputs` (`outputs` is the class
// count for the loss kernels).
struct Dims {
    rows: u32,
    inputs: u32,
    outputs: u32,
    _pad: u32,
}

// What changes from one submission to the next: the first entry of the batch in the order
// buffer, and the slot of the loss and accuracy records.
struct Step {
    offset: u32,
    slot: u32,
    _pad0: u32,
    _pad1: u32,
}
