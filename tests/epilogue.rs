//! Fused epilogues: `relu(bn(x))` and `relu(bn(x) + z)` in the forward pass, and their
//! backward (with dz) in the same passes as plain batch norm, against the f64 reference.

mod common;

use common::*;
use rand::rngs::StdRng;
use wgpu::util::DeviceExt;
use wgpu_batchnorm::{
    AffineGrads, AffineParams, BackwardBuffers, BatchNorm, BatchNormConfig, BatchNormError,
    Epilogue, ForwardBuffers, Layout, Mode, Reduction, RunningStats, SavedStats, TensorShape,
    reference,
};

fn upload(device: &wgpu::Device, data: &[f32]) -> wgpu::Buffer {
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: None,
        contents: bytemuck::cast_slice(data),
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
    })
}

fn read(device: &wgpu::Device, queue: &wgpu::Queue, buffer: &wgpu::Buffer) -> Vec<f32> {
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
    let v = bytemuck::pod_collect_to_vec(&staging.slice(..).get_mapped_range().unwrap());
    staging.unmap();
    v
}

/// Forward and backward with the epilogue of `config`, recorded into one encoder.
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
    let x = normal(rng, n, 1.0, 2.0);
    let z = normal(rng, n, 0.0, 1.0);
    let dy = normal(rng, n, 0.2, 1.0);
    let gamma = normal(rng, c, 1.0, 0.3);
    let beta = normal(rng, c, 0.0, 0.5);
    let rm = normal(rng, c, 1.0, 0.2);
    let rv = uniform(rng, c, 2.0, 6.0);
    let add = config.epilogue == Epilogue::AddRelu;
    let poison = vec![f32::NAN; n];
    let (xb, zb, dyb) = (upload(device, &x), upload(device, &z), upload(device, &dy));
    let (yb, dxb, dzb) = (
        upload(device, &poison),
        upload(device, &poison),
        upload(device, &poison),
    );
    let (gb, bb) = (upload(device, &gamma), upload(device, &beta));
    let (rmb, rvb, tb) = (
        upload(device, &rm),
        upload(device, &rv),
        upload(device, &[0.0]),
    );
    let [smb, sib, dgb, dbb] = [(); 4].map(|_| upload(device, &vec![f32::NAN; c]));
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
            affine: config.affine.then(|| AffineParams {
                gamma: gb.slice(..),
                beta: bb.slice(..),
            }),
            running,
            saved,
        },
    )
    .unwrap_or_else(|e| panic!("{case}: {e}"));
    // Eval backward reads the running statistics, which eval forwards leave alone.
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
            y: Some(yb.slice(..)),
            dresidual: add.then(|| dzb.slice(..)),
            gamma: config.affine.then(|| gb.slice(..)),
            grads: config.affine.then(|| AffineGrads {
                dgamma: dgb.slice(..),
                dbeta: dbb.slice(..),
            }),
            saved,
            running: bwd_running,
        },
    )
    .unwrap_or_else(|e| panic!("{case}: {e}"));
    queue.submit([encoder.finish()]);

    let y = read(device, queue, &yb);
    let affine = config.affine.then_some((gamma.as_slice(), beta.as_slice()));
    let widen = |v: &[f32]| v.iter().map(|&v| f64::from(v)).collect::<Vec<f64>>();
    let mut want_running = config.track_running_stats.then(|| reference::RunningStats {
        mean: widen(&rm),
        var: widen(&rv),
        num_batches_tracked: 0,
    });
    let before = want_running.clone();
    let mut want = reference::forward(&config, mode, shape, &x, affine, want_running.as_mut());
    reference::apply_epilogue(&mut want.y, add.then_some(z.as_slice()), config.epilogue);
    assert_close(&case, "y", &y, &want.y, TOL);
    assert!(
        y.iter().all(|&v| v >= 0.0),
        "{case}: ReLU output below zero"
    );

    // The backward's contract: dy of the epilogue's output, and that output y.
    let through = reference::through_epilogue(&dy, &y, config.epilogue);
    let (sm, si) = (read(device, queue, &smb), read(device, queue, &sib));
    let want = reference::backward(
        &config,
        mode,
        shape,
        &x,
        &through,
        config.affine.then_some(gamma.as_slice()),
        batch.then_some((sm.as_slice(), si.as_slice())),
        before.as_ref(),
    );
    assert_close(&case, "dx", &read(device, queue, &dxb), &want.dx, TOL);
    if let Some((wg, wb)) = &want.dgamma_dbeta {
        assert_close(&case, "dgamma", &read(device, queue, &dgb), wg, TOL);
        assert_close(&case, "dbeta", &read(device, queue, &dbb), wb, TOL);
    }
    if add {
        assert_eq!(read(device, queue, &dzb), through, "{case}: dz");
    }
}

