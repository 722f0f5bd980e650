//! f16 tensors (x, y, dy, dx, residual, dresidual) with f32 statistics, against the f64
//! reference computed on the same f16-rounded inputs; relative L2 at most 1e-3. On a device
//! without `Features::SHADER_F16` (GL), a typed error instead; CI's Vulkan run sets
//! `WGPU_BATCHNORM_REQUIRE_F16=1` so the f16 kernels cannot go untested unnoticed.

mod common;

use common::*;
use half::f16;
use rand::rngs::StdRng;
use wgpu::util::DeviceExt;
use wgpu_batchnorm::{
    AffineGrads, AffineParams, BackwardBuffers, BatchNorm, BatchNormConfig, BatchNormError, DType,
    Epilogue, ForwardBuffers, Layout, Mode, RunningStats, SavedStats, TensorShape, reference,
};

/// Relative L2 bound for f16 tensors.
const TOL_F16: f64 = 1e-3;

fn has_f16(device: &wgpu::Device) -> bool {
    device.features().contains(wgpu::Features::SHADER_F16)
}

/// Values rounded to f16 (and back to f32, exactly).
fn round_f16(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| f16::from_f32(x).to_f32()).collect()
}

fn upload_bytes(device: &wgpu::Device, bytes: &[u8]) -> wgpu::Buffer {
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: None,
        contents: bytes,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
    })
}

/// An f16 tensor, padded to whole 4-byte words (the padding poisoned).
fn upload_f16(device: &wgpu::Device, v: &[f32]) -> wgpu::Buffer {
    let mut h: Vec<f16> = v.iter().map(|&x| f16::from_f32(x)).collect();
    if h.len() % 2 == 1 {
        h.push(f16::NAN);
    }
    upload_bytes(device, bytemuck::cast_slice(&h))
}

fn upload_f32(device: &wgpu::Device, v: &[f32]) -> wgpu::Buffer {
    upload_bytes(device, bytemuck::cast_slice(v))
}

fn read_bytes(device: &wgpu::Device, queue: &wgpu::Queue, buffer: &wgpu::Buffer) -> Vec<u8> {
    let staging = device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: buffer.size(),
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = device.create_command_encoder(&Default::default());
    encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, buffer.size());
    queue.submit([encoder.finish()]);
    staging
        .slice(..)
        .map_async(wgpu::MapMode::Read, |r| r.unwrap());
    device.poll(wgpu::PollType::wait_indefinitely()).unwrap();
    let v = staging.slice(..).get_mapped_range().unwrap().to_vec();
    staging.unmap();
    v
}

fn read_f16(device: &wgpu::Device, queue: &wgpu::Queue, b: &wgpu::Buffer, n: usize) -> Vec<f32> {
    let h: Vec<f16> = bytemuck::pod_collect_to_vec(&read_bytes(device, queue, b));
    h[..n].iter().map(|x| x.to_f32()).collect()
}

fn read_f32(device: &wgpu::Device, queue: &wgpu::Queue, b: &wgpu::Buffer) -> Vec<f32> {
    bytemuck::pod_collect_to_vec(&read_bytes(device, queue, b))
}

