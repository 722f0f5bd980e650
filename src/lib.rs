//! # wgpu-batchnorm
//!
//! Batch normalization (Ioffe & Szegedy, 2015) for GPU training code on any wgpu backend,
//! with PyTorch's semantics: training and eval forward, backward (grad input, gamma, beta),
//! running statistics, every layout of BatchNorm1d/2d/3d plus channels-last.
//!
//! [`BatchNormLayer`] is the layer training code uses, like `torch.nn.BatchNorm2d`: it owns
//! its parameters, running statistics and gradients on the GPU, records into the caller's
//! encoder on the caller's tensors, and loads and saves PyTorch checkpoints
//! ([`Checkpoint`], safetensors). Below it, [`BatchNorm`] is the slice-level API: it builds
//! its pipelines once on a borrowed [`wgpu::Device`]; its
//! [`forward`](BatchNorm::forward) and [`backward`](BatchNorm::backward) record into the
//! caller's [`wgpu::CommandEncoder`] on the caller's buffer slices and never submit, poll or
//! read back. [`BatchNorm::forward_host`] and [`BatchNorm::backward_host`] are a small
//! blocking layer over host slices, and [`HeadlessGpu`] opens a device without a window.
//! [`reference`](mod@reference) is the f64 CPU reference the tests check every GPU result against, and
//! [`fold`] folds an eval-mode layer into the linear or convolution layer before it.
//!
//! ```no_run
//! use wgpu_batchnorm::{BatchNorm, BatchNormConfig, HeadlessGpu, HostRunningStats, Mode, TensorShape};
//!
//! let gpu = HeadlessGpu::open()?;
//! let bn = BatchNorm::new(&gpu.device, BatchNormConfig::new(3))?;
//! let shape = TensorShape::channels_first(&[2, 3, 4, 4])?;
//! let x: Vec<f32> = (0..shape.numel()).map(|i| i as f32).collect();
//! let (gamma, beta) = (vec![1.0; 3], vec![0.0; 3]);
//! let mut running = HostRunningStats::new(3);
//! let out = bn.forward_host(&gpu.queue, Mode::Train, &shape, &x, Some((&gamma, &beta)), Some(&mut running))?;
//! assert_eq!(out.y.len(), x.len());
//! # Ok::<(), wgpu_batchnorm::BatchNormError>(())
//! ```

#![warn(missing_docs)]

mod batchnorm;
mod blocking;
mod buffers;
mod collective;
mod config;
mod device;
mod error;
pub mod fold;
mod kernels;
mod layer;
mod limits;
mod pipelines;
mod profiler;
pub mod reference;
mod shape;
mod stats;
mod sums;

pub use batchnorm::{
    AffineGrads, AffineParams, BackwardBuffers, BatchNorm, Dispatch, ForwardBuffers, KernelPath,
    ReduceBuffers, RunningStats, SavedStats, Tuning,
};
pub use blocking::{HostBackward, HostForward, HostRunningStats};
pub use buffers::{
    UPLOAD_USAGES, read_f16, read_f16_async, read_f32, read_f32_async, upload_f16, upload_f32,
};
#[cfg(feature = "mpi")]
pub use collective::MpiCollective;
pub use collective::{Collective, ThreadGroup};
pub use config::{
    BatchNormConfig, DType, Epilogue, Mode, MomentumConvention, Reduction, VarianceConvention,
};
pub use device::{HeadlessGpu, USEFUL_FEATURES};
pub use error::{BatchNormError, Result};
pub use fold::{FoldParams, Folded, WeightLayout, fold_into_preceding};
pub use layer::{
    BatchNormLayer, Checkpoint, GradMode, LayerState, PopulationStats, SyncBatchNormLayer,
};
pub use limits::minimum_limits;
pub use pipelines::pipelines_built;
pub use profiler::{DispatchProfiler, DispatchTime, MAX_PROFILED_DISPATCHES};
pub use shape::{Layout, MAX_ELEMENTS, TensorShape};
pub use stats::ChannelStats;
pub use sums::BackwardSums;

/// The README's Rust snippets, compiled as doctests so they stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
