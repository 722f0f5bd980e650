//! Pipeline-overridable constants: the specializations a kernel is built with.

use super::*;

/// A pipeline's values of the prelude's overridable constants: the vec4 elementwise kernels
/// (`normalize_vec4.wgsl` in both its kernels, `backward_dx_vec4.wgsl`) are built once per
/// specialization and
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
    /// `INVOCATION_RECORDS`: the partial passes (`stats_partial*`, `backward_partial*`)
    /// write one record per invocation rather than merging the workgroup's through shared
    /// memory, so that the kernel holds no barrier (`Plan::records`).
    pub invocation_records: bool,
}

impl Specialization {
    /// The names of the prelude's `override` declarations, in field order.
    pub(crate) const NAMES: [&'static str; 4] = [
        "EPILOGUE_RELU",
        "EPILOGUE_RESIDUAL",
        "BATCH_STATS",
        "INVOCATION_RECORDS",
    ];

    /// The pipeline constants that build this specialization.
    pub(crate) fn constants(&self) -> [(&'static str, f64); 4] {
        let [relu, residual, batch, records] = Self::NAMES;
        let f = |b: bool| if b { 1.0 } else { 0.0 };
        [
            (relu, f(self.relu)),
            (residual, f(self.residual)),
            (batch, f(self.batch_stats)),
            (records, f(self.invocation_records)),
        ]
    }

    /// The partial passes' specialization: a record per invocation or per workgroup.
    pub(crate) fn records(invocation_records: bool) -> Self {
        Self {
            invocation_records,
            ..Self::default()
        }
    }

    /// The specialization of `flags` (a call's `Params::flags`).
    pub(crate) fn of_flags(flags: u32) -> Self {
        Self {
            relu: flags & FLAG_RELU != 0,
            residual: flags & FLAG_RESIDUAL != 0,
            batch_stats: flags & FLAG_BATCH_STATS != 0,
            invocation_records: false,
        }
    }
}

/// The specializations `spec` is built with: the vec4 elementwise kernels one per epilogue
/// (none, ReLU, residual add and ReLU), `backward_dx_vec4` each also with and without batch
/// statistics; the partial passes with a record per workgroup and per invocation; every
/// other kernel once, with the defaults (it tests `Params::flags`).
pub(crate) fn specializations(spec: &KernelSpec) -> Vec<Specialization> {
    let batch: &[bool] = match spec.name {
        "normalize_vec4" | "normalize_vec4_eval" => &[false],
        "backward_dx_vec4" => &[false, true],
        "stats_partial" | "stats_partial_rows" | "backward_partial" | "backward_partial_rows" => {
            return [false, true].map(Specialization::records).to_vec();
        }
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
                invocation_records: false,
            })
        })
        .collect()
}
