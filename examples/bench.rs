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
//! at least 300 ms of warm-up, 1 s for a case's first figure: a GPU lowers its clocks while
//! the host prepares a case). The
//! repetitions are recorded back to back, up to 256 per submission, as
//! `benches/pytorch_bn.py` records PyTorch's between CUDA events, each with a timestamp
//! written before its first dispatch (once all earlier work has finished) and one after its
//! last: GPU time of the whole call, no host time in it. `--wait-each` submits and waits
//! for every repetition alone instead (the protocol before 2026-11-27). Inputs rotate over enough sets
//! that their bytes together exceed 256 MiB, so a tensor smaller than the L2 cache is not
//! timed from the cache.
//!
//! Byte counts (B = the tensor's bytes): training forward 3B (read for statistics, read
//! again and write y), eval 2B, backward 5B (read x and dy for the sums, read them again
//! and write dx). The streaming kernel, `y = 2x + 1` on vec4 in a grid-stride loop, moves
//! 2B; "% stream" is a pass's effective bandwidth over the streaming kernel's on the same
//! B. `benches/pytorch_bn.py` writes PyTorch's figures in the same JSON form and
//! `benches/join.py` joins the two into a speedup table.

mod common;

use common::normal;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::{SeedableRng, rngs::StdRng};
use wgpu_batchnorm::{
    AffineGrads, AffineParams, BackwardBuffers, BatchNorm, BatchNormConfig, ForwardBuffers,
    HeadlessGpu, Mode, Reduction, RunningStats, SavedStats, TensorShape, Tuning,
};

/// One shape of the suite: logical (N, C, *spatial) and its memory layout.
#[derive(Clone)]
struct Case {
    /// Logical (N, C, *spatial).
    dims: Vec<usize>,
    layout: &'static str,
}

/// A case of the built-in suites.
struct Known {
    dims: &'static [usize],
    layout: &'static str,
}

impl Known {
    fn case(&self) -> Case {
        Case {
            dims: self.dims.to_vec(),
            layout: self.layout,
        }
    }
}

