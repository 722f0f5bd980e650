//! The recording API on caller-owned memory: every tensor a slice of one pooled buffer at
//! aligned offsets, several calls recorded into one encoder and submitted once.

use crate::common::*;
use wgpu::util::DeviceExt;
use wgpu_batchnorm::{
    AffineGrads, AffineParams, BackwardBuffers, BatchNorm, BatchNormConfig, DType, Epilogue,
    ForwardBuffers, Mode, Reduction, RunningStats, SavedStats, TensorShape, reference,
};

/// A pool that hands out aligned ranges of one buffer.
struct Pool {
    align: u64,
    ranges: Vec<(u64, u64)>,
    end: u64,
}

impl Pool {
    fn new(align: u64) -> Self {
        // Start past zero so that no slice sits at offset 0.
        Self {
            align,
            ranges: Vec::new(),
            end: align,
        }
    }

    /// Reserves `bytes`, returning the range's index.
    fn take(&mut self, bytes: u64) -> usize {
        let start = self.end.div_ceil(self.align) * self.align;
        self.ranges.push((start, bytes));
        self.end = start + bytes;
        self.ranges.len() - 1
    }
}

fn slice<'a>(buffer: &'a wgpu::Buffer, pool: &Pool, i: usize) -> wgpu::BufferSlice<'a> {
    let (start, len) = pool.ranges[i];
    buffer.slice(start..start + len)
}

fn read(gpu: &wgpu_batchnorm::HeadlessGpu, buffer: &wgpu::Buffer) -> Vec<u8> {
    read_bytes(&gpu.device, &gpu.queue, buffer)
}

fn floats(bytes: &[u8], pool: &Pool, i: usize) -> Vec<f32> {
    let (start, len) = pool.ranges[i];
    bytemuck::pod_collect_to_vec(&bytes[start as usize..(start + len) as usize])
}

