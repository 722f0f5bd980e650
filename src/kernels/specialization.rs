//! Pipeline-overridable constants: the specializations a kernel is built with.

use super::*;

/// A pipeline's values of the prelude's overridable constants: the vec4 elementwise kernels
/// (`normalize_vec4.wgsl`, `backward_dx_vec4.wgsl`) are built once per specialization and
/// read these instead of testing `Params::flags` per element (the same choices as the
/// FLAG_RELU, FLAG_RESIDUAL and FLAG_BATCH_STATS bits, which the host sets from the same
/// configuration).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Specialization {
    /// `EPILOGUE_RELU`: a fused ReLU (FLAG_RELU).
    pub relu: bool,
    /// `EPILOGUE_RESIDUAL`: a fused residual add (FLAG_RESIDUAL).
    pub residual: bool,
    /// `BATCH_STATS`: a backward with the batch's statistics (FLAG_BATCH_STATS).
    pub batch_stats: bool,
}

impl Specialization {
    /// The names of the prelude's `override` declarations, in field order.
    pub(crate) const NAMES: [&'static str; 3] =
        ["EPILOGUE_RELU", "EPILOGUE_RESIDUAL", "BATCH_STATS"];

    /// The pipeline constants that build this specialization.
    pub(crate) fn constants(&self) -> [(&'static str, f64); 3] {
        let [relu, residual, batch] = Self::NAMES;
        let f = |b: bool| if b { 1.0 } else { 0.0 };
        [
            (relu, f(self.relu)),
            (residual, f(self.residual)),
            (batch, f(self.batch_stats)),
        ]
    }

    /// The specialization of `flags` (a call's `Params::flags`).
    pub(crate) fn of_flags(flags: u32) -> Self {
        Self {
            relu: flags & FLAG_RELU != 0,
            residual: flags & FLAG_RESIDUAL != 0,
            batch_stats: flags & FLAG_BATCH_STATS != 0,
        }
    }
}

/// The specializations `spec` is built with: the vec4 elementwise kernels one per epilogue
/// (none, ReLU, residual add and ReLU), `backward_dx_vec4` each also with and without batch
/// statistics; every other kernel once, with the defaults (it tests `Params::flags`).
pub(crate) fn specializations(spec: &KernelSpec) -> Vec<Specialization> {
    let batch: &[bool] = match spec.name {
        "normalize_vec4" => &[false],
        "backward_dx_vec4" => &[false, true],
        _ => return vec![Specialization::default()],
    };
    let epilogues = [(false, false), (true, false), (true, true)];
    epilogues
        .iter()
        .flat_map(|&(relu, residual)| {
            batch.iter().map(move |&batch_stats| Specialization {
                relu,
                residual,
                batch_stats,
            })
        })
        .collect()
}
