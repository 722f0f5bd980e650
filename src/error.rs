//! The crate's error type.

/// Everything that can go wrong in wgpu-batchnorm. Each variant carries the numbers that
/// were wrong, so the message says what was expected and what came.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BatchNormError {
    /// The shape has a rank the layout does not accept.
    #[error(
        "expected a tensor of rank {min} to {max} for {layout} layout, got rank {got} (shape {dims:?})"
    )]
    InvalidRank {
        /// The layout's name.
        layout: &'static str,
        /// Smallest rank accepted.
        min: usize,
        /// Largest rank accepted.
        max: usize,
        /// The rank given.
        got: usize,
        /// The shape given.
        dims: Vec<usize>,
    },
    /// An axis of the shape has extent zero.
    #[error("axis {axis} of shape {dims:?} has extent 0; every axis must be at least 1")]
    ZeroSizedAxis {
        /// Index of the empty axis.
        axis: usize,
        /// The shape given.
        dims: Vec<usize>,
    },
    /// The shape's channel extent differs from the batch-norm object's `num_features`.
    #[error("expected {expected} channels (num_features), the shape has {got}")]
    ChannelMismatch {
        /// `num_features` of the batch-norm object.
        expected: usize,
        /// The channel extent of the shape.
        got: usize,
    },
    /// Training (or batch statistics) with a single value per channel, as PyTorch refuses.
    #[error("Expected more than 1 value per channel when training, got input size {dims:?}")]
    TooFewValuesPerChannel {
        /// The shape given.
        dims: Vec<usize>,
    },
    /// The tensor has more elements than the kernels index (2^31 - 1), or, for an empty
    /// tensor (a zero-sized batch or spatial axis), its other axes multiply to more than
    /// that: the kernels' `(outer, C, inner)` view must fit their 32-bit indices either way.
    #[error(
        "the tensor {dims:?} has {} elements{}; at most {max} are supported{}",
        elements.map_or("more than 2^64".to_string(), |e| e.to_string()),
        if *empty { " in its non-zero axes" } else { "" },
        if *empty { ", also for an empty tensor" } else { "" }
    )]
    TooManyElements {
        /// The shape given.
        dims: Vec<usize>,
        /// Elements in the tensor, or for an empty tensor the product of its non-zero
        /// axes; `None` where that product exceeds `u64`.
        elements: Option<u64>,
        /// Whether the tensor is empty (an axis of size 0).
        empty: bool,
        /// Largest count supported.
        max: u64,
    },
    /// A buffer slice's size does not match what the shape needs.
    #[error("buffer `{name}`: expected {expected} bytes ({what}), the slice holds {got} bytes")]
    BufferSize {
        /// Which buffer.
        name: &'static str,
        /// Bytes needed.
        expected: u64,
        /// Bytes in the slice.
        got: u64,
        /// How `expected` was computed.
        what: String,
    },
    /// A buffer slice's offset is not a multiple of the device's storage offset alignment.
    #[error(
        "buffer `{name}`: offset {offset} is not a multiple of the device's min_storage_buffer_offset_alignment {alignment}"
    )]
    MisalignedOffset {
        /// Which buffer.
        name: &'static str,
        /// The slice's offset.
        offset: u64,
        /// The device's `min_storage_buffer_offset_alignment`.
        alignment: u32,
    },
    /// A buffer lacks `BufferUsages::STORAGE`.
    #[error("buffer `{name}` was created without BufferUsages::STORAGE (usage {usage:?})")]
    MissingStorageUsage {
        /// Which buffer.
        name: &'static str,
        /// The usages it has.
        usage: wgpu::BufferUsages,
    },
    /// A binding is larger than the device allows.
    #[error("buffer `{name}`: {bytes} bytes exceed the device's {limit_name} of {limit} bytes")]
    ExceedsLimit {
        /// Which buffer.
        name: &'static str,
        /// Bytes the binding needs.
        bytes: u64,
        /// Which limit.
        limit_name: &'static str,
        /// The limit's value.
        limit: u64,
    },
    /// A buffer the configuration and mode need was not given.
    #[error("buffer `{name}` is required: {why}")]
    MissingBuffer {
        /// Which buffer.
        name: &'static str,
        /// Why it is needed.
        why: &'static str,
    },
    /// A buffer was given that the configuration and mode do not use.
    #[error("buffer `{name}` was given but is not used: {why}")]
    UnexpectedBuffer {
        /// Which buffer.
        name: &'static str,
        /// Why it is not used.
        why: &'static str,
    },
    /// An output slice overlaps another slice of the same call.
    #[error(
        "buffer `{output}` (written) overlaps buffer `{other}` in the same buffer; outputs must not alias other bindings"
    )]
    Overlap {
        /// The written buffer.
        output: &'static str,
        /// The buffer it overlaps.
        other: &'static str,
    },
    /// A host slice's length does not match the shape.
    #[error("host slice `{name}`: expected {expected} values, got {got}")]
    HostLength {
        /// Which slice.
        name: &'static str,
        /// Values expected.
        expected: usize,
        /// Values given.
        got: usize,
    },
    /// A weight to fold does not hold a whole number of values per output channel.
    #[error("weight holds {len} values, not a positive multiple of the {channels} output channels")]
    WeightShape {
        /// Values in the weight.
        len: usize,
        /// Output channels (the batch norm's channel count).
        channels: usize,
    },
    /// [`crate::VarianceConvention::convert`] for batches of fewer than 2 values per
    /// channel, where the factor `count / (count - 1)` is undefined.
    #[error(
        "converting a running variance between the biased and unbiased conventions needs batches of at least 2 values per channel (the factor is count / (count - 1)), got {count}"
    )]
    ConversionCount {
        /// The count given.
        count: usize,
    },
    /// A layer made for one input rank (as PyTorch's BatchNorm1d/2d/3d) got another.
    #[error("{layer} expects {expected}, got shape {dims:?}")]
    LayerRank {
        /// The layer kind, e.g. `BatchNorm2d`.
        layer: &'static str,
        /// The ranks it accepts, in words.
        expected: &'static str,
        /// The shape given.
        dims: Vec<usize>,
    },
    /// [`crate::BatchNormLayer::backward`] before any forward of the layer: there is no
    /// forward to differentiate.
    #[error("backward of layer `{label}` needs a forward of that layer first")]
    NoForward {
        /// The layer's label.
        label: String,
    },
    /// A key a layer's state needs is not in the checkpoint.
    #[error("checkpoint has no tensor `{key}`")]
    CheckpointMissingKey {
        /// The full key, prefix included.
        key: String,
    },
    /// A checkpoint tensor has the wrong shape.
    #[error("checkpoint tensor `{key}` has shape {got:?}, expected {expected:?}")]
    CheckpointShape {
        /// The full key.
        key: String,
        /// The shape the layer needs (`[]` for a scalar).
        expected: Vec<usize>,
        /// The shape in the file.
        got: Vec<usize>,
    },
    /// A checkpoint tensor has an element type the layer cannot take.
    #[error("checkpoint tensor `{key}` has dtype {dtype}, expected {expected}")]
    CheckpointDtype {
        /// The full key.
        key: String,
        /// The dtype in the file.
        dtype: String,
        /// The dtypes accepted.
        expected: &'static str,
    },
    /// A checkpoint tensor holds a value the layer cannot take (a negative
    /// `num_batches_tracked`).
    #[error("checkpoint tensor `{key}`: {reason}")]
    CheckpointValue {
        /// The full key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A checkpoint file could not be read, parsed or written.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// A rank of a synchronized batch norm could not contribute to an exchange (it passed
    /// no statistics: its device or input failed); every rank gets this error.
    #[error("rank {rank} of the synchronized batch norm failed and contributed nothing")]
    PeerFailed {
        /// The first failed rank.
        rank: usize,
    },
    /// A collective exchange failed (a member did not arrive in time, MPI reported an
    /// error, or the ranks disagree on the channel count).
    #[error("collective exchange failed: {0}")]
    Collective(String),
    /// An invalid option in [`crate::BatchNormConfig`].
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The device's limits are below what the kernels need.
    #[error("the device cannot run the kernels: {0}")]
    UnsupportedDevice(String),
    /// f16 tensors were requested on a device without `Features::SHADER_F16`.
    #[error(
        "f16 tensors need a device created with Features::SHADER_F16 (this adapter may not have it; GL never does)"
    )]
    F16Unavailable,
    /// A [`DispatchProfiler`](crate::DispatchProfiler) was requested on a device without
    /// `Features::TIMESTAMP_QUERY`.
    #[error("a dispatch profiler needs a device created with Features::TIMESTAMP_QUERY")]
    TimestampsUnavailable,
    /// A profiled call has more dispatches than its
    /// [`DispatchProfiler`](crate::DispatchProfiler) has room left for; nothing was
    /// recorded. Read the profiler (which empties it) or give it a larger capacity.
    #[error(
        "the dispatch profiler holds {capacity} dispatches, {pending} are waiting to be read and the call has {needed}"
    )]
    ProfilerFull {
        /// The profiler's capacity in dispatches.
        capacity: u32,
        /// Dispatches recorded since its last reading.
        pending: usize,
        /// The call's dispatches.
        needed: usize,
    },
    /// Subgroup kernels were requested on a device without `Features::SUBGROUP`.
    #[error("subgroup kernels need a device created with Features::SUBGROUP")]
    SubgroupsUnavailable,
    /// No adapter was found.
    #[error(
        "no wgpu adapter found ({tried}). Install a GPU driver, or for a software adapter Debian/Ubuntu's `mesa-vulkan-drivers` (lavapipe, WGPU_BACKEND=vulkan) or Mesa's GL (llvmpipe, WGPU_BACKEND=gl)"
    )]
    NoAdapter {
        /// What was tried.
        tried: String,
    },
    /// The adapter refused the device request.
    #[error("requesting a device failed: {0}")]
    RequestDevice(#[from] wgpu::RequestDeviceError),
    /// wgpu reported an error (validation, out of memory, internal) while building
    /// pipelines or running work.
    #[error("wgpu error: {0}")]
    Wgpu(String),
    /// Mapping a buffer for readback failed, or the device was lost while waiting.
    #[error("reading back from the GPU failed: {0}")]
    Readback(String),
}

/// Shorthand for results of this crate.
pub type Result<T, E = BatchNormError> = std::result::Result<T, E>;
