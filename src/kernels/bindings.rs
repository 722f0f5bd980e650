//! Each kernel's storage bindings as a named struct (`bindings!`): the one list of the
//! names, element sizes and accesses that the call sites fill, the pipeline layouts take
//! (through `KernelSpec`) and `contract.rs` checks against the WGSL.

/// A kernel's storage bindings as a struct whose fields are named as the WGSL declares
/// them, in binding order, with their element sizes: call sites name every buffer they
/// bind (`Bindings { x, partials }`), and [`KernelSpec`] takes names and sizes from here.
///
/// Tensors are written `x: T` (element size [`element_size!`]). A field marked `read`
/// (`x: T read`) is bound read-only: `var<storage, read>` in the WGSL
/// and a read-only storage entry in the layout, which lets a driver read it through its
/// non-coherent cache (on an H200 the statistics alone took 7-9% less time, BENCHMARKS.md,
/// "read-only inputs"). wgpu rejects one buffer bound read-only and read-write in one
/// dispatch, and callers may hand out slices of one pooled buffer, so only kernels that
/// write nothing but the crate's own scratch (`partials`, `chan`) mark their inputs `read`
/// (checked by `read_only_inputs_beside_scratch_only` in src/kernels/contract.rs).
macro_rules! bindings {
    ($(#[$doc:meta])* $ty:ident { $($field:ident: $size:tt $($read:ident)?),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug)]
        pub(crate) struct $ty<'a> {
            $(pub $field: wgpu::BufferSlice<'a>,)*
        }

        impl<'a> $ty<'a> {
            pub(crate) const SIZES: &'static [u64] = &[$(element_size!($size)),*];
            pub(crate) const READ_ONLY: &'static [bool] = &[$(read_only!($($read)?)),*];
            /// As `SIZES` for the vec4 twin of a kernel (`*_vec4.wgsl`), which binds the
            /// same buffers with the tensors (`T` fields) as vec4s.
            #[allow(dead_code)]
            pub(crate) const VEC4_SIZES: &'static [u64] = &[$(vec4_size!($size)),*];
            #[cfg(test)]
            pub(crate) const NAMES: &'static [&'static str] = &[$(stringify!($field)),*];

            /// The slices in binding order (bindings 1, 2, ...).
            pub(crate) fn slices(&self) -> Vec<wgpu::BufferSlice<'a>> {
                vec![$(self.$field),*]
            }

            /// The tensors' slices (the `T` fields), which a vec4 kernel binds as vec4s.
            #[allow(dead_code)]
            pub(crate) fn tensors(&self) -> Vec<wgpu::BufferSlice<'a>> {
                let all = [$((is_tensor!($size), self.$field)),*];
                all.into_iter().filter(|(t, _)| *t).map(|(_, s)| s).collect()
            }
        }
    };
}

/// The element size in bytes of a [`bindings!`] field: `T` for a tensor (`array<T>`, 4
/// bytes in f32; f16 tensors bind the same buffers with a smaller element), else the
/// literal (4 for `array<f32>` / `array<u32>`, 8 for a 64-bit counter, 16 for
/// `array<vec4<f32>>`).
macro_rules! element_size {
    (T) => {
        4
    };
    ($size:literal) => {
        $size
    };
}

/// Whether a [`bindings!`] field is a tensor (`T`).
macro_rules! is_tensor {
    (T) => {
        true
    };
    ($size:literal) => {
        false
    };
}

/// As [`element_size!`] in a vec4 kernel, which binds the tensors as `array<vec4<T>>`.
macro_rules! vec4_size {
    (T) => {
        16
    };
    ($size:literal) => {
        $size
    };
}