/// `NxCxHxW:LAYOUT` (LAYOUT one of NCHW, NHWC, NC; any rank from 2 to 5).
fn parse_case(s: &str) -> Result<Case, String> {
    let (dims, layout) = s.split_once(':').ok_or(format!(
        "--case {s:?}: expected DIMS:LAYOUT, e.g. 8x64x56x56:NHWC"
    ))?;
    let dims = dims
        .split('x')
        .map(|d| d.parse::<usize>().map_err(|e| format!("--case {s:?}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let layout = match layout {
        "NCHW" => "NCHW",
        "NHWC" => "NHWC",
        "NC" => "NC",
        other => {
            return Err(format!(
                "--case {s:?}: layout {other:?} is not NCHW, NHWC or NC"
            ));
        }
    };
    if !(2..=5).contains(&dims.len()) {
        return Err(format!("--case {s:?}: rank {} is not 2 to 5", dims.len()));
    }
    Ok(Case { dims, layout })
}

/// The issue's suite: the shapes PyTorch was measured on, in both layouts.
const FULL: &[Known] = &[
    Known {
        dims: &[32, 64, 112, 112],
        layout: "NCHW",
    },
    Known {
        dims: &[32, 64, 112, 112],
        layout: "NHWC",
    },
    Known {
        dims: &[64, 256, 56, 56],
        layout: "NCHW",
    },
    Known {
        dims: &[64, 256, 56, 56],
        layout: "NHWC",
    },
    Known {
        dims: &[256, 2048, 7, 7],
        layout: "NCHW",
    },
    Known {
        dims: &[256, 2048, 7, 7],
        layout: "NHWC",
    },
    Known {
        dims: &[16, 32, 256, 256],
        layout: "NCHW",
    },
    Known {
        dims: &[16, 32, 256, 256],
        layout: "NHWC",
    },
    Known {
        dims: &[4096, 4096],
        layout: "NC",
    },
    // Many channels with few values each (the hardening issue's cliff), next to the same
    // data laid out as (M, C).
    Known {
        dims: &[1, 1000000, 2],
        layout: "NCHW",
    },
    Known {
        dims: &[2, 1000000],
        layout: "NC",
    },
    Known {
        dims: &[1, 262144, 64],
        layout: "NCHW",
    },
    Known {
        dims: &[64, 262144],
        layout: "NC",
    },
];

/// Small shapes of the same kinds, for software adapters.
const QUICK: &[Known] = &[
    Known {
        dims: &[8, 16, 32, 32],
        layout: "NCHW",
    },
    Known {
        dims: &[8, 16, 32, 32],
        layout: "NHWC",
    },
    Known {
        dims: &[16, 128, 7, 7],
        layout: "NCHW",
    },
    Known {
        dims: &[16, 128, 7, 7],
        layout: "NHWC",
    },
    Known {
        dims: &[512, 256],
        layout: "NC",
    },
    Known {
        dims: &[1, 20000, 2],
        layout: "NCHW",
    },
    Known {
        dims: &[2, 20000],
        layout: "NC",
    },
];

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

struct Options {
    quick: bool,
    reps: usize,
    warmup: usize,
    json: Option<String>,
    cases: Vec<Case>,
    /// Forced plan tunables (`--tuning cpu|gpu`); the adapter's table entry otherwise.
    tuning: Option<Tuning>,
    /// Forced `Tuning::vec4_per_invocation` (`--vec4 N`), over either of the above.
    vec4: Option<usize>,
    /// One submission per repetition, waited for before the next (`--wait-each`).
    wait_each: bool,
    /// Time with the host's clock even where the adapter has timestamp queries
    /// (`--host-clock`), to check them.
    host_clock: bool,
    /// Also time `BatchNorm::statistics` alone (`--stats`).
    stats: bool,
    /// Forced `Tuning::target_workgroups` (`--workgroups N`), over the tuning above.
    workgroups: Option<usize>,
    /// Forced reduction kernels (`--reduction workgroup|subgroup`); the adapter's choice
    /// (subgroups where it has them) otherwise.
    reduction: Reduction,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        quick: false,
        reps: 0,
        warmup: 0,
        json: None,
        cases: Vec::new(),
        tuning: None,
        vec4: None,
        wait_each: false,
        stats: false,
        workgroups: None,
        host_clock: false,
        reduction: Reduction::Auto,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--quick" => o.quick = true,
            "--wait-each" => o.wait_each = true,
            "--stats" => o.stats = true,
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
            "--workgroups" => {
                o.workgroups = Some(
                    value("--workgroups")?
                        .parse()
                        .map_err(|e| format!("--workgroups: {e}"))?,
                )
            }
            "--reps" => {
                o.reps = value("--reps")?
                    .parse()
                    .map_err(|e| format!("--reps: {e}"))?
            }
            "--warmup" => {
                o.warmup = value("--warmup")?
                    .parse()
                    .map_err(|e| format!("--warmup: {e}"))?
            }
            "--json" => o.json = Some(value("--json")?),
            "--case" => o.cases.push(parse_case(&value("--case")?)?),
            "--tuning" => {
                o.tuning = Some(match value("--tuning")?.as_str() {
                    "cpu" => Tuning::CPU,
                    "gpu" => Tuning::GPU,
                    other => return Err(format!("--tuning {other:?}: expected cpu or gpu")),
                })
            }
            "--vec4" => {
                o.vec4 = Some(
                    value("--vec4")?
                        .parse()
                        .map_err(|e| format!("--vec4: {e}"))?,
                )
            }
            "-h" | "--help" => {
                println!(
                    "usage: bench [--quick] [--reps N] [--warmup N] [--json PATH] [--case DIMS:LAYOUT ...] [--tuning cpu|gpu] [--vec4 N] [--wait-each] [--stats] [--workgroups N] [--host-clock] [--reduction workgroup|subgroup]\n\
                     times training forward, eval forward and backward per shape and layout;\n\
                     --case (repeatable, e.g. 8x64x56x56:NHWC) replaces the suite"
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

/// Repetitions recorded into one submission (two timestamps each).
const BATCH: usize = 256;

/// Least wall time of warm-up for the first figure of a case, right after the seconds of
/// host work that prepare it. An H200 idled at 345-585 MHz (1980 MHz busy) during that work
/// and took up to 0.6 s of steady GPU work to raise its clock again; timed right away, the
/// same kernel on the same buffers measured 1,370 or 3,100 GB/s.
const WARM_UP_FIRST: Duration = Duration::from_millis(1000);

/// Least wall time of warm-up for the other figures of a case.
const WARM_UP: Duration = Duration::from_millis(300);

/// Times `record` (one repetition into the given encoder, for input set `set`) with
/// timestamp queries, or where the adapter has none (GL) with the host's clock around
/// each repetition's submission and wait; returns the median in milliseconds.
struct Timer<'a> {
    gpu: &'a HeadlessGpu,
    stamps: Option<Stamps>,
}

/// The timestamp query set and its readback.
struct Stamps {
    queries: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
    period_ns: f64,
}

impl<'a> Timer<'a> {
    fn new(gpu: &'a HeadlessGpu, host_clock: bool) -> Self {
        let has_timestamps = gpu
            .device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY);
        let has_timestamps = has_timestamps && !host_clock;
        let stamps = has_timestamps.then(|| {
            let buffer = |usage| {
                gpu.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("bench timestamps"),
                    size: 16 * BATCH as u64,
                    usage,
                    mapped_at_creation: false,
                })
            };
            Stamps {
                queries: gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("bench timestamps"),
                    ty: wgpu::QueryType::Timestamp,
                    count: 2 * BATCH as u32,
                }),
                resolve: buffer(wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC),
                readback: buffer(wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST),
                period_ns: f64::from(gpu.queue.get_timestamp_period()),
            }
        });
        Self { gpu, stamps }
    }

    /// How repetitions are timed, as printed and written to the JSON.
    fn protocol(&self, opts: &Options) -> &'static str {
        if self.stamps.is_none() {
            "host clock around each repetition's submission and wait"
        } else if opts.wait_each {
            "one submission per repetition, waited for"
        } else {
            "repetitions back to back, up to 256 per submission"
        }
    }

    /// An empty compute pass that writes timestamp `index` at its end (once every earlier
    /// command has finished).
    fn stamp(st: &Stamps, encoder: &mut wgpu::CommandEncoder, index: u32) {
        encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("bench timestamp"),
            timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                query_set: &st.queries,
                beginning_of_pass_write_index: None,
                end_of_pass_write_index: Some(index),
            }),
        });
    }

    /// Records `n` repetitions from `first` back to back in one submission, waits, and
    /// returns each one's GPU time in milliseconds (without timestamp queries: one
    /// submission per repetition, host time from submission to the end of the wait).
    fn batch(
        &self,
        first: usize,
        n: usize,
        sets: usize,
        record: &mut impl FnMut(&mut wgpu::CommandEncoder, usize),
    ) -> Result<Vec<f64>, Box<dyn std::error::Error>> {
        let device = &self.gpu.device;
        let Some(st) = &self.stamps else {
            let mut times = Vec::with_capacity(n);
            for i in 0..n {
                let mut encoder = device.create_command_encoder(&Default::default());
                record(&mut encoder, (first + i) % sets);
                let commands = encoder.finish();
                let started = Instant::now();
                self.gpu.queue.submit([commands]);
                device.poll(wgpu::PollType::wait_indefinitely())?;
                times.push(started.elapsed().as_secs_f64() * 1e3);
            }
            return Ok(times);
        };
        let mut encoder = device.create_command_encoder(&Default::default());
        for i in 0..n {
            Self::stamp(st, &mut encoder, 2 * i as u32);
            record(&mut encoder, (first + i) % sets);
            Self::stamp(st, &mut encoder, 2 * i as u32 + 1);
        }
        let bytes = 16 * n as u64;
        encoder.resolve_query_set(&st.queries, 0..2 * n as u32, &st.resolve, 0);
        encoder.copy_buffer_to_buffer(&st.resolve, 0, &st.readback, 0, bytes);
        self.gpu.queue.submit([encoder.finish()]);
        let slice = st.readback.slice(..bytes);
        slice.map_async(wgpu::MapMode::Read, |r| r.expect("map timestamps"));
        device.poll(wgpu::PollType::wait_indefinitely())?;
        let times = {
            let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&slice.get_mapped_range()?);
            ticks
                .chunks_exact(2)
                .map(|pair| pair[1].wrapping_sub(pair[0]) as f64 * st.period_ns * 1e-6)
                .collect()
        };
        st.readback.unmap();
        Ok(times)
    }

    fn median_ms(
        &self,
        opts: &Options,
        warm_up: Duration,
        sets: usize,
        mut record: impl FnMut(&mut wgpu::CommandEncoder, usize),
    ) -> Result<f64, Box<dyn std::error::Error>> {
        let batch = if opts.wait_each { 1 } else { BATCH };
        // Warm-up: at least `--warmup` repetitions and at least `warm_up` of wall time, so a
        // GPU that lowered its clocks while the host prepared the case has raised them again.
        // Batches double so that the GPU, not the host's submit-and-wait, fills that time.
        let started = Instant::now();
        let mut rep = 0;
        let mut n = opts.warmup.max(1);
        while rep < opts.warmup || started.elapsed() < warm_up {
            let n_now = if opts.wait_each { 1 } else { n.min(batch) };
            self.batch(rep, n_now, sets, &mut record)?;
            rep += n_now;
            n *= 2;
        }
        let mut times = Vec::with_capacity(opts.reps);
        while times.len() < opts.reps {
            let n = batch.min(opts.reps - times.len());
            times.extend(self.batch(rep, n, sets, &mut record)?);
            rep += n;
        }
        times.sort_by(f64::total_cmp);
        Ok(times[times.len() / 2])
    }
}

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

