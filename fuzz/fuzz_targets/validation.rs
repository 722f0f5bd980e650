//! Fuzz target for the validation layer: arbitrary configurations, shapes, modes, buffer
//! slices (buffer, offset, size, usage) and optional buffers are handed to every recording
//! call (forward, backward, statistics, merge_statistics, forward_with_statistics) on a
//! real (software) device. Properties:
//! - it never panics;
//! - a call it accepts records work that wgpu accepts too (`CommandEncoder::finish` under
//!   an error scope reports nothing);
//! - a call it rejects gets a typed error other than `Wgpu` (which would mean something
//!   reached wgpu and was refused there).
//!
//! ```text
//! RUSTC_BOOTSTRAP=1 cargo fuzz run validation -s none -- -max_total_time=300
//! ```

#![no_main]

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use wgpu_batchnorm::{
    AffineGrads, AffineParams, BackwardBuffers, BatchNorm, BatchNormConfig, BatchNormError, DType,
    Epilogue, ForwardBuffers, HeadlessGpu, Layout, Mode, RunningStats, SavedStats, TensorShape,
};

#[derive(Arbitrary, Debug)]
enum Slice {
    /// The size the slice's role needs for the shape, in an aligned region of the pool:
    /// region `region % 12` (its own role's region makes no overlap).
    Exact { buffer: u8, region: u8 },
    /// Any offset and size inside the buffer.
    Any { buffer: u8, offset: u32, len: u32 },
}

#[derive(Arbitrary, Debug)]
struct Input {
    num_features: u8,
    eps: f32,
    momentum: Option<f32>,
    affine: bool,
    track: bool,
    skip_non_finite: bool,
    epilogue: u8,
    f16: bool,
    train: bool,
    /// Whether the backward accumulates into dgamma and dbeta.
    accumulate: bool,
    /// Which recording call: forward, backward, statistics, merge_statistics,
    /// forward_with_statistics (modulo 5).
    call: u8,
    channels_last: bool,
    dims: Vec<u8>,
    /// Whether each of the four pool buffers has STORAGE usage.
    storage: [bool; 4],
    /// x, y / dy, gamma, beta, running mean, running var, tracked, save mean, save invstd,
    /// dx, dgamma, dbeta, skipped batches, residual, backward's y, dresidual, statistics
    /// records a (the statistics pass's output, the merge's first input, the synchronized
    /// forward's statistics) and b (the merge's second input), merge output.
    slices: [Option<Slice>; 19],
}

struct Gpu {
    gpu: HeadlessGpu,
    layers: Mutex<HashMap<[u32; 8], BatchNorm>>,
}

fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| Gpu {
        gpu: HeadlessGpu::open().expect("a wgpu adapter"),
        layers: Mutex::new(HashMap::new()),
    })
}