/// A kernel's bindings ([`bindings!`]) and those of its twin that updates the running
/// statistics, the same with `running_mean`, `running_var` and `num_batches_tracked`
/// appended (`running_stats.wgsl`), and `with_running`, which makes the twin's from the
/// kernel's: one list of the shared fields for both.
macro_rules! bindings_with_running {
    (
        $(#[$doc:meta])* $ty:ident,
        $(#[$twin_doc:meta])* $twin:ident { $($field:ident: $size:tt),* $(,)? }
    ) => {
        bindings!($(#[$doc])* $ty { $($field: $size),* });
        bindings!(
            $(#[$twin_doc])*
            $twin { $($field: $size,)* running_mean: 4, running_var: 4, num_batches_tracked: 8 }
        );

        impl<'a> $ty<'a> {
            /// These bindings and the running statistics', for the twin kernel.
            pub(crate) fn with_running(
                self,
                running_mean: wgpu::BufferSlice<'a>,
                running_var: wgpu::BufferSlice<'a>,
                num_batches_tracked: wgpu::BufferSlice<'a>,
            ) -> $twin<'a> {
                let Self { $($field),* } = self;
                $twin { $($field,)* running_mean, running_var, num_batches_tracked }
            }
        }
    };
}

/// An elementwise forward's bindings ([`bindings!`]) with the coefficients it normalizes
/// with after the shared fields: `chan` (the records a finalize pass wrote,
/// `coeffs_chan.wgsl`) in the kernel, the running statistics and affine parameters it
/// computes them from (`coeffs_running.wgsl`, eval) in its twin. The WGSL's `COEFFS` is
/// the first of these bindings (checked with the rest by `contract.rs`).
macro_rules! bindings_with_coefficients {
    (
        $(#[$doc:meta])* $ty:ident,
        $(#[$twin_doc:meta])* $twin:ident { $($field:ident: $size:tt),* $(,)? }
    ) => {
        bindings!($(#[$doc])* $ty { $($field: $size,)* chan: 16 });
        bindings!(
            $(#[$twin_doc])*
            $twin { $($field: $size,)* running_mean: 4, running_var: 4, gamma: 4, beta: 4 }
        );
    };
}

/// `true` for a `read` field of [`bindings!`], `false` for an unmarked one.
macro_rules! read_only {
    (read) => {
        true
    };
    () => {
        false
    };
}

bindings!(
    /// `stats_partial.wgsl`, `stats_partial_rows.wgsl`.
    StatsPartialBindings { x: T read, partials: 16 }
);
bindings!(
    /// `eval_coeffs.wgsl` + `coeffs_running.wgsl`.
    EvalCoeffsBindings { running_mean: 4, running_var: 4, gamma: 4, beta: 4, chan: 16 }
);
bindings!(
    /// `running_update.wgsl`.
    RunningUpdateBindings {
        chan: 16,
        running_mean: 4,
        running_var: 4,
        num_batches_tracked: 8,
        skipped_batches: 4,
    }
);
bindings_with_coefficients!(
    /// `normalize.wgsl`, `normalize_vec4.wgsl` + `coeffs_chan.wgsl`.
    NormalizeBindings,
    /// `normalize_vec4.wgsl` + `coeffs_running.wgsl`.
    NormalizeEvalBindings { x: T, y: T, z: T }
);
bindings!(
    /// `backward_prep.wgsl`.
    BackwardPrepBindings { stat_a: 4, stat_b: 4, gamma: 4, chan: 16 }
);
bindings!(
    /// `backward_partial.wgsl`, `backward_partial_rows.wgsl`.
    BackwardPartialBindings { x: T read, dy: T read, chan: 16, partials: 16, y: T read }
);
bindings!(
    /// `backward_finalize.wgsl`.
    BackwardFinalizeBindings { partials: 16, chan: 16, dgamma: 4, dbeta: 4 }
);
bindings!(
    /// `stats_merge.wgsl`, `backward_merge.wgsl`.
    MergeBindings { a: 16, b: 16, out: 16 }
);
bindings!(
    /// `backward_dx.wgsl`.
    BackwardDxBindings { x: T, dy: T, chan: 16, dx: T, y: T, dz: T }
);
bindings!(
    /// `backward_fused.wgsl`, `backward_thin.wgsl`.
    BackwardOnePassBindings { x: T, dy: T, chan: 16, dgamma: 4, dbeta: 4, dx: T, y: T, dz: T }
);
bindings_with_running!(
    /// `stats_finalize.wgsl`.
    StatsFinalizeBindings,
    /// `stats_finalize.wgsl` + `stats_finalize_running.wgsl`.
    StatsFinalizeRunningBindings {
        partials: 16,
        gamma: 4,
        beta: 4,
        chan: 16,
        save_mean: 4,
        save_invstd: 4,
    }
);
bindings_with_running!(
    /// `forward_fused.wgsl`, `forward_thin.wgsl`.
    ForwardOnePassBindings,
    /// `forward_fused.wgsl`, `forward_thin.wgsl` + `one_pass_running.wgsl`.
    ForwardOnePassRunningBindings {
        x: T,
        gamma: 4,
        beta: 4,
        chan: 16,
        save_mean: 4,
        save_invstd: 4,
        y: T,
        z: T,
    }
);
