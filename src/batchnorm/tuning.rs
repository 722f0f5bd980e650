//! The plan's tunables by kind of adapter: one table, documented, that a test can force.

use crate::kernels::WORKGROUP_SIZE;

/// Tunables of a call's plan. [`BatchNorm::new`](crate::BatchNorm::new) picks them from the
/// adapter with [`Tuning::for_adapter`]; [`BatchNorm::with_tuning`](crate::BatchNorm::with_tuning)
/// forces them (to compare settings, or for an adapter the table misjudges). Results agree
/// within rounding whatever the setting (tested); only speed differs.
///
/// | adapter (`AdapterInfo::device_type`) | setting | why |
/// |---|---|---|
/// | `Cpu` (lavapipe, llvmpipe, WARP) | [`Tuning::CPU`]: 256 workgroups | a CPU runs a few workgroups at a time; each costs a shared-memory merge tree, so fewer, longer ones win (BENCHMARKS.md, "Adapter-aware plans") |
/// | | up to 16 elements per invocation of the scalar elementwise passes (fewer where the grid would fall below 256 workgroups) | each invocation's start costs three integer divisions, which a CPU runs one lane at a time: eval 1.27-1.33x faster on lavapipe where the scalar kernels run (7x7 and 33x33 planes) |
/// | | merge width 1 (one invocation merges a channel's records in a row) | the tree's barriers cost more than the chain on a CPU: (4096, 256) statistics 0.88x, training 0.90x with a tree of 256 on lavapipe |
/// | | a partial record per invocation where each gets at least 64 values (`invocation_records`) | lavapipe runs a kernel with barriers as coroutines whose locals live in memory; without the shared-memory merge the statistics took 1.5-2.2x less time, the training forward 1.3-2.1x, the backward 1.2-1.6x (BENCHMARKS.md, "Partial passes without a barrier") |
/// | | the eval forward in one pass only where it computes each channel's coefficients at most once (`one_pass_eval_recomputes` 1) | a CPU gathers the running statistics one lane at a time: the one-pass vec4 eval was 13-18% slower on lavapipe than the separate coefficients pass plus normalize where 2,048 invocations per channel each computed them, and 2x faster for (2, 10^6), where each channel's are computed once (BENCHMARKS.md, "The eval forward in one dispatch") |
/// | every other (discrete, integrated, virtual GPUs) | [`Tuning::GPU`]: 2048 workgroups | enough loads in flight to approach memory bandwidth on a large GPU (about 16 per H100 SM) |
/// | | up to 16 elements per invocation of the scalar elementwise passes, fewer where the grid would fall below 2048 workgroups | (256, 2048, 7, 7) eval 0.119 -> 0.091 ms on an H200; where 16 would leave a small grid ((32, 3, 112, 112) channels-last: 75,000 invocations) it was 1.2-1.3x slower than 1, so the grid keeps its 2048 workgroups (BENCHMARKS.md, "device runs 15 and 16") |
/// | | merge width 256 (a tree of up to 256 invocations per channel) | one invocation merging 256 records in a row cost about 75 us of a 0.24 ms training forward on an H100 (BENCHMARKS.md, "the merges as trees") |
/// | | a partial record per workgroup (`invocation_records` 0) | a GPU merges its workgroup in shared memory at little cost; a record per invocation would write 16 bytes for every 64 values read, and merge them after (not timed on a GPU) |
/// | | the eval forward in one pass wherever the vec4 pass keeps its channels (`one_pass_eval_recomputes` unlimited) | a dependent dispatch costs several microseconds on an H200 (the eval forwards of device run 18 took 6.9-9.1 us more than the streaming kernel); a recomputation is four loads of cached values and a square root per invocation of a memory-bound pass (not timed on a GPU yet) |
///
/// GPUs run the vec4 elementwise passes with 4 vec4s per invocation, not yet compared with
/// other counts on a GPU (BENCHMARKS.md, "vec4 elementwise passes"); CPU adapters with 8,
/// which spreads an invocation's coefficient reads (four records channels-last) over more
/// values: eval 1.1-1.2x faster than with 4 on lavapipe (BENCHMARKS.md, "Partial passes
/// without a barrier"). `bench`
/// forces each field (`--workgroups`, `--vec4`, `--scalar`, `--merge-width`,
/// `--invocation-records`, `--eval-recomputes`) to compare.
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
    /// Most elements each invocation of the scalar elementwise passes handles
    /// (`normalize.wgsl`, `backward_dx.wgsl`, taken where the vec4 ones cannot be: e.g. 7x7
    /// planes): the grid is the tensor's elements over this, or over fewer where that would
    /// leave fewer than `target_workgroups` workgroups. Each invocation finds its first element's
    /// channel with three integer divisions and walks on with additions, so more elements
    /// per invocation spread that cost.
    pub scalar_per_invocation: usize,
    /// Most invocations that merge one channel's partial records (the finalize and merge
    /// passes, `row_tree.wgsl`): they split the records and merge their results as a
    /// shared-memory tree; 1 merges them one after another in a single invocation. Taken
    /// as a power of two from 1 to the workgroup size (256), rounded down.
    pub merge_width: usize,
    /// Where each invocation of a partial pass gets at least this many of its channel's
    /// elements, it writes its own partial record (merged later with the others, in fixed
    /// order) instead of merging the workgroup's through shared memory, and the chunks are
    /// planned so that each invocation gets at least this many; 0: never. A kernel without
    /// that merge holds no barrier, which a CPU adapter runs far faster (see the table).
    pub invocation_records: usize,
    /// Most times per channel that an eval forward with running statistics may compute a
    /// channel's coefficients (mean, gamma / sqrt(var + eps), beta) in its normalize pass
    /// (`normalize_vec4_eval`, once per invocation that keeps the channel) rather than run
    /// `eval_coeffs` first, which computes each once and stores it for the normalize pass:
    /// one dispatch instead of two. Only the vec4 pass whose invocations keep their
    /// channels does so; the scalar pass and invocations that walk the channels always
    /// read stored coefficients.
    pub one_pass_eval_recomputes: usize,
}

impl Tuning {
    /// For GPUs: 2048 workgroups.
    pub const GPU: Self = Self {
        target_workgroups: 2048,
        vec4_per_invocation: 4,
        scalar_per_invocation: 16,
        merge_width: 256,
        invocation_records: 0,
        one_pass_eval_recomputes: usize::MAX,
    };

    /// For CPU adapters: 256 workgroups.
    pub const CPU: Self = Self {
        target_workgroups: 256,
        vec4_per_invocation: 8,
        scalar_per_invocation: 16,
        merge_width: 1,
        invocation_records: 64,
        one_pass_eval_recomputes: 1,
    };

    /// [`merge_width`](Self::merge_width) as the kernels take it: a power of two from 1 to
    /// the workgroup size.
    pub(crate) fn merge_rows_cap(&self) -> u32 {
        let w = self.merge_width.clamp(1, WORKGROUP_SIZE as usize);
        1 << w.ilog2()
    }

    /// The table's setting for an adapter.
    pub fn for_adapter(info: &wgpu::AdapterInfo) -> Self {
        match info.device_type {
            wgpu::DeviceType::Cpu => Self::CPU,
            _ => Self::GPU,
        }
    }
}
