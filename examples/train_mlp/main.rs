//! Batch norm inside a GPU training loop, on real data: a multilayer perceptron
//! `Linear -> BN -> ReLU -> Linear -> BN -> ReLU -> Linear` trained with softmax
//! cross-entropy and SGD with momentum on the red wine quality data (raw features, whose
//! scales differ by orders of magnitude), all on the GPU through wgpu, one submission per
//! step. Batch norm is the crate's `BatchNormLayer` (fused ReLU); the linear layers, loss
//! and optimizer are this example's WGSL kernels (`shaders/`).
//!
//! It first checks the crate against PyTorch (the same model, initial weights and batch
//! order trained by `pytorch/train_reference.py`; the first 100 losses must agree) and that
//! two runs give bit-identical losses, then trains with and without batch norm at learning
//! rates 0.01, 0.1 and 1.0, and measures what the lecture claims: the hidden layers'
//! pre-activation scale, the learning rates each network survives, eval-mode prediction
//! with running statistics (also one sample at a time; training on one sample is an error),
//! and population statistics over the training set instead of the running averages.
//! Writes CSV files and PNG plots to `--out` (default `target/train_mlp`).
//!
//! ```text
//! cargo run --release --example train_mlp              # 60 epochs per configuration
//! cargo run --release --example train_mlp -- --quick   # 3 epochs, under a minute on lavapipe
//! WGPU_BACKEND=gl cargo run --release --example train_mlp -- --quick
//! ```

mod data;
mod kernels;
mod net;
mod pytorch;
mod report;
mod train;

use std::path::PathBuf;
use std::time::Instant;
use train::{Config, Epoch, Run, Setup};
use wgpu_batchnorm::{BatchNormError, HeadlessGpu};

/// The seed of the split, the batch order and the initial weights (the committed PyTorch
/// curve was made with it).
const SEED: u64 = 2015;

struct Args {
    quick: bool,
    epochs: usize,
    out: PathBuf,
    export: Option<PathBuf>,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        quick: false,
        epochs: 60,
        out: PathBuf::from("target/train_mlp"),
        export: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |what: &str| it.next().ok_or(format!("{arg} needs {what}"));
        match arg.as_str() {
            "--quick" => (a.quick, a.epochs) = (true, 3),
            "--epochs" => {
                a.epochs = value("a count")?
                    .parse()
                    .map_err(|e| format!("--epochs: {e}"))?
            }
            "--out" => a.out = value("a folder")?.into(),
            "--export-pytorch" => a.export = Some(value("a file")?.into()),
            _ => {
                return Err(format!(
                    "unknown argument {arg}; use --quick, --epochs N, --out DIR, --export-pytorch FILE"
                ));
            }
        }
    }
    Ok(a)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = args()?;
    let gpu = HeadlessGpu::open()?;
    println!("adapter: {}", gpu.describe());
    let data = data::WineData::load(SEED);
    let setup = Setup::new(&gpu, &data, SEED);
    if let Some(path) = &args.export {
        pytorch::export(&setup, path)?;
        println!("wrote {}", path.display());
        return Ok(());
    }
    let started = Instant::now();

    println!(
        "\n== against PyTorch: the first {} steps, same data, weights and batch order",
        pytorch::STEPS
    );
    let mut failures = Vec::new();
    println!(
        "  relative loss differences; horizon: steps before a float32 loss leaves the float64 loss by {:.0e}, PyTorch's and ours \
         (ours at least {} of PyTorch's); bound within both {:.0e}",
        pytorch::HORIZON,
        pytorch::HORIZON_FRACTION,
        pytorch::TOLERANCE
    );
    println!(
        "  {:<14} {:>7} {:>7} {:>20} {:>14} {:>17} {:>14}",
        "config",
        "horizon",
        "ours",
        "vs PyTorch f32 there",
        "ours vs f64",
        "PyTorch f32 vs f64",
        "bit-identical"
    );
    for a in pytorch::check(&setup)? {
        let name = a.config.name();
        println!(
            "  {name:<14} {:>7} {:>7} {:>20.1e} {:>14.1e} {:>17.1e} {:>14}",
            a.horizon,
            a.ours_horizon,
            a.within_horizon,
            a.ours_vs_f64,
            a.pytorch_vs_f64,
            a.deterministic
        );
        if (a.ours_horizon as f64) < pytorch::HORIZON_FRACTION * a.horizon as f64 {
            failures.push(format!(
                "{name}: our float32 loss leaves the float64 loss at step {}, before {} of \
                 PyTorch's float32 horizon ({} steps)",
                a.ours_horizon,
                pytorch::HORIZON_FRACTION,
                a.horizon
            ));
        }
        if a.within_horizon.is_nan() || a.within_horizon > pytorch::TOLERANCE {
            failures.push(format!(
                "{name}: loss departs from PyTorch's within the horizon"
            ));
        }
        if !a.deterministic {
            failures.push(format!("{name}: two runs with the same seed differ"));
        }
    }

    println!("\n== training {} epochs per configuration", args.epochs);
    let mut outcomes = Vec::new();
    for config in train::CONFIGS {
        outcomes.push(experiment(&setup, config, args.epochs, &mut failures)?);
    }
    let seconds = started.elapsed().as_secs_f64();

    std::fs::create_dir_all(&args.out)?;
    report::write_csv(&args.out, &outcomes)?;
    report::write_plots(&args.out, &outcomes)?;
    println!("\n{}", report::table(&outcomes, args.epochs));
    println!(
        "wrote epochs.csv, steps.csv, loss.png, accuracy.png, activations.png to {}",
        args.out.display()
    );
    println!(
        "total {seconds:.1} s ({} mode)",
        if args.quick { "quick" } else { "full" }
    );
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("failed: {}", failures.join("; ")).into())
    }
}

