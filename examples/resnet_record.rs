//! The 53 batch-norm layers of a ResNet-50 as `BatchNormLayer`s (named as torchvision's
//! `state_dict` names them, so that a checkpoint loads with `load_checkpoint(.., "layer1.0.bn1.")`),
//! a training forward and backward of all of them recorded into one encoder, and the host
//! cost per recorded layer call: the layer API against the slice API (`BatchNorm`) on the
//! same buffers, alternating, medians of `--reps` rounds. One round is submitted and run at
//! the end, inside a validation error scope, so the recording is known to be valid.
//!
//! ```text
//! cargo run --release --example resnet_record -- [--batch N] [--reps N]
//! ```

use std::time::{Duration, Instant};

use wgpu_batchnorm::{
    AffineGrads, AffineParams, BackwardBuffers, BatchNormConfig, BatchNormLayer, ForwardBuffers,
    GradMode, HeadlessGpu, Mode, RunningStats, SavedStats, TensorShape,
};

/// ResNet-50's batch norms in order: torchvision's name, channels, spatial size at a 224
/// input. Per stage: its bottleneck blocks (bn1 at the block's input size, bn2 and bn3
/// after the stride) and the first block's projection shortcut (`downsample.1`).
fn resnet50() -> Vec<(String, usize, usize)> {
    let mut layers = vec![("bn1".to_string(), 64, 112)];
    let stages = [
        (64, 3, 56, 56),
        (128, 4, 56, 28),
        (256, 6, 28, 14),
        (512, 3, 14, 7),
    ];
    for (s, (width, blocks, input, size)) in stages.into_iter().enumerate() {
        for b in 0..blocks {
            let name = |n: &str| format!("layer{}.{b}.{n}", s + 1);
            let first_size = if b == 0 { input } else { size };
            layers.push((name("bn1"), width, first_size));
            layers.push((name("bn2"), width, size));
            layers.push((name("bn3"), 4 * width, size));
            if b == 0 {
                layers.push((name("downsample.1"), 4 * width, size));
            }
        }
    }
    layers
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(default)
}

