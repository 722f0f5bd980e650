//! The kernel paths as the plan names them: which path each shape takes, what each path
//! dispatches (`BatchNorm::forward_dispatches`), and every path, with and without the
//! one-pass kernels, against the reference.

use crate::common::*;
use wgpu_batchnorm::{
    AffineGrads, BackwardBuffers, BatchNorm, BatchNormConfig, Dispatch, KernelPath, Layout, Mode,
    Reduction, SavedStats, TensorShape, Tuning,
};

/// Every kernel path the plan names, each on a shape that takes it, forward and backward
/// against the reference, with and without the one-pass kernels (which then give way to
/// the split reduction); the path each call takes is asserted, so a change to the plan
/// that moves a shape to another path shows here. Every backward kernel that writes the
/// affine gradients does so once overwriting and once accumulating (`AffineGrads::accumulate`),
/// and the separate passes run with the other adapter kind's `Tuning`.
#[test]
fn every_kernel_path_matches_the_reference() {
    use KernelPath::*;
    let gpu = gpu();
    let mut rng = rng();
    // Devices that bind fewer than 8 storage buffers per stage have no one-pass kernels.
    let fused = gpu.device.limits().max_storage_buffers_per_shader_stage >= 8;
    // Without the one-pass kernels: the split reduction, or row blocks where the channel
    // is the innermost axis.
    let separate_path = |shape: &TensorShape| match shape.outer_inner().1 {
        1 => RowBlocks,
        _ => SplitReduction,
    };
    let available = |p, shape: &TensorShape| match p {
        OnePassWorkgroup | OnePassInvocation if !fused => separate_path(shape),
        p => p,
    };
    let cases: [(&[usize], Layout, Mode, KernelPath, KernelPath); 10] = [
        (
            &[4, 3, 9, 11],
            Layout::ChannelsFirst,
            Mode::Train,
            OnePassWorkgroup,
            OnePassWorkgroup,
        ),
        (
            &[4, 3, 9, 11],
            Layout::ChannelsFirst,
            Mode::Eval,
            Elementwise,
            OnePassWorkgroup,
        ),
        (
            &[2, 300, 5],
            Layout::ChannelsFirst,
            Mode::Train,
            OnePassInvocation,
            OnePassInvocation,
        ),
        // Channel-innermost with at most THIN_MAX_COUNT values per channel.
        (
            &[6, 300],
            Layout::ChannelsFirst,
            Mode::Train,
            OnePassInvocation,
            OnePassInvocation,
        ),
        (
            &[2, 3, 5, 40],
            Layout::ChannelsLast,
            Mode::Train,
            OnePassInvocation,
            OnePassInvocation,
        ),
        (
            &[16, 4, 64, 64],
            Layout::ChannelsFirst,
            Mode::Train,
            SplitReduction,
            SplitReduction,
        ),
        (
            &[4, 8, 8, 16],
            Layout::ChannelsLast,
            Mode::Train,
            RowBlocks,
            RowBlocks,
        ),
        (
            &[512, 32],
            Layout::ChannelsFirst,
            Mode::Train,
            RowBlocks,
            RowBlocks,
        ),
        (
            &[512, 32],
            Layout::ChannelsFirst,
            Mode::Eval,
            Elementwise,
            RowBlocks,
        ),
        // 256 partial records per channel: the merge passes' widest tree, a workgroup
        // per channel (`merge_rows` in row_tree.wgsl).
        (
            &[131072, 2],
            Layout::ChannelsFirst,
            Mode::Train,
            RowBlocks,
            RowBlocks,
        ),
    ];
    for (i, (dims, layout, mode, forward, backward)) in cases.into_iter().enumerate() {
        let shape = TensorShape::new(dims, layout).unwrap();
        let config = BatchNormConfig::new(shape.channels());
        for bn in layers(config) {
            let separate = BatchNorm::with_reduction(
                &gpu.device,
                config,
                if bn.uses_subgroups() {
                    Reduction::Subgroup
                } else {
                    Reduction::Workgroup
                },
            )
            .unwrap()
            .without_one_pass_kernels();
            // The separate passes with the other adapter kind's tuning: both settings of
            // the table run on the partial passes.
            let other = match bn.tuning() {
                t if t == Tuning::CPU => Tuning::GPU,
                _ => Tuning::CPU,
            };
            let separate = separate.with_tuning(other);
            for (bn, one_pass) in [(bn, true), (separate, false)] {
                let want = |p| match available(p, &shape) {
                    OnePassWorkgroup | OnePassInvocation if !one_pass => separate_path(&shape),
                    p => p,
                };
                let inject = Inject {
                    accumulate: one_pass == (i % 2 == 0),
                    ..Inject::default()
                };
                let case = format!("{dims:?} {layout:?} {mode:?} one-pass allowed {one_pass}");
                assert_eq!(
                    bn.forward_path(&shape, mode).unwrap(),
                    want(forward),
                    "{case}"
                );
                assert_eq!(
                    bn.backward_path(&shape, mode).unwrap(),
                    want(backward),
                    "{case}"
                );
                let (device, queue) = (&gpu.device, &gpu.queue);
                let data = ORDINARY;
                check_recorded_with(
                    device, queue, &bn, mode, &shape, data, TOL, &mut rng, &inject,
                );
            }
        }
    }
}