/// Two training steps on two batch shapes and one backward, recorded into one encoder over
/// one pooled buffer. Each call's parameters must survive the others' recording (the bug
/// class of `queue.write_buffer` in a recording API), and the second step must see the
/// running statistics the first one wrote.
#[test]
fn pooled_buffer_several_calls_in_one_encoder() {
    let gpu = gpu();
    let mut rng = rng();
    let c = 5;
    let config = BatchNormConfig::new(c);
    let bn = BatchNorm::new(&gpu.device, config).unwrap();
    let shape_a = TensorShape::channels_first(&[3, c, 7, 9]).unwrap();
    let shape_b = TensorShape::channels_first(&[6, c, 5, 3]).unwrap();
    let align = u64::from(gpu.device.limits().min_storage_buffer_offset_alignment);
    let bytes = |n: usize| 4 * n as u64;

    let mut pool = Pool::new(align);
    let xa = pool.take(bytes(shape_a.numel()));
    let ya = pool.take(bytes(shape_a.numel()));
    let xb = pool.take(bytes(shape_b.numel()));
    let yb = pool.take(bytes(shape_b.numel()));
    let dy = pool.take(bytes(shape_a.numel()));
    let dx = pool.take(bytes(shape_a.numel()));
    let gamma = pool.take(bytes(c));
    let beta = pool.take(bytes(c));
    let rmean = pool.take(bytes(c));
    let rvar = pool.take(bytes(c));
    let tracked = pool.take(8);
    let (sm_a, si_a) = (pool.take(bytes(c)), pool.take(bytes(c)));
    let (sm_b, si_b) = (pool.take(bytes(c)), pool.take(bytes(c)));
    let (dgamma, dbeta) = (pool.take(bytes(c)), pool.take(bytes(c)));

    // Inputs at their ranges, every other byte of the pool poisoned with NaN.
    let mut init = vec![f32::NAN; (pool.end / 4) as usize + 1];
    let mut put = |i: usize, v: &[f32]| {
        let start = (pool.ranges[i].0 / 4) as usize;
        init[start..start + v.len()].copy_from_slice(v);
    };
    let x_a = normal(&mut rng, shape_a.numel(), 1.0, 2.0);
    let x_b = normal(&mut rng, shape_b.numel(), -3.0, 0.5);
    let dy_a = normal(&mut rng, shape_a.numel(), 0.2, 1.0);
    let g = normal(&mut rng, c, 1.0, 0.3);
    let b = normal(&mut rng, c, 0.0, 0.3);
    put(xa, &x_a);
    put(xb, &x_b);
    put(dy, &dy_a);
    put(gamma, &g);
    put(beta, &b);
    put(rmean, &vec![0.0; c]);
    put(rvar, &vec![1.0; c]);
    let mut init: Vec<u8> = bytemuck::cast_slice(&init).to_vec();
    let t = pool.ranges[tracked].0 as usize;
    init[t..t + 8].copy_from_slice(&0u64.to_le_bytes());
    let buffer = gpu
        .device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("pool"),
            contents: &init,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        });

    let s = |i| slice(&buffer, &pool, i);
    let affine = Some(AffineParams {
        gamma: s(gamma),
        beta: s(beta),
    });
    let running = Some(RunningStats {
        mean: s(rmean),
        var: s(rvar),
        num_batches_tracked: Some(s(tracked)),
        skipped_batches: None,
    });
    let mut encoder = gpu.device.create_command_encoder(&Default::default());
    bn.forward(
        &mut encoder,
        Mode::Train,
        &shape_a,
        &ForwardBuffers {
            x: s(xa),
            y: s(ya),
            residual: None,
            affine,
            running,
            saved: Some(SavedStats {
                mean: s(sm_a),
                invstd: s(si_a),
            }),
        },
    )
    .unwrap();
    bn.forward(
        &mut encoder,
        Mode::Train,
        &shape_b,
        &ForwardBuffers {
            x: s(xb),
            y: s(yb),
            residual: None,
            affine,
            running,
            saved: Some(SavedStats {
                mean: s(sm_b),
                invstd: s(si_b),
            }),
        },
    )
    .unwrap();
    bn.backward(
        &mut encoder,
        Mode::Train,
        &shape_a,
        &BackwardBuffers {
            x: s(xa),
            dy: s(dy),
            dx: s(dx),
            y: None,
            dresidual: None,
            gamma: Some(s(gamma)),
            grads: Some(AffineGrads {
                dgamma: s(dgamma),
                dbeta: s(dbeta),
                accumulate: false,
            }),
            saved: Some(SavedStats {
                mean: s(sm_a),
                invstd: s(si_a),
            }),
            running: None,
        },
    )
    .unwrap();
    gpu.queue.submit([encoder.finish()]);
    let out = read(gpu, &buffer);

    let mut want_running = reference::RunningStats::new(c);
    let affine = Some((g.as_slice(), b.as_slice()));
    let want_a = reference::forward(
        &config,
        Mode::Train,
        &shape_a,
        &x_a,
        affine,
        Some(&mut want_running),
    );
    let want_b = reference::forward(
        &config,
        Mode::Train,
        &shape_b,
        &x_b,
        affine,
        Some(&mut want_running),
    );
    let case = "pooled";
    assert_close(case, "y (a)", &floats(&out, &pool, ya), &want_a.y, TOL);
    assert_close(case, "y (b)", &floats(&out, &pool, yb), &want_b.y, TOL);
    let (wm, ws) = want_b.saved.as_ref().unwrap();
    let mean_abs_b = reference::mean_abs(&shape_b, &x_b);
    assert_close_scaled(
        case,
        "save_mean (b)",
        &floats(&out, &pool, sm_b),
        wm,
        &mean_abs_b,
        TOL,
    );
    assert_close(case, "save_invstd (b)", &floats(&out, &pool, si_b), ws, TOL);
    assert_close(
        case,
        "running_mean",
        &floats(&out, &pool, rmean),
        &want_running.mean,
        TOL,
    );
    assert_close(
        case,
        "running_var",
        &floats(&out, &pool, rvar),
        &want_running.var,
        TOL,
    );
    let t = pool.ranges[tracked].0 as usize;
    assert_eq!(u64::from_le_bytes(out[t..t + 8].try_into().unwrap()), 2);

    let (sm, si) = (floats(&out, &pool, sm_a), floats(&out, &pool, si_a));
    let want = reference::backward(
        &config,
        Mode::Train,
        &shape_a,
        &x_a,
        &dy_a,
        Some(&g),
        Some((&sm, &si)),
        None,
    );
    let (dgamma, dbeta) = (floats(&out, &pool, dgamma), floats(&out, &pool, dbeta));
    let dx = floats(&out, &pool, dx);
    assert_gradients(case, &dx, Some((&dgamma, &dbeta)), &want, TOL);
}