/// The prefix of `b` that holds a tensor of shape `s`.
fn part<'a>(b: &'a wgpu::Buffer, s: &TensorShape) -> wgpu::BufferSlice<'a> {
    b.slice(..s.numel() as u64 * 4)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (batch, reps) = (arg("--batch", 2), arg("--reps", 21));
    let gpu = HeadlessGpu::open()?;
    let device = &gpu.device;
    println!("adapter: {}", gpu.describe());
    let mut layers = Vec::new();
    let mut shapes = Vec::new();
    for (name, c, size) in resnet50() {
        let config = BatchNormConfig::new(c);
        let layer = BatchNormLayer::batch_norm_2d(device, config, &name)?;
        layers.push(layer.with_grad_mode(GradMode::Accumulate));
        shapes.push(TensorShape::channels_first(&[batch, c, size, size])?);
    }
    // One set of activation buffers of the largest layer's size, each layer on its prefix.
    let largest = shapes.iter().map(TensorShape::numel).max().unwrap_or(1) as u64 * 4;
    let buffer = |label: &str| {
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: largest,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        })
    };
    let [x, y, dy, dx] = ["x", "y", "dy", "dx"].map(buffer);

    let record_layers = |layers: &mut [BatchNormLayer]| -> Result<wgpu::CommandEncoder, Box<dyn std::error::Error>> {
        let mut encoder = device.create_command_encoder(&Default::default());
        for l in layers.iter() {
            l.zero_grad(&mut encoder);
        }
        for (l, s) in layers.iter_mut().zip(&shapes) {
            l.forward(&mut encoder, s, part(&x, s), part(&y, s))?;
        }
        for (l, s) in layers.iter_mut().zip(&shapes).rev() {
            l.backward(&mut encoder, part(&x, s), part(&y, s), part(&dy, s), part(&dx, s))?;
        }
        Ok(encoder)
    };
    // The same calls through the slice API, on the layers' own buffers.
    let record_slices =
        |layers: &[BatchNormLayer]| -> Result<wgpu::CommandEncoder, Box<dyn std::error::Error>> {
            let mut encoder = device.create_command_encoder(&Default::default());
            for l in layers {
                l.zero_grad(&mut encoder);
            }
            for (l, s) in layers.iter().zip(&shapes) {
                let (g, b) = l.weight_bias().expect("affine");
                let (m, v, t) = l.running().expect("tracked");
                let (sm, si) = l.saved();
                l.batch_norm().forward(
                    &mut encoder,
                    Mode::Train,
                    s,
                    &ForwardBuffers {
                        x: part(&x, s),
                        y: part(&y, s),
                        residual: None,
                        affine: Some(AffineParams {
                            gamma: g.slice(..),
                            beta: b.slice(..),
                        }),
                        running: Some(RunningStats {
                            mean: m.slice(..),
                            var: v.slice(..),
                            num_batches_tracked: Some(t.slice(..)),
                            skipped_batches: None,
                        }),
                        saved: Some(SavedStats {
                            mean: sm.slice(..),
                            invstd: si.slice(..),
                        }),
                    },
                )?;
            }
            for (l, s) in layers.iter().zip(&shapes).rev() {
                let (g, _) = l.weight_bias().expect("affine");
                let (dg, db) = l.grads().expect("affine");
                let (sm, si) = l.saved();
                l.batch_norm().backward(
                    &mut encoder,
                    Mode::Train,
                    s,
                    &BackwardBuffers {
                        x: part(&x, s),
                        dy: part(&dy, s),
                        dx: part(&dx, s),
                        y: None,
                        dresidual: None,
                        gamma: Some(g.slice(..)),
                        grads: Some(AffineGrads {
                            dgamma: dg.slice(..),
                            dbeta: db.slice(..),
                            accumulate: true,
                        }),
                        saved: Some(SavedStats {
                            mean: sm.slice(..),
                            invstd: si.slice(..),
                        }),
                        running: None,
                    },
                )?;
            }
            Ok(encoder)
        };

    let calls = 2 * layers.len();
    let mut paths = std::collections::BTreeMap::new();
    for (l, s) in layers.iter().zip(&shapes) {
        let path = l.batch_norm().forward_path(s, Mode::Train)?;
        *paths.entry(format!("{path:?}")).or_insert(0) += 1;
    }
    println!("training forward paths: {paths:?}");
    let (mut layer_times, mut slice_times) = (Vec::new(), Vec::new());
    for round in 0..reps + 2 {
        // Alternating which goes first, so that neither gains from the other's warm caches.
        let (mut layer_time, mut slice_time) = (Duration::ZERO, Duration::ZERO);
        for first in [round % 2 == 0, round % 2 == 1] {
            let t = Instant::now();
            let encoder = if first {
                record_layers(&mut layers)?
            } else {
                record_slices(&layers)?
            };
            *(if first {
                &mut layer_time
            } else {
                &mut slice_time
            }) = t.elapsed();
            drop(encoder.finish());
        }
        if round >= 2 {
            layer_times.push(layer_time);
            slice_times.push(slice_time);
        }
    }
    // One round run on the GPU, its validation errors caught.
    let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let encoder = record_layers(&mut layers)?;
    gpu.queue.submit([encoder.finish()]);
    let error = pollster::block_on(scope.pop());
    device.poll(wgpu::PollType::wait_indefinitely())?;
    let per_call = |d: Duration| d.as_secs_f64() * 1e6 / calls as f64;
    let (lm, sm) = (median(layer_times), median(slice_times));
    println!(
        "layers: {}, batch {batch}, {calls} recorded calls per round (forward + backward), {reps} rounds",
        layers.len()
    );
    println!(
        "layer API: {:.2} ms per round, {:.2} us per layer call",
        lm.as_secs_f64() * 1e3,
        per_call(lm)
    );
    println!(
        "slice API: {:.2} ms per round, {:.2} us per layer call",
        sm.as_secs_f64() * 1e3,
        per_call(sm)
    );
    match error {
        None => println!("one round submitted and run: no validation error"),
        Some(e) => return Err(format!("the recorded round failed validation: {e}").into()),
    }
    Ok(())
}