#[test]
fn relu_and_residual_relu_every_mode_layout_and_reduction() {
    let gpu = gpu();
    let mut rng = rng();
    let shapes: [(&[usize], Layout); 4] = [
        (&[4, 3, 9, 11], Layout::ChannelsFirst),
        (&[6, 5], Layout::ChannelsFirst),
        (&[3, 7, 5, 4], Layout::ChannelsLast),
        (&[2, 2, 130, 130], Layout::ChannelsFirst),
    ];
    for (dims, layout) in shapes {
        let shape = TensorShape::new(dims, layout).unwrap();
        for epilogue in [Epilogue::Relu, Epilogue::AddRelu] {
            for affine in [true, false] {
                for track in [true, false] {
                    let config = BatchNormConfig::new(shape.channels())
                        .epilogue(epilogue)
                        .affine(affine)
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
}

#[test]
fn epilogues_on_tensors_processed_in_pieces() {
    let adapter = &gpu().adapter;
    let mut limits = adapter.limits();
    limits.max_storage_buffer_binding_size = 4096;
    limits.min_storage_buffer_offset_alignment = 256;
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        required_limits: limits,
        ..Default::default()
    }))
    .unwrap();
    let mut rng = rng();
    let shape = TensorShape::channels_first(&[5, 3, 11, 13]).unwrap();
    for epilogue in [Epilogue::Relu, Epilogue::AddRelu] {
        let config = BatchNormConfig::new(3).epilogue(epilogue);
        let bn = BatchNorm::with_reduction(&device, config, Reduction::Workgroup).unwrap();
        for mode in [Mode::Train, Mode::Eval] {
            check(&device, &queue, &bn, mode, &shape, &mut rng);
        }
    }
}

#[test]
fn epilogue_buffers_are_required_exactly_when_used() {
    let gpu = gpu();
    let shape = TensorShape::channels_first(&[3, 2]).unwrap();
    let buf = |n: usize| upload(&gpu.device, &vec![0.0; n]);
    let (x, y, z) = (buf(6), buf(6), buf(6));
    let (sm, si) = (buf(2), buf(2));
    let forward = |bn: &BatchNorm, residual: Option<wgpu::BufferSlice<'_>>| {
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        bn.forward(
            &mut encoder,
            Mode::Train,
            &shape,
            &ForwardBuffers {
                x: x.slice(..),
                y: y.slice(..),
                residual,
                affine: None,
                running: None,
                saved: Some(SavedStats {
                    mean: sm.slice(..),
                    invstd: si.slice(..),
                }),
            },
        )
    };
    let plain = BatchNormConfig::new(2)
        .affine(false)
        .track_running_stats(false);
    let add = BatchNorm::new(&gpu.device, plain.epilogue(Epilogue::AddRelu)).unwrap();
    let e = forward(&add, None).unwrap_err();
    assert!(
        matches!(
            e,
            BatchNormError::MissingBuffer {
                name: "residual",
                ..
            }
        ),
        "{e}"
    );
    let relu = BatchNorm::new(&gpu.device, plain.epilogue(Epilogue::Relu)).unwrap();
    let e = forward(&relu, Some(z.slice(..))).unwrap_err();
    assert!(
        matches!(
            e,
            BatchNormError::UnexpectedBuffer {
                name: "residual",
                ..
            }
        ),
        "{e}"
    );
    let e = forward(&add, Some(y.slice(..))).unwrap_err();
    assert!(matches!(e, BatchNormError::Overlap { .. }), "{e}");
    forward(&add, Some(z.slice(..))).unwrap();
}
