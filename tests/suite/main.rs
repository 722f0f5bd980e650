//! The GPU test suite, one binary: every case runs against the f64 CPU reference on fresh
//! random data (the seed is printed; `WGPU_BATCHNORM_SEED` replays it), on one device per
//! run (`common::gpu`), and fails (never skips) when no adapter is found. One module per
//! subject; `common` holds the case builders and comparisons they share.
//! (`tests/no_adapter.rs` is a binary of its own: it changes the process environment.)

mod common;

mod buffers;
mod checkpoint;
mod conventions;
mod epilogue;
mod errors;
mod f16;
mod fold;
mod forward_backward;
mod host;
mod layer;
mod limits;
mod non_finite;
mod paths;
mod population;
mod profiler;
mod properties;
mod pytorch;
mod recording;
mod reliability;
mod running_paths;
mod statistics;
mod sync_backward;
mod sync_layer;
mod tuning;
