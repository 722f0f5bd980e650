//! What the experiments write: CSV files of every epoch and step, PNG plots (plotters), and
//! the Markdown table of final results that the README shows.

use crate::train::{Config, Epoch};
use plotters::prelude::*;
use std::fmt::Write as _;
use std::path::Path;

/// One configuration's whole run.
pub struct Outcome {
    pub config: Config,
    pub steps: Vec<f32>,
    pub epochs: Vec<Epoch>,
    /// The epoch whose training loss was no longer finite, if any (training stopped there).
    pub diverged_at: Option<usize>,
    /// Predictions one sample at a time: accuracy, and how many equal the batched ones.
    pub single_accuracy: Option<f64>,
    pub single_agree: Option<usize>,
    /// Test accuracy with population statistics instead of running averages.
    pub population_accuracy: Option<f64>,
    /// Wall time of each training epoch (its submissions and the read of its losses).
    pub epoch_seconds: Vec<f64>,
}

impl Outcome {
    /// The median training epoch's wall time.
    pub fn median_epoch_seconds(&self) -> f64 {
        let mut t = self.epoch_seconds.clone();
        t.sort_by(f64::total_cmp);
        t.get(t.len() / 2).copied().unwrap_or(f64::NAN)
    }
}

/// `epochs.csv` and `steps.csv` under `out`.
pub fn write_csv(out: &Path, outcomes: &[Outcome]) -> std::io::Result<()> {
    let mut epochs =
        String::from("config,epoch,train_loss,test_loss,test_accuracy,preact_std_1,preact_std_2\n");
    let mut steps = String::from("config,step,loss\n");
    for o in outcomes {
        let name = o.config.name();
        for (i, e) in o.epochs.iter().enumerate() {
            let [s1, s2] = e.preactivation_std;
            let _ = writeln!(
                epochs,
                "{name},{},{},{},{},{s1},{s2}",
                i + 1,
                e.train_loss,
                e.test_loss,
                e.test_accuracy
            );
        }
        for (i, l) in o.steps.iter().enumerate() {
            let _ = writeln!(steps, "{name},{},{l}", i + 1);
        }
    }
    std::fs::write(out.join("epochs.csv"), epochs)?;
    std::fs::write(out.join("steps.csv"), steps)
}

/// The README's table: one row per configuration.
pub fn table(outcomes: &[Outcome], epochs: usize) -> String {
    let pct = |a: Option<f64>| a.map_or("-".to_string(), |a| format!("{:.1}%", 100.0 * a));
    let mut t = String::from(
        "| network | lr | final train loss | test accuracy (running stats) | population stats | one sample at a time | training epoch |\n|---|---|---|---|---|---|---|\n",
    );
    for o in outcomes {
        let net = if o.config.batch_norm {
            "with BN"
        } else {
            "without BN"
        };
        let last = o.epochs.last();
        let loss = match o.diverged_at {
            Some(e) => format!("diverged (epoch {e})"),
            None => last.map_or("-".into(), |e| format!("{:.3}", e.train_loss)),
        };
        let acc = if o.diverged_at.is_some() {
            None
        } else {
            last.map(|e| e.test_accuracy)
        };
        let single = match (o.single_accuracy, o.single_agree) {
            (Some(a), Some(n)) => format!("{} ({n} equal to batched)", pct(Some(a))),
            _ => "-".into(),
        };
        let _ = writeln!(
            t,
            "| {net} | {:?} | {loss} | {} | {} | {single} | {:.0} ms |",
            o.config.lr,
            pct(acc),
            pct(o.population_accuracy),
            1e3 * o.median_epoch_seconds()
        );
    }
    let _ = writeln!(
        t,
        "\n{epochs} epochs of 20 steps (batch 64), SGD momentum 0.9; training epoch: median wall time of an epoch's 20 submissions and the read of its losses."
    );
    t
}

/// A plotted line: legend name, points, colour index, dashed.
type Line = (String, Vec<(i32, f64)>, usize, bool);

const COLORS: [RGBColor; 3] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
];