/// Two batch-norm objects sharing nothing but the device record alternately into one
/// encoder; each one's results are its own.
#[test]
fn two_layers_interleaved_in_one_encoder() {
    let gpu = gpu();
    let mut rng = rng();
    let shapes = [
        TensorShape::channels_first(&[4, 3, 6, 6]).unwrap(),
        TensorShape::channels_last(&[4, 6, 6, 8]).unwrap(),
    ];
    let configs = [
        BatchNormConfig::new(3).affine(false).momentum(None),
        BatchNormConfig::new(8).eps(1e-3),
    ];
    let layers: Vec<BatchNorm> = configs
        .iter()
        .map(|c| BatchNorm::new(&gpu.device, *c).unwrap())
        .collect();
    let storage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    let upload = |data: &[f32]| {
        gpu.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: bytemuck::cast_slice(data),
                usage: storage,
            })
    };
    let mut encoder = gpu.device.create_command_encoder(&Default::default());
    let mut kept = Vec::new();
    for (i, (layer, shape)) in layers.iter().zip(&shapes).enumerate() {
        let c = shape.channels();
        let x = normal(&mut rng, shape.numel(), i as f64, 1.0 + i as f64);
        let g = normal(&mut rng, c, 1.0, 0.3);
        let b = normal(&mut rng, c, 0.0, 0.3);
        let bufs = (
            upload(&x),
            upload(&vec![f32::NAN; x.len()]),
            upload(&g),
            upload(&b),
            upload(&vec![0.0; c]),
            upload(&vec![1.0; c]),
            upload(&[0.0; 2]),
            upload(&vec![f32::NAN; c]),
            upload(&vec![f32::NAN; c]),
        );
        let affine = layer.config().affine.then(|| AffineParams {
            gamma: bufs.2.slice(..),
            beta: bufs.3.slice(..),
        });
        layer
            .forward(
                &mut encoder,
                Mode::Train,
                shape,
                &ForwardBuffers {
                    x: bufs.0.slice(..),
                    y: bufs.1.slice(..),
                    residual: None,
                    affine,
                    running: Some(RunningStats {
                        mean: bufs.4.slice(..),
                        var: bufs.5.slice(..),
                        num_batches_tracked: Some(bufs.6.slice(..)),
                        skipped_batches: None,
                    }),
                    saved: Some(SavedStats {
                        mean: bufs.7.slice(..),
                        invstd: bufs.8.slice(..),
                    }),
                },
            )
            .unwrap();
        kept.push((x, g, b, bufs));
    }
    gpu.queue.submit([encoder.finish()]);
    for ((layer, shape), (x, g, b, bufs)) in layers.iter().zip(&shapes).zip(&kept) {
        let config = layer.config();
        let affine = config.affine.then_some((g.as_slice(), b.as_slice()));
        let mut running = reference::RunningStats::new(shape.channels());
        let want = reference::forward(config, Mode::Train, shape, x, affine, Some(&mut running));
        let f = |buf: &wgpu::Buffer| -> Vec<f32> { bytemuck::pod_collect_to_vec(&read(gpu, buf)) };
        let case = format!("{config:?}");
        assert_close(&case, "y", &f(&bufs.1), &want.y, TOL);
        assert_close(&case, "running_mean", &f(&bufs.4), &running.mean, TOL);
        assert_close(&case, "running_var", &f(&bufs.5), &running.var, TOL);
    }
}

/// Layers of one device, element type and reduction share one kernel set (pipelines,
/// scratch, parameter buffers), whatever else their configurations say; another device,
/// element type or reduction gets its own.
#[test]
fn layers_share_kernels_per_device_dtype_and_reduction() {
    let gpu = gpu();
    let a = BatchNorm::new(&gpu.device, BatchNormConfig::new(64)).unwrap();
    let b = BatchNorm::new(
        &gpu.device,
        BatchNormConfig::new(2048)
            .affine(false)
            .momentum(None)
            .epilogue(Epilogue::AddRelu),
    )
    .unwrap();
    assert!(
        a.shares_kernels_with(&b),
        "same device, f32, same reduction"
    );
    let w = BatchNorm::with_reduction(&gpu.device, BatchNormConfig::new(64), Reduction::Workgroup)
        .unwrap();
    assert_eq!(
        a.shares_kernels_with(&w),
        !a.uses_subgroups(),
        "shared-memory reductions share only where the default has no subgroups"
    );
    if gpu.device.features().contains(wgpu::Features::SHADER_F16) {
        let h = BatchNorm::new(&gpu.device, BatchNormConfig::new(64).dtype(DType::F16)).unwrap();
        assert!(!a.shares_kernels_with(&h), "f16 has its own kernels");
    }
    let (device, _queue) = device_with(|_| {});
    let other = BatchNorm::new(&device, BatchNormConfig::new(64)).unwrap();
    assert!(
        !a.shares_kernels_with(&other),
        "another device has its own kernels"
    );
    // Dropping one layer leaves the set to the others.
    drop(b);
    let c = BatchNorm::new(&gpu.device, BatchNormConfig::new(8)).unwrap();
    assert!(a.shares_kernels_with(&c));
}
