//! GPU benchmark: training forward, eval forward and backward of batch norm per shape and
//! layout, timed with timestamp queries (Vulkan and GL, llvmpipe included, have them; an
//! adapter without them, or `--host-clock`, is timed with the host's clock around each
//! repetition's submission and wait), next to a streaming kernel measured in the same run
//! on tensors of the same size.
//!
//! ```text
//! cargo run --release --example bench                    # the full suite (a real GPU)
//! cargo run --release --example bench -- --quick         # small shapes, software adapters
//! cargo run --release --example bench -- --json out.json --reps 100 --warmup 10
//! cargo run --release --example bench -- --case 8x64x56x56:NHWC --case 4096x512:NC
//! ```
//!
//! Each figure is the median over `--reps` repetitions after `--warmup` untimed ones (and
//! at least 300 ms of warm-up, 1 s for a case's first figure: a GPU lowers its clocks
//! while the host prepares a case). The repetitions are recorded back to back, up to 256
//! per submission, as `benches/pytorch_bn.py` records PyTorch's between CUDA events, each
//! with a timestamp written before its first dispatch (once all earlier work has finished)
//! and one after its last: GPU time of the whole call, no host time in it. `--wait-each`
//! submits and waits for every repetition alone instead (the protocol before 2026-11-27).
//! Inputs rotate over enough sets that their bytes together exceed 256 MiB, so a tensor
//! smaller than the L2 cache is not timed from the cache.
//!
//! With `--per-dispatch`, each pass is recorded again by a batch norm with a
//! `DispatchProfiler` and each of its dispatches' median time printed under the pass.
//!
//! Files: `cases.rs` (the suites), `options.rs` (the command line), `timer.rs` (timestamps,
//! warm-up, medians), `dispatches.rs` (`--per-dispatch`), `report.rs` (JSON).
//!
//! Byte counts (B = the tensor's bytes): training forward 3B (read for statistics, read
//! again and write y), eval 2B, backward 5B (read x and dy for the sums, read them again
//! and write dx). The streaming kernel, `y = 2x + 1` on vec4 in a grid-stride loop, moves
//! 2B; "% stream" is a pass's effective bandwidth over the streaming kernel's on the same
//! B. `benches/pytorch_bn.py` writes PyTorch's figures in the same JSON form and
//! `benches/join.py` joins the two into a speedup table.

#[path = "../common/mod.rs"]
mod common;

mod cases;
mod dispatches;
mod options;
mod report;
mod timer;

use cases::{Case, FULL, Known, QUICK, shape_of};
use common::normal;
use dispatches::{CAPACITY, DispatchMedian, dispatch_medians};
use options::parse_args;
use report::to_json;
use timer::{Timer, WARM_UP, WARM_UP_FIRST};

use rand::{SeedableRng, rngs::StdRng};
use wgpu_batchnorm::{
    AffineGrads, AffineParams, BackwardBuffers, BatchNorm, BatchNormConfig, DispatchProfiler,
    ForwardBuffers, HeadlessGpu, Mode, RunningStats, SavedStats, Tuning,
};

const PASSES: [(&str, u64); 3] = [("fwd-train", 3), ("fwd-eval", 2), ("backward", 5)];

/// With `--stats`: `BatchNorm::statistics` alone (the training forward's reduction,
/// reading B), a figure PyTorch's script has no twin for.
const STATS_PASS: (&str, u64) = ("stats", 1);

/// Input sets rotate until their bytes together reach this (above the L2 of current GPUs).
const ROTATE_BYTES: u64 = 256 << 20;

const STREAM_WGSL: &str = r"
@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = arrayLength(&dst);
    for (var i = gid.x; i < n; i = i + nwg.x * 256u) {
        dst[i] = 2.0 * src[i] + vec4<f32>(1.0);
    }
}
";

