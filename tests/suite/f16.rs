//! f16 tensors (x, y, dy, dx, residual, dresidual) with f32 statistics, against the f64
//! reference computed on the same f16-rounded inputs; relative L2 at most 1e-3. On a device
//! without `Features::SHADER_F16` (GL), a typed error instead; CI's Vulkan run sets
//! `WGPU_BATCHNORM_REQUIRE_F16=1` so the f16 kernels cannot go untested unnoticed.

use crate::common::*;
use wgpu_batchnorm::{
    BatchNorm, BatchNormConfig, BatchNormError, DType, Epilogue, ForwardBuffers, Layout, Mode,
    SavedStats, TensorShape,
};

/// Relative L2 bound for f16 tensors.
const TOL_F16: f64 = 1e-3;

fn has_f16(device: &wgpu::Device) -> bool {
    device.features().contains(wgpu::Features::SHADER_F16)
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
                check_recorded_every_layer(config, &shape, TOL_F16, &mut rng);
            }
        }
    }
}

#[test]
fn f16_tensors_in_pieces() {
    if !f16_or_error(&gpu().device) {
        return;
    }
    let (device, queue) = small_binding_device();
    let mut rng = rng();
    let shape = TensorShape::channels_first(&[5, 3, 13, 11]).unwrap(); // 2,145 values
    let config = BatchNormConfig::new(3).dtype(DType::F16);
    let bn = BatchNorm::new(&device, config).unwrap();
    for mode in [Mode::Train, Mode::Eval] {
        check_recorded(&device, &queue, &bn, mode, &shape, TOL_F16, &mut rng);
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
    let bufs = ForwardBuffers {
        x: x.slice(..),
        y: y.slice(..),
        residual: None,
        affine: None,
        running: None,
        saved: Some(SavedStats {
            mean: sm.slice(..),
            invstd: si.slice(..),
        }),
    };
    let mut encoder = gpu.device.create_command_encoder(&Default::default());
    let e = bn
        .forward(&mut encoder, Mode::Train, &shape, &bufs)
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
        .forward(&mut encoder, Mode::Train, &shape, &bufs)
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