fn check(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    bn: &BatchNorm,
    mode: Mode,
    shape: &TensorShape,
    rng: &mut StdRng,
) {
    let config = *bn.config();
    let (n, c) = (shape.numel(), shape.channels());
    let case = format!(
        "{:?} {:?} {mode:?} {config:?}",
        shape.layout(),
        shape.dims()
    );
    let x = round_f16(&normal(rng, n, 1.0, 2.0));
    let z = round_f16(&normal(rng, n, 0.0, 1.0));
    let dy = round_f16(&normal(rng, n, 0.2, 1.0));
    let gamma = normal(rng, c, 1.0, 0.3);
    let beta = normal(rng, c, 0.0, 0.5);
    let (rm, rv) = (normal(rng, c, 1.0, 0.2), uniform(rng, c, 2.0, 6.0));
    let add = config.epilogue == Epilogue::AddRelu;
    let fused = config.epilogue != Epilogue::None;
    let poison = vec![f32::NAN; n];
    let (xb, zb, dyb) = (
        upload_f16(device, &x),
        upload_f16(device, &z),
        upload_f16(device, &dy),
    );
    let [yb, dxb, dzb] = [(); 3].map(|_| upload_f16(device, &poison));
    let (gb, bb) = (upload_f32(device, &gamma), upload_f32(device, &beta));
    let (rmb, rvb, tb) = (
        upload_f32(device, &rm),
        upload_f32(device, &rv),
        upload_f32(device, &[0.0]),
    );
    let [smb, sib, dgb, dbb] = [(); 4].map(|_| upload_f32(device, &vec![f32::NAN; c]));
    let batch = config.uses_batch_stats(mode);
    let saved = batch.then(|| SavedStats {
        mean: smb.slice(..),
        invstd: sib.slice(..),
    });
    let running = config.track_running_stats.then(|| RunningStats {
        mean: rmb.slice(..),
        var: rvb.slice(..),
        num_batches_tracked: Some(tb.slice(..)),
        skipped_batches: None,
    });
    let mut encoder = device.create_command_encoder(&Default::default());
    bn.forward(
        &mut encoder,
        mode,
        shape,
        &ForwardBuffers {
            x: xb.slice(..),
            y: yb.slice(..),
            residual: add.then(|| zb.slice(..)),
            affine: Some(AffineParams {
                gamma: gb.slice(..),
                beta: bb.slice(..),
            }),
            running,
            saved,
        },
    )
    .unwrap_or_else(|e| panic!("{case}: {e}"));
    let bwd_running = (!batch).then(|| RunningStats {
        num_batches_tracked: None,
        ..running.unwrap()
    });
    bn.backward(
        &mut encoder,
        mode,
        shape,
        &BackwardBuffers {
            x: xb.slice(..),
            dy: dyb.slice(..),
            dx: dxb.slice(..),
            y: fused.then(|| yb.slice(..)),
            dresidual: add.then(|| dzb.slice(..)),
            gamma: Some(gb.slice(..)),
            grads: Some(AffineGrads {
                dgamma: dgb.slice(..),
                dbeta: dbb.slice(..),
            }),
            saved,
            running: bwd_running,
        },
    )
    .unwrap_or_else(|e| panic!("{case}: {e}"));
    queue.submit([encoder.finish()]);

    let widen = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
    let y = read_f16(device, queue, &yb, n);
    let mut want_running = config.track_running_stats.then(|| reference::RunningStats {
        mean: widen(&rm),
        var: widen(&rv),
        num_batches_tracked: 0,
    });
    let before = want_running.clone();
    let affine = Some((gamma.as_slice(), beta.as_slice()));
    let mut want = reference::forward(&config, mode, shape, &x, affine, want_running.as_mut());
    reference::apply_epilogue(&mut want.y, add.then_some(z.as_slice()), config.epilogue);
    assert_close(&case, "y", &y, &want.y, TOL_F16);
    let (sm, si) = (read_f32(device, queue, &smb), read_f32(device, queue, &sib));
    if let Some((wm, ws)) = &want.saved {
        assert_close(&case, "save_mean", &sm, wm, TOL_F16);
        assert_close(&case, "save_invstd", &si, ws, TOL_F16);
    }
    if let Some(w) = &want_running {
        assert_close(
            &case,
            "running_mean",
            &read_f32(device, queue, &rmb),
            &w.mean,
            TOL_F16,
        );
        assert_close(
            &case,
            "running_var",
            &read_f32(device, queue, &rvb),
            &w.var,
            TOL_F16,
        );
    }
    let through = reference::through_epilogue(&dy, &y, config.epilogue);
    let want = reference::backward(
        &config,
        mode,
        shape,
        &x,
        &through,
        Some(&gamma),
        batch.then_some((sm.as_slice(), si.as_slice())),
        before.as_ref(),
    );
    assert_close(
        &case,
        "dx",
        &read_f16(device, queue, &dxb, n),
        &want.dx,
        TOL_F16,
    );
    let (wg, wb) = want.dgamma_dbeta.as_ref().unwrap();
    assert_close(&case, "dgamma", &read_f32(device, queue, &dgb), wg, TOL_F16);
    assert_close(&case, "dbeta", &read_f32(device, queue, &dbb), wb, TOL_F16);
    if add {
        assert_close(
            &case,
            "dz",
            &read_f16(device, queue, &dzb, n),
            &widen(&through),
            TOL_F16,
        );
    }
}

/// Whether `device` runs f16 kernels. Where it cannot, checks that asking for them is a
/// typed error (and fails when CI asked for f16 with `WGPU_BATCHNORM_REQUIRE_F16=1`).
fn f16_or_error(device: &wgpu::Device) -> bool {
    if std::env::var("WGPU_BATCHNORM_REQUIRE_F16").is_ok_and(|v| v == "1") {
        assert!(
            has_f16(device),
            "WGPU_BATCHNORM_REQUIRE_F16=1 but the device has no SHADER_F16"
        );
    }
    if !has_f16(device) {
        let e = BatchNorm::new(device, BatchNormConfig::new(3).dtype(DType::F16)).unwrap_err();
        assert!(matches!(e, BatchNormError::F16Unavailable), "{e}");
    }
    has_f16(device)
}

