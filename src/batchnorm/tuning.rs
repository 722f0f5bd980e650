//! The plan's tunables by kind of adapter: one table, documented, that a test can force.

/// Tunables of a call's plan. [`BatchNorm::new`](crate::BatchNorm::new) picks them from the
/// adapter with [`Tuning::for_adapter`]; [`BatchNorm::with_tuning`](crate::BatchNorm::with_tuning)
/// forces them (to compare settings, or for an adapter the table misjudges). Results agree
/// within rounding whatever the setting (tested); only speed differs.
///
/// | adapter (`AdapterInfo::device_type`) | setting | why |
/// |---|---|---|
/// | `Cpu` (lavapipe, llvmpipe, WARP) | [`Tuning::CPU`]: 256 workgroups | a CPU runs a few workgroups at a time; each costs a shared-memory merge tree, so fewer, longer ones win (BENCHMARKS.md, "Adapter-aware plans") |
/// | every other (discrete, integrated, virtual GPUs) | [`Tuning::GPU`]: 2048 workgroups | enough loads in flight to approach memory bandwidth on a large GPU (about 16 per H100 SM) |
///
/// Both entries run the vec4 elementwise passes with 4 vec4s per invocation, not yet
/// compared with other counts on a GPU (BENCHMARKS.md, "vec4 elementwise passes").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tuning {
    /// Workgroups the partial passes aim at over the whole tensor (chunks per channel, and
    /// the width of the row passes' channel blocks, follow from it); fewer where the tensor
    /// is too small to give each invocation a few elements.
    pub target_workgroups: usize,
    /// Vec4s each invocation of the vec4 elementwise passes handles (`normalize_vec4.wgsl`,
    /// `backward_dx_vec4.wgsl`): the grid is the tensor's vec4s over this, so that an
    /// invocation that keeps its channels reads their coefficients once for this many.
    pub vec4_per_invocation: usize,
}

impl Tuning {
    /// For GPUs: 2048 workgroups.
    pub const GPU: Self = Self {
        target_workgroups: 2048,
        vec4_per_invocation: 4,
    };

    /// For CPU adapters: 256 workgroups.
    pub const CPU: Self = Self {
        target_workgroups: 256,
        vec4_per_invocation: 4,
    };

    /// The table's setting for an adapter.
    pub fn for_adapter(info: &wgpu::AdapterInfo) -> Self {
        match info.device_type {
            wgpu::DeviceType::Cpu => Self::CPU,
            _ => Self::GPU,
        }
    }
}
