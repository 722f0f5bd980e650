//! The kernels' WGSL sources and the Rust side of their contract: the parameter block,
//! the flag bits, each kernel's bindings (`kernels/bindings.rs`), and the assembled modules
//! (pipelines are built in `pipelines.rs`).
//!
//! Every kernel lives in its own file under `shaders/` (a few are that file with others
//! appended: `stats_finalize_running` is `stats_finalize.wgsl` with the running statistics'
//! bindings and update, see [`STATS_FINALIZE_RUNNING`]; `normalize_vec4` and
//! `normalize_vec4_eval` are `normalize_vec4.wgsl` with the coefficients read from chan or
//! computed from the running statistics, see [`NORMALIZE_VEC4_EVAL`]). A module is
//! assembled as the prelude generated here from the Rust constants (`wgsl_prelude`:
//! element type, workgroup size, flag bits) + the shared helpers (`common.wgsl`,
//! `indexing.wgsl`, `shifted_sums.wgsl`, `row_tree.wgsl`: `COMMON`) + one reduction helper
//! (`reduce_workgroup.wgsl`, or `reduce_subgroup.wgsl` when subgroup operations are used),
//! then the kernel. The rest of the contract (`Params` and each kernel's bindings) is
//! checked against the WGSL with naga by the tests in `kernels/contract.rs`.

/// Threads per workgroup; `WG` in WGSL (generated: [`wgsl_prelude`]).
pub(crate) const WORKGROUP_SIZE: u32 = 256;

/// `Params::flags` bit: gamma and beta are bound and used.
pub(crate) const FLAG_AFFINE: u32 = 1;
/// `Params::flags` bit: momentum is `None` (cumulative average).
pub(crate) const FLAG_CUMULATIVE: u32 = 2;
/// `Params::flags` bit: backward uses batch statistics (saved mean and invstd).
pub(crate) const FLAG_BATCH_STATS: u32 = 4;
/// `Params::flags` bit: the running variance averages the biased batch variance.
pub(crate) const FLAG_BIASED_VAR: u32 = 8;
/// `Params::flags` bit: skip the running update of a batch with non-finite statistics.
pub(crate) const FLAG_SKIP_NON_FINITE: u32 = 16;
/// `Params::flags` bit: fused ReLU after batch norm.
pub(crate) const FLAG_RELU: u32 = 32;
/// `Params::flags` bit: fused residual add before the ReLU.
pub(crate) const FLAG_RESIDUAL: u32 = 64;
/// `Params::flags` bit: `stats_merge` also merges its second source.
pub(crate) const FLAG_MERGE_B: u32 = 128;
/// `Params::flags` bit: `running_update` only increments `num_batches_tracked` (the second
/// of its two dispatches for the cumulative average).
pub(crate) const FLAG_COUNT_ONLY: u32 = 256;
/// `Params::flags` bit: backward adds dgamma and dbeta to the values their buffers hold.
pub(crate) const FLAG_ACCUMULATE_GRADS: u32 = 512;

/// Every `Params::flags` bit by its WGSL name, for [`wgsl_prelude`].
pub(crate) const FLAGS: [(&str, u32); 10] = [
    ("FLAG_AFFINE", FLAG_AFFINE),
    ("FLAG_CUMULATIVE", FLAG_CUMULATIVE),
    ("FLAG_BATCH_STATS", FLAG_BATCH_STATS),
    ("FLAG_BIASED_VAR", FLAG_BIASED_VAR),
    ("FLAG_SKIP_NON_FINITE", FLAG_SKIP_NON_FINITE),
    ("FLAG_RELU", FLAG_RELU),
    ("FLAG_RESIDUAL", FLAG_RESIDUAL),
    ("FLAG_MERGE_B", FLAG_MERGE_B),
    ("FLAG_COUNT_ONLY", FLAG_COUNT_ONLY),
    ("FLAG_ACCUMULATE_GRADS", FLAG_ACCUMULATE_GRADS),
];

/// The WGSL declarations of the Rust side of the contract, generated so that the two
/// cannot drift: the tensor element type `T`, the workgroup size `WG`, the flag bits and
/// the overridable constants of [`Specialization`].
pub(crate) fn wgsl_prelude(f16: bool) -> String {
    let mut s = if f16 {
        "enable f16;\nalias T = f16;\n".to_string()
    } else {
        "alias T = f32;\n".to_string()
    };
    s += &format!("const WG: u32 = {WORKGROUP_SIZE}u;\n");
    for (name, bit) in FLAGS {
        s += &format!("const {name}: u32 = {bit}u;\n");
    }
    for name in Specialization::NAMES {
        s += &format!("override {name}: bool = false;\n");
    }
    s
}