/// The plan's steps as data: the kernels a training forward dispatches on each path, in
/// order (`BatchNorm::forward_dispatches` records nothing), also for a tensor in pieces
/// whose partials are folded piece by piece.
#[test]
fn each_path_dispatches_its_kernels() {
    let gpu = gpu();
    let fused = gpu.device.limits().max_storage_buffers_per_shader_stage >= 8;
    let nine = gpu.device.limits().max_storage_buffers_per_shader_stage >= 9;
    // The last pass takes the vec4 kernel where each vec4 of the tensor holds one channel's
    // elements (inner a multiple of 4) or four channels' (channels-last, C a multiple of 4).
    // The finalize updates the running statistics where the device binds nine buffers.
    let split = |partial: &'static str, normalize: &'static str| match nine {
        true => vec![partial, "stats_finalize_running", normalize],
        false => vec![partial, "stats_finalize", "running_update", normalize],
    };
    // The one-pass kernels update the running statistics themselves where it binds eleven.
    let eleven = gpu.device.limits().max_storage_buffers_per_shader_stage >= 11;
    let one_pass = |kernel: &'static str, running: &'static str| match (fused, eleven) {
        (true, true) => vec![running],
        (true, false) => vec![kernel, "running_update"],
        (false, _) => split("stats_partial", "normalize"),
    };
    let thin = one_pass("forward_thin", "forward_thin_running");
    let thin_rows = match fused {
        true => thin.clone(),
        false => split("stats_partial_rows", "normalize_vec4"),
    };
    let cases: [(&[usize], Layout, bool, Vec<&str>); 8] = [
        (
            &[4, 3, 9, 11],
            Layout::ChannelsFirst,
            true,
            one_pass("forward_fused", "forward_fused_running"),
        ),
        (&[2, 300, 5], Layout::ChannelsFirst, true, thin),
        // Channel-innermost, at most THIN_MAX_COUNT values per channel: the same kernel.
        (&[6, 300], Layout::ChannelsFirst, true, thin_rows.clone()),
        (&[2, 3, 5, 40], Layout::ChannelsLast, true, thin_rows),
        (
            &[4, 3, 9, 11],
            Layout::ChannelsFirst,
            false,
            split("stats_partial", "normalize"),
        ),
        (
            &[16, 4, 64, 64],
            Layout::ChannelsFirst,
            true,
            split("stats_partial", "normalize_vec4"),
        ),
        (
            &[4, 8, 8, 16],
            Layout::ChannelsLast,
            true,
            split("stats_partial_rows", "normalize_vec4"),
        ),
        (
            &[4, 8, 8, 6],
            Layout::ChannelsLast,
            true,
            split("stats_partial_rows", "normalize"),
        ),
    ];
    for (dims, layout, allow_one_pass, want) in cases {
        let shape = TensorShape::new(dims, layout).unwrap();
        let mut bn = BatchNorm::new(&gpu.device, BatchNormConfig::new(shape.channels())).unwrap();
        if !allow_one_pass {
            bn = bn.without_one_pass_kernels();
        }
        let bufs = TrainBufs::new(&gpu.device, &shape);
        let got: Vec<&str> = bn
            .forward_dispatches(Mode::Train, &shape, &bufs.forward())
            .unwrap()
            .iter()
            .map(|d| d.kernel)
            .collect();
        assert_eq!(
            got, want,
            "{dims:?} {layout:?} one-pass allowed {allow_one_pass}"
        );
    }
    // The backward of a training forward: per-channel preparation, then the one-pass kernel
    // or partial sums, finalize and dx.
    for (dims, want) in [
        (
            &[4, 3, 9, 11][..],
            match fused {
                true => vec!["backward_prep", "backward_fused"],
                false => vec![
                    "backward_prep",
                    "backward_partial",
                    "backward_finalize",
                    "backward_dx",
                ],
            },
        ),
        (
            &[16, 4, 64, 64],
            vec![
                "backward_prep",
                "backward_partial",
                "backward_finalize",
                "backward_dx_vec4",
            ],
        ),
    ] {
        let shape = TensorShape::channels_first(dims).unwrap();
        let bn = BatchNorm::new(&gpu.device, BatchNormConfig::new(shape.channels())).unwrap();
        let got: Vec<&str> = backward_dispatches(&bn, &shape)
            .iter()
            .map(|d| d.kernel)
            .collect();
        assert_eq!(got, want, "{dims:?} backward");
    }
    // Three pieces of 1,024 values on a 4 KiB binding limit, 128 channels: each piece's
    // partials merged into the running records before the next piece, then each piece
    // normalized four values at a time (its length and base multiples of 4).
    let (device, _queue) = small_binding_device();
    let shape = TensorShape::channels_first(&[24, 128]).unwrap();
    let bn = BatchNorm::new(&device, BatchNormConfig::new(128)).unwrap();
    let bufs = TrainBufs::new(&device, &shape);
    let got: Vec<&str> = bn
        .forward_dispatches(Mode::Train, &shape, &bufs.forward())
        .unwrap()
        .iter()
        .map(|d| d.kernel)
        .collect();
    let mut want = ["stats_partial_rows", "stats_merge"].repeat(3);
    match device.limits().max_storage_buffers_per_shader_stage >= 9 {
        true => want.push("stats_finalize_running"),
        false => want.extend(["stats_finalize", "running_update"]),
    }
    want.extend(["normalize_vec4"; 3]);
    assert_eq!(got, want, "folded plan");
}

/// The dispatches of a training backward of `shape` (recording nothing).
pub(crate) fn backward_dispatches(bn: &BatchNorm, shape: &TensorShape) -> Vec<Dispatch> {
    let gpu = gpu();
    let (n, c) = (shape.numel(), shape.channels());
    let t = TrainBufs::new(&gpu.device, shape);
    let zeros = |len: usize| upload_f32(&gpu.device, &vec![0.0; len]);
    let (dy, dx, dgamma, dbeta) = (zeros(n), zeros(n), zeros(c), zeros(c));
    let bufs = BackwardBuffers {
        x: t.x.slice(..),
        dy: dy.slice(..),
        dx: dx.slice(..),
        y: None,
        dresidual: None,
        gamma: Some(t.gamma.slice(..)),
        grads: Some(AffineGrads {
            dgamma: dgamma.slice(..),
            dbeta: dbeta.slice(..),
            accumulate: false,
        }),
        saved: Some(SavedStats {
            mean: t.sm.slice(..),
            invstd: t.si.slice(..),
        }),
        running: None,
    };
    bn.backward_dispatches(Mode::Train, shape, &bufs).unwrap()
}
