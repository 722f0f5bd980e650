//! The comparison with PyTorch: this example exports what defines a run (data, split, batch
//! order, initial weights) to `pytorch/inputs.safetensors`; `pytorch/train_reference.py`
//! trains the same model from it in PyTorch (f32, CPU) and writes `pytorch/losses.csv`.
//! Both are committed; [`check`] verifies that this build still draws the same inputs, that
//! the crate's run follows PyTorch's loss curve, and that two runs are bit-identical.

use crate::data::FEATURES;
use crate::train::{BATCH, Config, Run, STEPS_PER_EPOCH, Setup};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use std::path::Path;

/// Steps compared with PyTorch (5 epochs).
pub const STEPS: usize = 100;
const EPOCHS: usize = STEPS / STEPS_PER_EPOCH;
/// Largest relative difference allowed between a step's loss here and PyTorch's float32
/// loss, within the steps that float32 training can be followed at all: those before
/// either float32 run (PyTorch's or ours) leaves the float64 run by more than [`HORIZON`].
/// Beyond that, rounding differences (1e-7 relative per operation, summed in a different
/// order here and in PyTorch) have grown into different trajectories: with batch norm at
/// learning rates 0.01 and 0.1, PyTorch's float32 and float64 runs differ by 10-15% from
/// step 40-50 on, and no float32 implementation can be expected to follow another there.
/// Within the horizon two float32 runs sit on either side of the float64 run, so their
/// difference is up to twice each one's own; 1e-3 is about 8x the largest difference
/// measured (1.3e-4).
pub const TOLERANCE: f64 = 1e-3;
/// The relative difference from the float64 loss that ends a float32 run's "horizon": the
/// steps before it, PyTorch's and ours each.
pub const HORIZON: f64 = 1e-4;
/// Our float32 run must follow the float64 run (within [`HORIZON`]) for at least this
/// fraction of the steps that PyTorch's float32 run does. Where a float32 run leaves the
/// float64 run is a matter of rounding luck once training is sensitive enough (a
/// pre-activation that crosses ReLU's kink on one side and not the other moves the loss by
/// 1e-4 in one step): with batch norm, PyTorch's float32 run leaves at steps 47, 39 and
/// never (learning rates 0.01, 0.1, 1.0), ours at 53, 43 and never with one grouping of the
/// statistics' sums and at 56, 30 and 73 with another, each step of each run within 1e-6
/// of float64 before it leaves. A wrong gradient or convention leaves within a few steps.
pub const HORIZON_FRACTION: f64 = 0.5;

/// Where the committed files are.
pub fn dir() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/train_mlp/pytorch"
    ))
}

/// The tensors that define a run, by name: name, dtype, shape, little-endian bytes.
fn inputs(setup: &Setup) -> Vec<(String, Dtype, Vec<usize>, Vec<u8>)> {
    let data = setup.data;
    let i64s =
        |v: &[u32]| -> Vec<u8> { v.iter().flat_map(|&x| (x as i64).to_le_bytes()).collect() };
    let f32s = |v: &[f32]| -> Vec<u8> { bytemuck::cast_slice(v).to_vec() };
    let rows = data.labels.len();
    let mut out = vec![
        (
            "features".into(),
            Dtype::F32,
            vec![rows, FEATURES],
            f32s(&data.features),
        ),
        ("labels".into(), Dtype::I64, vec![rows], i64s(&data.labels)),
        (
            "train".into(),
            Dtype::I64,
            vec![data.train.len()],
            i64s(&data.train),
        ),
        (
            "test".into(),
            Dtype::I64,
            vec![data.test.len()],
            i64s(&data.test),
        ),
    ];
    let order: Vec<u32> = (0..EPOCHS)
        .flat_map(|e| data.epoch_order(setup.seed, e))
        .collect();
    out.push(("order".into(), Dtype::I64, vec![STEPS, BATCH], i64s(&order)));
    for (i, (w, b)) in setup.initial_weights().iter().enumerate() {
        let outputs = b.len();
        let name = format!("fc{}", i + 1);
        out.push((
            format!("{name}.weight"),
            Dtype::F32,
            vec![outputs, w.len() / outputs],
            f32s(w),
        ));
        out.push((format!("{name}.bias"), Dtype::F32, vec![outputs], f32s(b)));
    }
    out
}

/// Writes the inputs for the PyTorch script.
pub fn export(setup: &Setup, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let tensors = inputs(setup);
    let views = tensors
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            Ok((
                name.as_str(),
                TensorView::new(*dtype, shape.clone(), bytes)?,
            ))
        })
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
    std::fs::write(path, safetensors::serialize(views, None)?)?;
    Ok(())
}