/// Trains one configuration and measures it; checks that fail are added to `failures`.
fn experiment(
    setup: &Setup,
    config: Config,
    epochs: usize,
    failures: &mut Vec<String>,
) -> Result<report::Outcome, BatchNormError> {
    let name = config.name();
    let mut run = Run::new(setup, config)?;
    let mut outcome = report::Outcome {
        config,
        steps: Vec::new(),
        epochs: Vec::new(),
        diverged_at: None,
        single_accuracy: None,
        single_agree: None,
        population_accuracy: None,
        epoch_seconds: Vec::new(),
    };
    for epoch in 1..=epochs {
        // A training epoch's wall time: its 20 submissions and the read of its losses,
        // which waits for the GPU (the evaluation after it is not counted).
        let started = Instant::now();
        let losses = run.train_epoch()?;
        outcome.epoch_seconds.push(started.elapsed().as_secs_f64());
        let train_loss = losses.iter().sum::<f32>() / losses.len() as f32;
        outcome.steps.extend(&losses);
        let (test_loss, test_accuracy, preactivation_std) = run.evaluate()?;
        outcome.epochs.push(Epoch {
            train_loss,
            test_loss,
            test_accuracy,
            preactivation_std,
        });
        if !train_loss.is_finite() {
            outcome.diverged_at = Some(epoch);
            break;
        }
    }
    let per_epoch = outcome.median_epoch_seconds();
    let last = outcome.epochs.last().expect("at least one epoch");
    println!(
        "  {name:<14} train loss {:>9.4}  test accuracy {:5.1}%  pre-activation std {:.3} / {:.3}  (training epoch {:.0} ms, median)",
        last.train_loss,
        100.0 * last.test_accuracy,
        last.preactivation_std[0],
        last.preactivation_std[1],
        1e3 * per_epoch
    );
    if outcome.diverged_at.is_some() {
        println!(
            "  {name:<14} diverged: loss not finite in epoch {}",
            outcome.epochs.len()
        );
        return Ok(outcome);
    }
    // Prediction one sample at a time (batch norm in eval mode takes a batch of one) must
    // give the batched predictions.
    let batched = run.test_hits()?;
    let single = run.predict_one_by_one()?;
    let agree = batched.iter().zip(&single).filter(|(a, b)| a == b).count();
    outcome.single_accuracy = Some(single.iter().sum::<u32>() as f64 / single.len() as f64);
    outcome.single_agree = Some(agree);
    if agree != batched.len() {
        failures.push(format!(
            "{name}: {} one-sample predictions differ from the batched ones",
            batched.len() - agree
        ));
    }
    if config.batch_norm {
        match run.train_on_one_sample() {
            Err(e @ BatchNormError::TooFewValuesPerChannel { .. }) => {
                println!("  {name:<14} training on one sample: error \"{e}\"")
            }
            other => failures.push(format!(
                "{name}: training on one sample gave {other:?}, not TooFewValuesPerChannel"
            )),
        }
        run.apply_population_stats()?;
        let (_, accuracy, _) = run.evaluate()?;
        outcome.population_accuracy = Some(accuracy);
        println!(
            "  {name:<14} test accuracy {:.1}% with running averages, {:.1}% with population statistics",
            100.0 * last.test_accuracy,
            100.0 * accuracy
        );
    }
    Ok(outcome)
}
