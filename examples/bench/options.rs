//! Command-line options.

use crate::cases::{Case, parse_case};
use wgpu_batchnorm::{Reduction, Tuning};

pub(crate) struct Options {
    pub(crate) quick: bool,
    pub(crate) reps: usize,
    pub(crate) warmup: usize,
    pub(crate) json: Option<String>,
    pub(crate) cases: Vec<Case>,
    /// Forced plan tunables (`--tuning cpu|gpu`); the adapter's table entry otherwise.
    pub(crate) tuning: Option<Tuning>,
    /// Forced `Tuning::vec4_per_invocation` (`--vec4 N`), over either of the above.
    pub(crate) vec4: Option<usize>,
    /// Forced `Tuning::scalar_per_invocation` (`--scalar N`), over either of the above.
    pub(crate) scalar: Option<usize>,
    /// Forced `Tuning::merge_width` (`--merge-width N`), over either of the above.
    pub(crate) merge_width: Option<usize>,
    /// Forced `Tuning::invocation_records` (`--invocation-records N`, 0: never), over
    /// either of the above.
    pub(crate) invocation_records: Option<usize>,
    /// Forced `Tuning::one_pass_eval_recomputes` (`--eval-recomputes N`, 0: never one
    /// pass), over either of the above.
    pub(crate) eval_recomputes: Option<usize>,
    /// One submission per repetition, waited for before the next (`--wait-each`).
    pub(crate) wait_each: bool,
    /// Time with the host's clock even where the adapter has timestamp queries
    /// (`--host-clock`), to check them.
    pub(crate) host_clock: bool,
    /// Also time `BatchNorm::statistics` alone (`--stats`).
    pub(crate) stats: bool,
    /// Also time each dispatch of each pass (`--per-dispatch`).
    pub(crate) per_dispatch: bool,
    /// Forced `Tuning::target_workgroups` (`--workgroups N`), over the tuning above.
    pub(crate) workgroups: Option<usize>,
    /// Forced reduction kernels (`--reduction workgroup|subgroup`); the adapter's choice
    /// (subgroups where it has them) otherwise.
    pub(crate) reduction: Reduction,
}

pub(crate) fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        quick: false,
        reps: 0,
        warmup: 0,
        json: None,
        cases: Vec::new(),
        tuning: None,
        vec4: None,
        scalar: None,
        merge_width: None,
        invocation_records: None,
        eval_recomputes: None,
        wait_each: false,
        stats: false,
        per_dispatch: false,
        workgroups: None,
        host_clock: false,
        reduction: Reduction::Auto,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        let count = |name: &str, v: String| v.parse::<usize>().map_err(|e| format!("{name}: {e}"));
        match a.as_str() {
            "--quick" => o.quick = true,
            "--wait-each" => o.wait_each = true,
            "--stats" => o.stats = true,
            "--per-dispatch" => o.per_dispatch = true,
            "--host-clock" => o.host_clock = true,
            "--reduction" => {
                o.reduction = match value("--reduction")?.as_str() {
                    "workgroup" => Reduction::Workgroup,
                    "subgroup" => Reduction::Subgroup,
                    other => {
                        return Err(format!(
                            "--reduction {other:?}: expected workgroup or subgroup"
                        ));
                    }
                }
            }
            "--workgroups" => o.workgroups = Some(count("--workgroups", value("--workgroups")?)?),
            "--reps" => o.reps = count("--reps", value("--reps")?)?,
            "--warmup" => o.warmup = count("--warmup", value("--warmup")?)?,
            "--json" => o.json = Some(value("--json")?),
            "--case" => o.cases.push(parse_case(&value("--case")?)?),
            "--tuning" => {
                o.tuning = Some(match value("--tuning")?.as_str() {
                    "cpu" => Tuning::CPU,
                    "gpu" => Tuning::GPU,
                    other => return Err(format!("--tuning {other:?}: expected cpu or gpu")),
                })
            }
            "--vec4" => o.vec4 = Some(count("--vec4", value("--vec4")?)?),
            "--scalar" => o.scalar = Some(count("--scalar", value("--scalar")?)?),
            "--merge-width" => {
                o.merge_width = Some(count("--merge-width", value("--merge-width")?)?)
            }
            "--invocation-records" => {
                let v = value("--invocation-records")?;
                o.invocation_records = Some(count("--invocation-records", v)?)
            }
            "--eval-recomputes" => {
                let v = value("--eval-recomputes")?;
                o.eval_recomputes = Some(count("--eval-recomputes", v)?)
            }
            "-h" | "--help" => {
                println!(
                    "usage: bench [--quick] [--reps N] [--warmup N] [--json PATH] [--case DIMS:LAYOUT ...] [--tuning cpu|gpu] [--vec4 N] [--scalar N] [--merge-width N] [--invocation-records N] [--eval-recomputes N] [--wait-each] [--stats] [--per-dispatch] [--workgroups N] [--host-clock] [--reduction workgroup|subgroup]\n\
                     times training forward, eval forward and backward per shape and layout;\n\
                     --case (repeatable, e.g. 8x64x56x56:NHWC) replaces the suite;\n\
                     --per-dispatch also times each dispatch of a pass (a compute pass each)"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    if o.reps == 0 {
        o.reps = if o.quick { 15 } else { 100 };
    }
    if o.warmup == 0 {
        o.warmup = if o.quick { 3 } else { 10 };
    }
    Ok(o)
}