/// The losses of the first [`STEPS`] steps of `config`.
pub fn loss_curve(setup: &Setup, config: Config) -> wgpu_batchnorm::Result<Vec<f32>> {
    let mut run = Run::new(setup, config)?;
    let mut losses = Vec::new();
    for _ in 0..EPOCHS {
        losses.extend(run.train_epoch()?);
    }
    Ok(losses)
}

/// The check's outcome for one configuration.
pub struct Agreement {
    pub config: Config,
    /// Steps before PyTorch's float32 loss leaves its float64 loss by more than
    /// [`HORIZON`] (at most [`STEPS`]).
    pub horizon: usize,
    /// The same for our loss.
    pub ours_horizon: usize,
    /// Largest relative difference from PyTorch's float32 loss within both horizons.
    pub within_horizon: f64,
    /// Largest relative difference from the float64 loss over all steps, here and in
    /// PyTorch's float32 run: how far the float32 trajectories drift.
    pub ours_vs_f64: f64,
    pub pytorch_vs_f64: f64,
    /// Two runs gave bit-identical losses.
    pub deterministic: bool,
}

/// Largest relative difference of `a` from `reference`; NaN if any difference is NaN.
fn max_relative(a: &[f64], reference: &[f64]) -> f64 {
    let mut worst = 0.0f64;
    for (x, r) in a.iter().zip(reference) {
        let d = (x - r).abs() / r.abs();
        if d.is_nan() {
            return f64::NAN;
        }
        worst = worst.max(d);
    }
    worst
}

/// Reads the committed loss curves: the header's names and the rows.
/// Column names and rows of a CSV file of numbers.
type Table = (Vec<String>, Vec<Vec<f64>>);

fn read_curves() -> Result<Table, Box<dyn std::error::Error>> {
    let csv = std::fs::read_to_string(dir().join("losses.csv"))?;
    let mut lines = csv.lines();
    let header = lines
        .next()
        .ok_or("losses.csv is empty")?
        .split(',')
        .map(String::from)
        .collect();
    let rows: Vec<Vec<f64>> = lines
        .map(|l| {
            l.split(',')
                .map(|v| v.parse::<f64>())
                .collect::<Result<_, _>>()
        })
        .collect::<Result<_, _>>()?;
    if rows.len() != STEPS {
        return Err(format!("losses.csv has {} steps, not {STEPS}", rows.len()).into());
    }
    Ok((header, rows))
}

/// Checks that this build draws the committed inputs, then runs each configuration twice
/// and compares with PyTorch's curves; an error says what could not be checked.
pub fn check(setup: &Setup) -> Result<Vec<Agreement>, Box<dyn std::error::Error>> {
    let committed = std::fs::read(dir().join("inputs.safetensors"))?;
    let committed = SafeTensors::deserialize(&committed)?;
    for (name, dtype, shape, bytes) in inputs(setup) {
        let t = committed.tensor(&name)?;
        if t.dtype() != dtype || t.shape() != shape.as_slice() || t.data() != bytes.as_slice() {
            return Err(format!(
                "pytorch/inputs.safetensors: tensor {name} differs from what this build draws; \
                 re-export it (--export-pytorch) and rerun pytorch/train_reference.py"
            )
            .into());
        }
    }
    let (header, rows) = read_curves()?;
    let column = |name: &str| -> Result<Vec<f64>, String> {
        let i = header
            .iter()
            .position(|h| h == name)
            .ok_or(format!("losses.csv has no column {name}"))?;
        Ok(rows.iter().map(|r| r[i]).collect())
    };
    let mut out = Vec::new();
    for config in crate::train::CONFIGS {
        let (f32s, f64s) = (
            column(&config.name())?,
            column(&format!("{}_f64", config.name()))?,
        );
        let first = loss_curve(setup, config)?;
        let second = loss_curve(setup, config)?;
        let deterministic = first
            .iter()
            .zip(&second)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        let ours: Vec<f64> = first.iter().map(|&l| l as f64).collect();
        let horizon_of = |run: &[f64]| {
            (0..STEPS)
                .find(|&s| {
                    let d = max_relative(&run[s..=s], &f64s[s..=s]);
                    d.is_nan() || d > HORIZON
                })
                .unwrap_or(STEPS)
        };
        let (horizon, ours_horizon) = (horizon_of(&f32s), horizon_of(&ours));
        let both = horizon.min(ours_horizon);
        out.push(Agreement {
            config,
            horizon,
            ours_horizon,
            within_horizon: max_relative(&ours[..both], &f32s[..both]),
            ours_vs_f64: max_relative(&ours, &f64s),
            pytorch_vs_f64: max_relative(&f32s, &f64s),
            deterministic,
        });
    }
    Ok(out)
}