/// Per-call parameters. Twin: `Params` in `shaders/common.wgsl` (same fields at the same
/// offsets; `params_layout_matches_wgsl` checks it).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Params {
    pub outer: u32,
    pub channels: u32,
    pub inner: u32,
    pub count: u32,
    pub base: u32,
    pub len: u32,
    pub chunk_len: u32,
    pub chunks: u32,
    pub slot_base: u32,
    pub slots: u32,
    pub lanes: u32,
    /// Always 0: an operand the shader compiler cannot fold (`opaque` in common.wgsl).
    pub zero: u32,
    pub eps: f32,
    pub momentum: f32,
    pub flags: u32,
    /// Most invocations per channel of the merge passes (`merge_rows` in row_tree.wgsl):
    /// a power of two from 1 to WG ([`Tuning::merge_width`](crate::Tuning::merge_width)).
    pub merge_width: u32,
}

/// The helpers every kernel module includes, one concept per file.
const COMMON: &str = concat!(
    include_str!("../shaders/common.wgsl"),
    "\n",
    include_str!("../shaders/indexing.wgsl"),
    "\n",
    include_str!("../shaders/shifted_sums.wgsl"),
    "\n",
    include_str!("../shaders/row_tree.wgsl")
);
const REDUCE_WORKGROUP: &str = include_str!("../shaders/reduce_workgroup.wgsl");
const REDUCE_SUBGROUP: &str = include_str!("../shaders/reduce_subgroup.wgsl");

/// One compute kernel: its name, source, and the name, element size in bytes and access of
/// each storage buffer it binds, at bindings 1, 2, ... (binding 0 is the `Params` uniform):
/// 4 for `array<f32>` / `array<u32>` / `array<T>` in f32, 16 for `array<vec4<f32>>`. The
/// names, sizes and accesses come from the kernel's bindings struct; a test checks them
/// against the WGSL.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KernelSpec {
    pub name: &'static str,
    pub source: &'static str,
    pub storage: &'static [u64],
    /// Per binding: bound `read` (in the WGSL and the layout) rather than `read_write`.
    pub read_only: &'static [bool],
    /// The binding names, for the test that compares them with the WGSL.
    #[cfg(test)]
    pub names: &'static [&'static str],
}

macro_rules! kernel {
    ($name:literal, $bindings:ident) => {
        kernel!($name, $bindings, SIZES)
    };
    ($name:literal, $bindings:ident, $sizes:ident) => {
        kernel!($name, $bindings, $sizes, [$name])
    };
    // A kernel assembled from several files in order (the first holds `main`).
    ($name:literal, $bindings:ident, $sizes:ident, [$($file:literal),+]) => {
        KernelSpec {
            name: $name,
            source: concat!($(include_str!(concat!("../shaders/", $file, ".wgsl")), "\n"),+),
            storage: $bindings::$sizes,
            read_only: $bindings::READ_ONLY,
            #[cfg(test)]
            names: $bindings::NAMES,
        }
    };
}

/// A kernel that makes the statistics and its twin that also updates the running
/// statistics, from the same main file: the kernel with `running_none.wgsl` appended (it
/// hands each channel's statistics to `running_update`), the twin with `$tail` (the running
/// statistics' bindings) and `running_stats.wgsl` (the update), bound by a pair of
/// `bindings_with_running!` structs.
macro_rules! kernels_with_running {
    (
        $plain:ident = $file:literal, $bindings:ident;
        $twin:ident = $twin_name:literal, $twin_bindings:ident, $tail:literal
    ) => {
        pub(crate) const $plain: KernelSpec =
            kernel!($file, $bindings, SIZES, [$file, "running_none"]);
        pub(crate) const $twin: KernelSpec = kernel!(
            $twin_name,
            $twin_bindings,
            SIZES,
            [$file, $tail, "running_stats"]
        );
    };
}

pub(crate) const STATS_PARTIAL: KernelSpec = kernel!("stats_partial", StatsPartialBindings);
pub(crate) const STATS_PARTIAL_ROWS: KernelSpec =
    kernel!("stats_partial_rows", StatsPartialBindings);
kernels_with_running!(
    STATS_FINALIZE = "stats_finalize", StatsFinalizeBindings;
    STATS_FINALIZE_RUNNING = "stats_finalize_running", StatsFinalizeRunningBindings,
        "stats_finalize_running"
);
pub(crate) const EVAL_COEFFS: KernelSpec = kernel!(
    "eval_coeffs",
    EvalCoeffsBindings,
    SIZES,
    ["eval_coeffs", "coeffs_running"]
);
pub(crate) const RUNNING_UPDATE: KernelSpec = kernel!(
    "running_update",
    RunningUpdateBindings,
    SIZES,
    ["running_update", "running_stats"]
);
// The normalize passes with their coefficients from chan (`coeffs_chan`), and the vec4
// one's eval twin that computes them from the running statistics (`coeffs_running`).
pub(crate) const NORMALIZE: KernelSpec = kernel!(
    "normalize",
    NormalizeBindings,
    SIZES,
    ["normalize", "coeffs_chan"]
);
pub(crate) const NORMALIZE_VEC4: KernelSpec = kernel!(
    "normalize_vec4",
    NormalizeBindings,
    VEC4_SIZES,
    ["normalize_vec4", "coeffs_chan"]
);
pub(crate) const NORMALIZE_VEC4_EVAL: KernelSpec = kernel!(
    "normalize_vec4_eval",
    NormalizeEvalBindings,
    VEC4_SIZES,
    ["normalize_vec4", "coeffs_running"]
);
pub(crate) const BACKWARD_PREP: KernelSpec = kernel!("backward_prep", BackwardPrepBindings);
pub(crate) const BACKWARD_PARTIAL: KernelSpec =
    kernel!("backward_partial", BackwardPartialBindings);