fn shape_of(case: &Case) -> Result<TensorShape, wgpu_batchnorm::BatchNormError> {
    match case.layout {
        "NHWC" => {
            let d = &case.dims;
            let mut nhwc = vec![d[0]];
            nhwc.extend_from_slice(&d[2..]);
            nhwc.push(d[1]);
            TensorShape::channels_last(&nhwc)
        }
        _ => TensorShape::channels_first(&case.dims),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let opts = parse_args()?;
    let gpu = HeadlessGpu::open()?;
    let info = gpu.adapter.get_info();
    println!("adapter: {}", gpu.describe());
    let mut tuning = opts.tuning.unwrap_or_else(|| Tuning::for_adapter(&info));
    if let Some(v) = opts.vec4 {
        tuning.vec4_per_invocation = v;
    }
    if let Some(w) = opts.workgroups {
        tuning.target_workgroups = w;
    }
    let how = if opts.tuning.is_some() || opts.vec4.is_some() || opts.workgroups.is_some() {
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
            let ms = timer.median_ms(&opts, WARM_UP, sets, |encoder, s| {
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
            })?;
            let row = Row {
                dims: case.dims.clone(),
                layout: case.layout,
                pass,
                tensor_bytes: bytes,
                bytes: times * bytes,
                ms,
                stream_ms,
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

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Hinnant's algorithm).
fn civil_date(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| match c {
            '"' => vec!['\\', '"'],
            '\\' => vec!['\\', '\\'],
            c if (c as u32) < 0x20 => format!("\\u{:04x}", c as u32).chars().collect(),
            c => vec![c],
        })
        .collect()
}

/// The figures as JSON, in the form `benches/pytorch_bn.py` writes too.
fn to_json(
    info: &wgpu::AdapterInfo,
    commit: &str,
    opts: &Options,
    protocol: &str,
    rows: &[Row],
) -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_date((secs / 86_400) as i64);
    let mut out = String::from("{\n");
    out += "  \"impl\": \"wgpu-batchnorm\",\n";
    out += &format!(
        "  \"device\": \"{}\",\n  \"driver\": \"{} {}\",\n  \"backend\": \"{:?}\",\n",
        escape(&info.name),
        escape(&info.driver),
        escape(&info.driver_info),
        info.backend
    );
    out += &format!("  \"date\": \"{y:04}-{m:02}-{d:02}\",\n  \"commit\": \"{commit}\",\n");
    out += &format!(
        "  \"reps\": {},\n  \"warmup\": {},\n  \"protocol\": \"{}\",\n  \"results\": [\n",
        opts.reps, opts.warmup, protocol
    );
    for (i, r) in rows.iter().enumerate() {
        out += &format!(
            "    {{\"shape\": {:?}, \"layout\": \"{}\", \"pass\": \"{}\", \"bytes\": {}, \"ms\": {:.6}, \"gbps\": {:.2}, \"stream_ms\": {:.6}, \"stream_pct\": {:.2}}}{}\n",
            r.dims,
            r.layout,
            r.pass,
            r.bytes,
            r.ms,
            r.gbps(),
            r.stream_ms,
            100.0 * r.of_stream(),
            if i + 1 < rows.len() { "," } else { "" }
        );
    }
    out += "  ]\n}\n";
    out
}