#[test]
fn f16_tensors_every_mode_layout_epilogue_and_reduction() {
    let gpu = gpu();
    if !f16_or_error(&gpu.device) {
        return;
    }
    let mut rng = rng();
    let shapes: [(&[usize], Layout); 4] = [
        (&[3, 5, 7], Layout::ChannelsFirst), // odd element count: a padded last word
        (&[4, 3, 10, 9], Layout::ChannelsFirst),
        (&[3, 5, 7, 4], Layout::ChannelsLast),
        (&[2, 2, 150, 150], Layout::ChannelsFirst),
    ];
    for (dims, layout) in shapes {
        let shape = TensorShape::new(dims, layout).unwrap();
        for epilogue in [Epilogue::None, Epilogue::AddRelu] {
            for track in [true, false] {
                let config = BatchNormConfig::new(shape.channels())
                    .dtype(DType::F16)
                    .epilogue(epilogue)
                    .track_running_stats(track);
                for reduction in reductions(gpu) {
                    let bn = BatchNorm::with_reduction(&gpu.device, config, reduction).unwrap();
                    for mode in [Mode::Train, Mode::Eval] {
                        check(&gpu.device, &gpu.queue, &bn, mode, &shape, &mut rng);
                    }
                }
            }
        }
    }
}

#[test]
fn f16_tensors_in_pieces() {
    let adapter = &gpu().adapter;
    if !f16_or_error(&gpu().device) {
        return;
    }
    let mut limits = adapter.limits();
    limits.max_storage_buffer_binding_size = 4096;
    limits.min_storage_buffer_offset_alignment = 256;
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        required_features: wgpu::Features::SHADER_F16,
        required_limits: limits,
        ..Default::default()
    }))
    .unwrap();
    let mut rng = rng();
    let shape = TensorShape::channels_first(&[5, 3, 13, 11]).unwrap(); // 2,145 values
    let config = BatchNormConfig::new(3).dtype(DType::F16);
    let bn = BatchNorm::new(&device, config).unwrap();
    for mode in [Mode::Train, Mode::Eval] {
        check(&device, &queue, &bn, mode, &shape, &mut rng);
    }
}

#[test]
fn f16_sizes_and_the_blocking_layer() {
    let gpu = gpu();
    if !f16_or_error(&gpu.device) {
        return;
    }
    let bn = BatchNorm::new(&gpu.device, BatchNormConfig::new(3).dtype(DType::F16)).unwrap();
    let shape = TensorShape::channels_first(&[3, 3, 1]).unwrap(); // 9 values: 20 bytes padded
    let e = bn
        .forward_host(&gpu.queue, Mode::Train, &shape, &[0.0; 9], None, None)
        .unwrap_err();
    assert!(matches!(e, BatchNormError::InvalidConfig(_)), "{e}");
    let x = upload_f32(&gpu.device, &[0.0; 4]); // 16 bytes
    let y = upload_f32(&gpu.device, &[0.0; 5]);
    let (sm, si) = (
        upload_f32(&gpu.device, &[0.0; 3]),
        upload_f32(&gpu.device, &[0.0; 3]),
    );
    let mut encoder = gpu.device.create_command_encoder(&Default::default());
    let e = bn
        .forward(
            &mut encoder,
            Mode::Train,
            &shape,
            &ForwardBuffers {
                x: x.slice(..),
                y: y.slice(..),
                residual: None,
                affine: None,
                running: None,
                saved: Some(SavedStats {
                    mean: sm.slice(..),
                    invstd: si.slice(..),
                }),
            },
        )
        .unwrap_err();
    // Configuration mismatches come first (affine and running are required here) ...
    assert!(matches!(e, BatchNormError::MissingBuffer { .. }), "{e}");
    let plain = BatchNorm::new(
        &gpu.device,
        BatchNormConfig::new(3)
            .dtype(DType::F16)
            .affine(false)
            .track_running_stats(false),
    )
    .unwrap();
    let e = plain
        .forward(
            &mut encoder,
            Mode::Train,
            &shape,
            &ForwardBuffers {
                x: x.slice(..),
                y: y.slice(..),
                residual: None,
                affine: None,
                running: None,
                saved: Some(SavedStats {
                    mean: sm.slice(..),
                    invstd: si.slice(..),
                }),
            },
        )
        .unwrap_err();
    // ... then sizes: 9 f16 values take 20 bytes.
    assert!(
        matches!(
            e,
            BatchNormError::BufferSize {
                name: "x",
                expected: 20,
                got: 16,
                ..
            }
        ),
        "{e}"
    );
}