pub(crate) const BACKWARD_PARTIAL_ROWS: KernelSpec =
    kernel!("backward_partial_rows", BackwardPartialBindings);
pub(crate) const BACKWARD_FINALIZE: KernelSpec =
    kernel!("backward_finalize", BackwardFinalizeBindings);
pub(crate) const STATS_MERGE: KernelSpec = kernel!("stats_merge", MergeBindings);
pub(crate) const BACKWARD_MERGE: KernelSpec = kernel!("backward_merge", MergeBindings);
pub(crate) const BACKWARD_DX: KernelSpec = kernel!("backward_dx", BackwardDxBindings);
pub(crate) const BACKWARD_DX_VEC4: KernelSpec =
    kernel!("backward_dx_vec4", BackwardDxBindings, VEC4_SIZES);
kernels_with_running!(
    FORWARD_FUSED = "forward_fused", ForwardOnePassBindings;
    FORWARD_FUSED_RUNNING = "forward_fused_running", ForwardOnePassRunningBindings,
        "one_pass_running"
);
pub(crate) const BACKWARD_FUSED: KernelSpec = kernel!("backward_fused", BackwardOnePassBindings);
kernels_with_running!(
    FORWARD_THIN = "forward_thin", ForwardOnePassBindings;
    FORWARD_THIN_RUNNING = "forward_thin_running", ForwardOnePassRunningBindings,
        "one_pass_running"
);
pub(crate) const BACKWARD_THIN: KernelSpec = kernel!("backward_thin", BackwardOnePassBindings);

/// Storage buffers `forward_fused` and `backward_fused` (and their `_thin` twins) bind;
/// devices with fewer per shader stage use the separate passes.
pub(crate) const FUSED_STORAGE: u32 = 8;

/// Storage buffers `stats_finalize_running` binds; devices with fewer per shader stage
/// update the running statistics in `running_update`.
pub(crate) const FINALIZE_RUNNING_STORAGE: u32 = StatsFinalizeRunningBindings::SIZES.len() as u32;

/// Storage buffers `forward_fused_running` and `forward_thin_running` bind; devices with
/// fewer per shader stage update the running statistics in `running_update`.
pub(crate) const ONE_PASS_RUNNING_STORAGE: u32 = ForwardOnePassRunningBindings::SIZES.len() as u32;

/// Storage buffers `normalize_vec4_eval` binds; devices with fewer per shader stage run
/// `eval_coeffs` before the normalize pass.
pub(crate) const NORMALIZE_EVAL_STORAGE: u32 = NormalizeEvalBindings::SIZES.len() as u32;

/// Every kernel, in a fixed order (the order of [`Pipelines`]' fields).
#[cfg(test)]
pub(crate) const ALL_KERNELS: [KernelSpec; 23] = [
    STATS_PARTIAL,
    STATS_PARTIAL_ROWS,
    STATS_FINALIZE,
    STATS_FINALIZE_RUNNING,
    EVAL_COEFFS,
    RUNNING_UPDATE,
    NORMALIZE,
    NORMALIZE_VEC4,
    NORMALIZE_VEC4_EVAL,
    BACKWARD_PREP,
    BACKWARD_PARTIAL,
    BACKWARD_PARTIAL_ROWS,
    BACKWARD_FINALIZE,
    BACKWARD_DX,
    BACKWARD_DX_VEC4,
    STATS_MERGE,
    BACKWARD_MERGE,
    FORWARD_FUSED,
    FORWARD_FUSED_RUNNING,
    BACKWARD_FUSED,
    FORWARD_THIN,
    FORWARD_THIN_RUNNING,
    BACKWARD_THIN,
];

/// The full WGSL text of `kernel`, with the subgroup or the shared-memory reduction helper,
/// and the tensor element type `T` (f16 needs `Features::SHADER_F16`).
pub(crate) fn module_source(kernel: &KernelSpec, subgroups: bool, f16: bool) -> String {
    let reduce = if subgroups {
        REDUCE_SUBGROUP
    } else {
        REDUCE_WORKGROUP
    };
    let prelude = wgsl_prelude(f16);
    format!("{prelude}{COMMON}\n{reduce}\n{}", kernel.source)
}

mod bindings;
#[cfg(test)]
mod contract;
#[cfg(test)]
mod loops;
mod specialization;
#[cfg(test)]
mod translate;

pub(crate) use bindings::*;
pub(crate) use specialization::{Specialization, specializations};