fn storage(gpu: &HeadlessGpu, bytes: u64) -> wgpu::Buffer {
    gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("bench tensor"),
        size: bytes,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

fn filled(gpu: &HeadlessGpu, data: &[f32]) -> wgpu::Buffer {
    let b = storage(gpu, 4 * data.len() as u64);
    gpu.queue.write_buffer(&b, 0, bytemuck::cast_slice(data));
    b
}

/// One measured figure.
struct Row {
    dims: Vec<usize>,
    layout: &'static str,
    pass: &'static str,
    /// The tensor's bytes, B.
    tensor_bytes: u64,
    /// Bytes the pass moves: 3B, 2B or 5B.
    bytes: u64,
    ms: f64,
    stream_ms: f64,
    /// With `--per-dispatch`: each dispatch's median time.
    dispatches: Vec<DispatchMedian>,
}

impl Row {
    fn gbps(&self) -> f64 {
        self.bytes as f64 / (self.ms * 1e6)
    }
    /// The streaming kernel's bandwidth: 2B in `stream_ms`.
    fn stream_gbps(&self) -> f64 {
        2.0 * self.tensor_bytes as f64 / (self.stream_ms * 1e6)
    }
    /// Effective bandwidth over the streaming kernel's.
    fn of_stream(&self) -> f64 {
        self.gbps() / self.stream_gbps()
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let opts = parse_args()?;
    let gpu = HeadlessGpu::open()?;
    let info = gpu.adapter.get_info();
    println!("adapter: {}", gpu.describe());
    let mut tuning = opts.tuning.unwrap_or_else(|| Tuning::for_adapter(&info));
    if let Some(v) = opts.scalar {
        tuning.scalar_per_invocation = v;
    }
    if let Some(v) = opts.merge_width {
        tuning.merge_width = v;
    }
    if let Some(v) = opts.invocation_records {
        tuning.invocation_records = v;
    }
    if let Some(v) = opts.vec4 {
        tuning.vec4_per_invocation = v;
    }
    if let Some(v) = opts.eval_recomputes {
        tuning.one_pass_eval_recomputes = v;
    }
    if let Some(w) = opts.workgroups {
        tuning.target_workgroups = w;
    }
    let how = if opts.tuning.is_some()
        || opts.vec4.is_some()
        || opts.scalar.is_some()
        || opts.merge_width.is_some()
        || opts.invocation_records.is_some()
        || opts.eval_recomputes.is_some()
        || opts.workgroups.is_some()
    {
        "forced"
    } else {
        "the adapter's table entry"
    };
    println!(
        "plan tuning: {tuning:?} ({how}); reduction: {:?}",
        opts.reduction
    );
    let suite: Vec<Case> = if !opts.cases.is_empty() {
        opts.cases.clone()
    } else if opts.quick {
        QUICK.iter().map(Known::case).collect()
    } else {
        FULL.iter().map(Known::case).collect()
    };
    let mut rng = StdRng::seed_from_u64(1);
    let stream_module = gpu
        .device
        .create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("bench stream"),
            source: wgpu::ShaderSource::Wgsl(STREAM_WGSL.into()),
        });
    let stream = gpu
        .device
        .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("bench stream"),
            layout: None,
            module: &stream_module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
    let timer = Timer::new(&gpu, opts.host_clock);
    let profiler = match opts.per_dispatch {
        true => Some(std::sync::Arc::new(DispatchProfiler::new(
            &gpu.device,
            CAPACITY,
        )?)),
        false => None,
    };
    println!("protocol: {}", timer.protocol(&opts));
    let mut rows = Vec::new();
    for case in &suite {
        let shape = shape_of(case)?;
        let c = shape.channels();
        let n = shape.numel();
        let bytes = 4 * n as u64;
        let sets = ROTATE_BYTES.div_ceil(bytes).clamp(2, 16) as usize;
        let x_host = normal(&mut rng, n, 0.5, 2.0);
        let dy_host = normal(&mut rng, n, 0.0, 1.0);
        let xs: Vec<_> = (0..sets).map(|_| filled(&gpu, &x_host)).collect();
        let dys: Vec<_> = (0..sets).map(|_| filled(&gpu, &dy_host)).collect();
        let ys: Vec<_> = (0..sets).map(|_| storage(&gpu, bytes)).collect();
        let gamma = filled(&gpu, &normal(&mut rng, c, 1.0, 0.2));
        let beta = filled(&gpu, &normal(&mut rng, c, 0.0, 0.2));
        let rmean = filled(&gpu, &vec![0.0; c]);
        let rvar = filled(&gpu, &vec![1.0; c]);
        let tracked = filled(&gpu, &[0.0; 2]);
        let smean = storage(&gpu, 4 * c as u64);
        let sinvstd = storage(&gpu, 4 * c as u64);
        let dgamma = storage(&gpu, 4 * c as u64);
        let dbeta = storage(&gpu, 4 * c as u64);
        let stats_out = storage(&gpu, 16 * c as u64);
        // The tuning printed above, overrides included.
        let bn = BatchNorm::with_reduction(&gpu.device, BatchNormConfig::new(c), opts.reduction)?
            .with_tuning(tuning);
        let profiled = match &profiler {
            Some(p) => Some(
                BatchNorm::with_reduction(&gpu.device, BatchNormConfig::new(c), opts.reduction)?
                    .with_tuning(tuning)
                    .with_profiler(p.clone()),
            ),
            None => None,
        };
        let running = || RunningStats {
            mean: rmean.slice(..),
            var: rvar.slice(..),
            num_batches_tracked: Some(tracked.slice(..)),
            skipped_batches: None,
        };
        let saved = || SavedStats {
            mean: smean.slice(..),
            invstd: sinvstd.slice(..),
        };
        let affine = || AffineParams {
            gamma: gamma.slice(..),
            beta: beta.slice(..),
        };

        // The streaming kernel on the same bytes, same rotation.
        let stream_groups: Vec<_> = (0..sets)
            .map(|s| {
                gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("bench stream"),
                    layout: &stream.get_bind_group_layout(0),
                    entries: &[
                        wgpu::BindGroupEntry {
                            binding: 0,
                            resource: xs[s].as_entire_binding(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 1,
                            resource: ys[s].as_entire_binding(),
                        },
                    ],
                })
            })
            .collect();
        let vec4s = (n / 4) as u32;
        let groups = vec4s.div_ceil(256).clamp(1, 65535);
        let stream_ms = timer.median_ms(&opts, WARM_UP_FIRST, sets, |encoder, s| {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(&stream);
            pass.set_bind_group(0, &stream_groups[s], &[]);
            pass.dispatch_workgroups(groups, 1, 1);
        })?;

        let passes = PASSES.iter().chain(opts.stats.then_some(&STATS_PASS));
        for &(pass, times) in passes {
            let record = |bn: &BatchNorm, encoder: &mut wgpu::CommandEncoder, s: usize| {
                let result = match pass {
                    "fwd-train" | "fwd-eval" => {
                        let mode = if pass == "fwd-train" {
                            Mode::Train
                        } else {
                            Mode::Eval
                        };
                        bn.forward(
                            encoder,
                            mode,
                            &shape,
                            &ForwardBuffers {
                                x: xs[s].slice(..bytes),
                                y: ys[s].slice(..bytes),
                                residual: None,
                                affine: Some(affine()),
                                running: Some(running()),
                                saved: (mode == Mode::Train).then(saved),
                            },
                        )
                    }
                    "stats" => {
                        bn.statistics(encoder, &shape, xs[s].slice(..bytes), stats_out.slice(..))
                    }
                    _ => bn.backward(
                        encoder,
                        Mode::Train,
                        &shape,
                        &BackwardBuffers {
                            x: xs[s].slice(..bytes),
                            dy: dys[s].slice(..bytes),
                            dx: ys[s].slice(..bytes),
                            y: None,
                            dresidual: None,
                            gamma: Some(gamma.slice(..)),
                            grads: Some(AffineGrads {
                                dgamma: dgamma.slice(..),
                                dbeta: dbeta.slice(..),
                                accumulate: false,
                            }),
                            saved: Some(saved()),
                            running: None,
                        },
                    ),
                };
                result.expect("recording a benchmark pass");
            };
            let ms = timer.median_ms(&opts, WARM_UP, sets, |encoder, s| record(&bn, encoder, s))?;
            let dispatches = match (&profiler, &profiled) {
                (Some(p), Some(pbn)) => {
                    dispatch_medians(&gpu, p, opts.reps, sets, |e, s| record(pbn, e, s))?
                }
                _ => Vec::new(),
            };
            let row = Row {
                dims: case.dims.clone(),
                layout: case.layout,
                pass,
                tensor_bytes: bytes,
                bytes: times * bytes,
                ms,
                stream_ms,
                dispatches,
            };
            println!(
                "{:>20} {:<4} {:<9} {:>9.4} ms {:>7.1} GB/s {:>5.1}% of stream ({:.1} GB/s)",
                format!("{:?}", case.dims),
                case.layout,
                pass,
                row.ms,
                row.gbps(),
                100.0 * row.of_stream(),
                row.stream_gbps(),
            );
            for d in &row.dispatches {
                println!(
                    "{:>20} {:<4} {:<9}   {:<24} {:>11} {:>9.4} ms",
                    "",
                    "",
                    "",
                    d.dispatch.kernel,
                    format!("{:?}", d.dispatch.workgroups),
                    d.ms
                );
            }
            rows.push(row);
        }
    }

    let commit = std::env::var("WGPU_BATCHNORM_COMMIT").unwrap_or_else(|_| {
        std::process::Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map_or("unknown".into(), |o| {
                String::from_utf8_lossy(&o.stdout).trim().to_string()
            })
    });
    let json = to_json(&info, &commit, &opts, timer.protocol(&opts), &rows);
    if let Some(path) = &opts.json {
        std::fs::write(path, json)?;
        println!("wrote {path}");
    }
    Ok(())
}