fuzz_target!(|input: Input| {
    let g = gpu();
    let device = &g.gpu.device;
    // Arbitrary options must be refused by validation alone (no device work) ...
    let arbitrary = BatchNormConfig::new(usize::from(input.num_features))
        .eps(input.eps)
        .momentum(input.momentum);
    if let Err(e) = arbitrary.validate() {
        assert!(matches!(e, BatchNormError::InvalidConfig(_)), "{e}");
        assert!(BatchNorm::new(device, arbitrary).is_err());
    }
    // ... while the layers that record come from a small set, so that pipelines are built
    // once each (every build costs the software driver a shader compilation and memory).
    // Momentum and the non-finite skip only change the running update's arithmetic, so they
    // vary together, keeping the set of layers (each a pipeline build) to 144.
    let config = BatchNormConfig::new(usize::from(input.num_features) % 3 + 1)
        .momentum((!input.skip_non_finite).then_some(0.1))
        .affine(input.affine)
        .track_running_stats(input.track)
        .skip_non_finite_update(input.skip_non_finite)
        .epilogue(match input.epilogue % 3 {
            0 => Epilogue::None,
            1 => Epilogue::Relu,
            _ => Epilogue::AddRelu,
        })
        .dtype(
            if input.f16 && device.features().contains(wgpu::Features::SHADER_F16) {
                DType::F16
            } else {
                DType::F32
            },
        );
    let key = [
        u32::from(config.dtype == DType::F16),
        u32::from(input.epilogue % 3),
        u32::from(config.skip_non_finite_update),
        config.num_features as u32,
        config.eps.to_bits(),
        config.momentum.map_or(u32::MAX, f32::to_bits),
        u32::from(config.affine),
        u32::from(config.track_running_stats),
    ];
    let mut layers = g.layers.lock().unwrap();
    if !layers.contains_key(&key) {
        match BatchNorm::new(device, config) {
            Ok(bn) => {
                layers.insert(key, bn);
            }
            Err(e) => panic!("unexpected error building {config:?}: {e}"),
        }
    }
    let bn = &layers[&key];
    let layout = if input.channels_last {
        Layout::ChannelsLast
    } else {
        Layout::ChannelsFirst
    };
    let dims: Vec<usize> = input.dims.iter().map(|&d| usize::from(d % 9)).collect();
    let shape = match TensorShape::new(&dims, layout) {
        Ok(s) => s,
        Err(e) => {
            assert!(!matches!(e, BatchNormError::Wgpu(_)), "{e}");
            return;
        }
    };
    // Twelve aligned regions per buffer, each large enough for the tensor.
    let align = u64::from(device.limits().min_storage_buffer_offset_alignment);
    let need = |role: usize| -> u64 {
        match role {
            0 | 1 | 9 | 13..=15 => config.dtype.tensor_bytes(shape.numel() as u64),
            6 => 8,
            12 => 4,
            16..=18 => 16 * shape.channels() as u64,
            _ => 4 * shape.channels() as u64,
        }
    };
    let region = (4 * shape.numel() as u64)
        .max(16 * shape.channels() as u64)
        .max(4);
    let region = region.div_ceil(align) * align;
    let buffers: Vec<wgpu::Buffer> = input
        .storage
        .iter()
        .map(|&storage| {
            let usage = if storage {
                wgpu::BufferUsages::STORAGE
            } else {
                wgpu::BufferUsages::COPY_DST
            };
            device.create_buffer(&wgpu::BufferDescriptor {
                label: None,
                size: 12 * region,
                usage,
                mapped_at_creation: false,
            })
        })
        .collect();
    // Slices a caller could make: wgpu itself panics on empty or out-of-range slices.
    let slices: Vec<Option<wgpu::BufferSlice<'_>>> = input
        .slices
        .iter()
        .enumerate()
        .map(|(role, s)| {
            s.as_ref().map(|s| match *s {
                Slice::Exact { buffer, region: r } => {
                    let b = &buffers[usize::from(buffer) % buffers.len()];
                    let offset = u64::from(r % 12) * region;
                    b.slice(offset..offset + need(role).max(4))
                }
                Slice::Any {
                    buffer,
                    offset,
                    len,
                } => {
                    let b = &buffers[usize::from(buffer) % buffers.len()];
                    let offset = u64::from(offset) % b.size();
                    let len = 1 + u64::from(len) % (b.size() - offset);
                    b.slice(offset..offset + len)
                }
            })
        })
        .collect();
    let pair = |a: usize, b: usize| slices[a].zip(slices[b]);
    let mode = if input.train { Mode::Train } else { Mode::Eval };
    let mut encoder = device.create_command_encoder(&Default::default());
    let forward_buffers = |x, y| ForwardBuffers {
        x,
        y,
        residual: slices[13],
        affine: pair(2, 3).map(|(gamma, beta)| AffineParams { gamma, beta }),
        running: pair(4, 5).map(|(mean, var)| RunningStats {
            mean,
            var,
            num_batches_tracked: slices[6],
            skipped_batches: slices[12],
        }),
        saved: pair(7, 8).map(|(mean, invstd)| SavedStats { mean, invstd }),
    };
    let result = match (input.call % 5, slices[0], slices[1], slices[9]) {
        (0, Some(x), Some(y), _) => bn.forward(&mut encoder, mode, &shape, &forward_buffers(x, y)),
        (1, Some(x), Some(dy), Some(dx)) => bn.backward(
            &mut encoder,
            mode,
            &shape,
            &BackwardBuffers {
                x,
                dy,
                dx,
                y: slices[14],
                dresidual: slices[15],
                gamma: slices[2],
                grads: pair(10, 11).map(|(dgamma, dbeta)| AffineGrads {
                    dgamma,
                    dbeta,
                    accumulate: input.accumulate,
                }),
                saved: pair(7, 8).map(|(mean, invstd)| SavedStats { mean, invstd }),
                running: pair(4, 5).map(|(mean, var)| RunningStats {
                    mean,
                    var,
                    num_batches_tracked: None,
                    skipped_batches: None,
                }),
            },
        ),
        (2, Some(x), _, _) => match slices[16] {
            Some(out) => bn.statistics(&mut encoder, &shape, x, out),
            None => return,
        },
        (3, _, _, _) => match (slices[16], slices[17], slices[18]) {
            (Some(a), Some(b), Some(out)) => bn.merge_statistics(&mut encoder, a, b, out),
            _ => return,
        },
        (4, Some(x), Some(y), _) => match slices[16] {
            Some(stats) => {
                bn.forward_with_statistics(&mut encoder, &shape, stats, &forward_buffers(x, y))
            }
            None => return,
        },
        _ => return,
    };
    let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let commands = encoder.finish();
    let error = pollster::block_on(scope.pop());
    drop(commands);
    drop(buffers);
    // Let wgpu free what this run dropped.
    let _ = device.poll(wgpu::PollType::Poll);
    match &result {
        Ok(()) => assert!(
            error.is_none(),
            "accepted {input:?}, wgpu refused: {error:?}"
        ),
        Err(e) => assert!(!matches!(e, BatchNormError::Wgpu(_)), "{input:?}: {e}"),
    }
    count(usize::from(input.call % 5), result.is_ok());
});

/// Counts recorded calls per kind, accepted and rejected, and prints the totals now and then.
fn count(call: usize, accepted: bool) {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    const NAMES: [&str; 5] = [
        "forward",
        "backward",
        "statistics",
        "merge_statistics",
        "forward_with_statistics",
    ];
    static ACCEPTED: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];
    static REJECTED: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];
    static TOTAL: AtomicU64 = AtomicU64::new(0);
    if accepted {
        ACCEPTED[call].fetch_add(1, Relaxed);
    } else {
        REJECTED[call].fetch_add(1, Relaxed);
    }
    let total = TOTAL.fetch_add(1, Relaxed) + 1;
    if total.is_power_of_two() {
        let a: u64 = ACCEPTED.iter().map(|v| v.load(Relaxed)).sum();
        let per_call: Vec<String> = NAMES
            .iter()
            .zip(ACCEPTED.iter().zip(&REJECTED))
            .map(|(n, (a, r))| format!("{n} {}/{}", a.load(Relaxed), r.load(Relaxed)))
            .collect();
        eprintln!(
            "calls recorded: {a} accepted, {} rejected with a typed error (accepted/rejected: {})",
            total - a,
            per_call.join(", ")
        );
    }
}
