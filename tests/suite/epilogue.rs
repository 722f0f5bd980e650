//! Fused epilogues: `relu(bn(x))` and `relu(bn(x) + z)` in the forward pass, and their
//! backward (with dz) in the same passes as plain batch norm, against the f64 reference.

use crate::common::*;
use wgpu_batchnorm::{
    BatchNorm, BatchNormConfig, BatchNormError, Epilogue, ForwardBuffers, Layout, Mode, Reduction,
    SavedStats, TensorShape,
};

#[test]
fn relu_and_residual_relu_every_mode_layout_and_reduction() {
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
                    check_recorded_every_layer(config, &shape, TOL, &mut rng);
                }
            }
        }
    }
}

#[test]
fn epilogues_on_tensors_processed_in_pieces() {
    let (device, queue) = small_binding_device();
    let mut rng = rng();
    let shape = TensorShape::channels_first(&[5, 3, 11, 13]).unwrap();
    for epilogue in [Epilogue::Relu, Epilogue::AddRelu] {
        let config = BatchNormConfig::new(3).epilogue(epilogue);
        let bn = BatchNorm::with_reduction(&device, config, Reduction::Workgroup).unwrap();
        for mode in [Mode::Train, Mode::Eval] {
            check_recorded(&device, &queue, &bn, mode, &shape, TOL, &mut rng);
        }
    }
}

#[test]
fn epilogue_buffers_are_required_exactly_when_used() {
    let gpu = gpu();
    let shape = TensorShape::channels_first(&[3, 2]).unwrap();
    let buf = |n: usize| upload_f32(&gpu.device, &vec![0.0; n]);
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
