//! Where the running statistics are written and read: which kernel of a training forward
//! updates them, and which of an eval forward turns them into its coefficients, on devices
//! that bind more or fewer storage buffers per stage; each way against the reference.

use crate::common::*;
use wgpu_batchnorm::{
    BatchNorm, BatchNormConfig, Epilogue, ForwardBuffers, Layout, Mode, TensorShape, Tuning,
};

/// Where a training forward updates the running statistics: in the pass that makes the
/// statistics (`stats_finalize_running` on a device that binds nine storage buffers,
/// `forward_fused_running` / `forward_thin_running` on one that binds eleven) with a fixed
/// momentum; else in `running_update`, which increments `num_batches_tracked` in the same
/// dispatch except for the cumulative average (momentum `None`), whose channels all read
/// the old count: there a second dispatch increments it. Each way against the reference,
/// also on a device that binds only eight (`conventions.rs` checks the count's values).
#[test]
fn where_the_running_statistics_are_updated() {
    let gpu = gpu();
    let mut rng = rng();
    let (device8, queue8) = device_with(|l| l.max_storage_buffers_per_shader_stage = 8);
    let split = TensorShape::channels_first(&[8, 6, 17, 19]).unwrap();
    let one_pass = TensorShape::channels_first(&[4, 3, 9, 11]).unwrap();
    for (shape, split_path) in [(&split, true), (&one_pass, false)] {
        for momentum in [Some(0.1), None] {
            let config = BatchNormConfig::new(shape.channels()).momentum(momentum);
            for (device, queue) in [(&gpu.device, &gpu.queue), (&device8, &queue8)] {
                let storage = device.limits().max_storage_buffers_per_shader_stage;
                let case = format!(
                    "{:?} momentum {momentum:?}, {storage} storage buffers",
                    shape.dims()
                );
                let mut bn = BatchNorm::new(device, config).unwrap();
                if split_path {
                    bn = bn.without_one_pass_kernels();
                }
                let bufs = TrainBufs::new(device, shape);
                let got: Vec<&str> = bn
                    .forward_dispatches(Mode::Train, shape, &bufs.forward())
                    .unwrap()
                    .iter()
                    .map(|d| d.kernel)
                    .collect();
                let updates = vec!["running_update"; if momentum.is_some() { 1 } else { 2 }];
                let want = match (split_path, momentum.is_some(), storage) {
                    (true, true, 9..) => {
                        vec!["stats_partial", "stats_finalize_running", "normalize"]
                    }
                    (true, _, _) => [
                        &["stats_partial", "stats_finalize"][..],
                        &updates,
                        &["normalize"],
                    ]
                    .concat(),
                    (false, true, 11..) => vec!["forward_fused_running"],
                    (false, _, _) => [&["forward_fused"][..], &updates].concat(),
                };
                assert_eq!(got, want, "{case}");
                check_on(queue, &bn, Mode::Train, shape, ORDINARY, TOL, &mut rng);
            }
        }
    }
}

/// Where an eval forward with running statistics makes its coefficients (running_mean,
/// gamma / sqrt(running_var + eps), beta): in the vec4 normalize pass itself
/// (`normalize_vec4_eval`: one dispatch) where its invocations keep their channels, the
/// device binds seven storage buffers per stage and the tuning allows that many
/// computations per channel (`Tuning::one_pass_eval_recomputes`: GPUs any, CPU adapters
/// one); else stored first by `eval_coeffs` (the scalar pass, invocations that walk the
/// channels, the minimum limits' six buffers). Each way against the reference, with and
/// without the affine parameters and with the residual epilogue (which binds all seven).
#[test]
fn where_an_eval_forward_makes_its_coefficients() {
    let gpu = gpu();
    let mut rng = rng();
    let (device6, queue6) = device_with(|l| l.max_storage_buffers_per_shader_stage = 6);
    // (dims, layout, normalize pass, computations per channel in one pass, under either
    // tuning: one workgroup of 256 invocations here; None where the invocations do not
    // keep their channels)
    let cases: [(&[usize], Layout, &str, Option<usize>); 5] = [
        // 7x7 planes: the scalar pass.
        (&[4, 3, 7, 7], Layout::ChannelsFirst, "normalize", None),
        // 96 vec4s per sample: 2 samples in the grid, 16 vec4s per channel each.
        (
            &[4, 6, 8, 8],
            Layout::ChannelsFirst,
            "normalize_vec4",
            Some(32),
        ),
        // 1,024 vec4s per sample, more than the grid: the invocations walk the channels.
        (
            &[1, 64, 8, 8],
            Layout::ChannelsFirst,
            "normalize_vec4",
            None,
        ),
        // Four channels per invocation, 2 invocations per sample.
        (
            &[2, 3, 5, 8],
            Layout::ChannelsLast,
            "normalize_vec4",
            Some(128),
        ),
        // 256 invocations per sample: each channel's coefficients computed once.
        (&[2, 1024], Layout::ChannelsFirst, "normalize_vec4", Some(1)),
    ];
    for (dims, layout, normalize, recomputes) in cases {
        let shape = TensorShape::new(dims, layout).unwrap();
        let c = shape.channels();
        for (device, queue) in [(&gpu.device, &gpu.queue), (&device6, &queue6)] {
            let storage = device.limits().max_storage_buffers_per_shader_stage;
            for (tuning, most) in [(Tuning::GPU, usize::MAX), (Tuning::CPU, 1)] {
                assert_eq!(tuning.one_pass_eval_recomputes, most);
                let case = format!("{dims:?} {layout:?}, {storage} storage buffers, {tuning:?}");
                let bn = BatchNorm::new(device, BatchNormConfig::new(c))
                    .unwrap()
                    .with_tuning(tuning);
                let bufs = TrainBufs::new(device, &shape);
                let eval = ForwardBuffers {
                    saved: None,
                    ..bufs.forward()
                };
                let got: Vec<&str> = bn
                    .forward_dispatches(Mode::Eval, &shape, &eval)
                    .unwrap()
                    .iter()
                    .map(|d| d.kernel)
                    .collect();
                let want = match recomputes {
                    Some(n) if n <= most && storage >= 7 => vec!["normalize_vec4_eval"],
                    _ => vec!["eval_coeffs", normalize],
                };
                assert_eq!(got, want, "{case}");
                let configs = [
                    BatchNormConfig::new(c),
                    BatchNormConfig::new(c).affine(false),
                    BatchNormConfig::new(c).epilogue(Epilogue::AddRelu),
                ];
                for config in configs {
                    let bn = BatchNorm::new(device, config).unwrap().with_tuning(tuning);
                    check_on(queue, &bn, Mode::Eval, &shape, ORDINARY, TOL, &mut rng);
                }
            }
        }
    }
}