/// One figure of two panels (without and with batch norm) of a per-epoch quantity; `series`
/// gives the lines of a run (name suffix, values), `log` a logarithmic y axis.
fn figure(
    path: &Path,
    title: &str,
    y_label: &str,
    outcomes: &[Outcome],
    log: bool,
    series: impl Fn(&Outcome) -> Vec<(String, Vec<f64>)>,
) -> Result<(), Box<dyn std::error::Error>> {
    let root = BitMapBackend::new(path, (1200, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    let finite = |v: &f64| v.is_finite() && (!log || *v > 0.0);
    let all: Vec<f64> = outcomes
        .iter()
        .flat_map(&series)
        .flat_map(|(_, v)| v)
        .filter(finite)
        .collect();
    let (lo, hi) = all
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    let (lo, hi) = if log {
        (lo * 0.8, hi * 1.25)
    } else {
        (lo.min(0.0), hi * 1.05)
    };
    let epochs = outcomes.iter().map(|o| o.epochs.len()).max().unwrap_or(1) as i32;
    for (panel, batch_norm) in root.split_evenly((1, 2)).iter().zip([false, true]) {
        let caption = if batch_norm {
            "with batch norm"
        } else {
            "without batch norm"
        };
        let mut builder = ChartBuilder::on(panel);
        builder
            .caption(caption, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70);
        let lines: Vec<Line> = outcomes
            .iter()
            .filter(|o| o.config.batch_norm == batch_norm)
            .enumerate()
            .flat_map(|(i, o)| {
                series(o)
                    .into_iter()
                    .enumerate()
                    .map(move |(k, (suffix, v))| {
                        let points = v
                            .iter()
                            .enumerate()
                            .filter(|(_, y)| finite(y))
                            .map(|(e, &y)| (e as i32 + 1, y))
                            .collect();
                        (format!("lr {:?}{suffix}", o.config.lr), points, i, k > 0)
                    })
            })
            .collect();
        macro_rules! plot {
            ($chart:expr) => {{
                let mut chart = $chart;
                chart
                    .configure_mesh()
                    .x_desc("epoch")
                    .y_desc(y_label)
                    .draw()?;
                for (name, points, color, dashed) in lines {
                    let style = COLORS[color % 3].stroke_width(2);
                    let legend = move |(x, y): (i32, i32)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], style)
                    };
                    if dashed {
                        chart
                            .draw_series(DashedLineSeries::new(points, 6, 4, style))?
                            .label(name)
                            .legend(legend);
                    } else {
                        chart
                            .draw_series(LineSeries::new(points, style))?
                            .label(name)
                            .legend(legend);
                    }
                }
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .draw()?;
            }};
        }
        if log {
            plot!(builder.build_cartesian_2d(1..epochs.max(2), (lo..hi).log_scale())?);
        } else {
            plot!(builder.build_cartesian_2d(1..epochs.max(2), lo..hi)?);
        }
    }
    root.present()?;
    Ok(())
}

/// `loss.png`, `accuracy.png` and `activations.png` under `out`.
pub fn write_plots(out: &Path, outcomes: &[Outcome]) -> Result<(), Box<dyn std::error::Error>> {
    // Text is drawn with ab_glyph from an embedded font: no system font library needed.
    plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
        .map_err(|_| "the embedded DejaVu Sans font did not load")?;
    let per_epoch = |f: fn(&Epoch) -> f64| {
        move |o: &Outcome| vec![(String::new(), o.epochs.iter().map(f).collect())]
    };
    figure(
        &out.join("loss.png"),
        "Training loss per epoch (red wine quality, raw features)",
        "mean cross-entropy",
        outcomes,
        true,
        per_epoch(|e| e.train_loss as f64),
    )?;
    figure(
        &out.join("accuracy.png"),
        "Test accuracy per epoch (eval mode, running statistics)",
        "test accuracy",
        outcomes,
        false,
        per_epoch(|e| e.test_accuracy),
    )?;
    figure(
        &out.join("activations.png"),
        "Scale of the hidden pre-activations (std over the test set; solid: layer 1, dashed: layer 2)",
        "std of ReLU's input",
        outcomes,
        true,
        |o| {
            (0..2)
                .map(|l| {
                    (
                        format!(", layer {}", l + 1),
                        o.epochs.iter().map(|e| e.preactivation_std[l]).collect(),
                    )
                })
                .collect()
        },
    )?;
    Ok(())
}
