//! The tuning table's settings as the plan applies them (`Tuning`): which dispatches and
//! grids each setting gives, recording nothing. Their results are checked against the
//! reference with both settings in `paths.rs` and `reliability.rs`.

use crate::common::*;
use crate::paths::backward_dispatches;
use wgpu_batchnorm::{
    BatchNorm, BatchNormConfig, Dispatch, ForwardBuffers, Layout, Mode, TensorShape, Tuning,
};

/// The partial passes write a record per invocation (no shared-memory merge, so no barrier)
/// where the tuning asks for it and each invocation gets that many of its channel's
/// elements (`Tuning::invocation_records`), and a record per workgroup otherwise, in the
/// training forward and the backward alike; nothing else changes with it.
#[test]
fn partial_records_follow_the_tuning() {
    let gpu = gpu();
    let (cpu, gpu_tuning) = (Tuning::CPU, Tuning::GPU);
    assert!(cpu.invocation_records > 0 && gpu_tuning.invocation_records == 0);
    let cases: [(&[usize], Layout, Tuning, Option<&str>); 5] = [
        // 65,536 values per channel: 256 for each of a workgroup's invocations at most.
        (
            &[16, 4, 64, 64],
            Layout::ChannelsFirst,
            cpu,
            Some("partial"),
        ),
        (&[16, 4, 64, 64], Layout::ChannelsFirst, gpu_tuning, None),
        // Two channels in rows of 128 invocations, 131,072 values each.
        (
            &[131072, 2],
            Layout::ChannelsFirst,
            cpu,
            Some("partial_rows"),
        ),
        // Too few values per invocation: 256 per channel, 16 rows.
        (&[4, 8, 8, 16], Layout::ChannelsLast, cpu, None),
        (&[4, 16, 32, 32], Layout::ChannelsFirst, cpu, None),
    ];
    for (dims, layout, tuning, want) in cases {
        let shape = TensorShape::new(dims, layout).unwrap();
        let config = BatchNormConfig::new(shape.channels());
        let bn = BatchNorm::new(&gpu.device, config)
            .unwrap()
            .with_tuning(tuning);
        let bufs = TrainBufs::new(&gpu.device, &shape);
        let forward = bn
            .forward_dispatches(Mode::Train, &shape, &bufs.forward())
            .unwrap();
        let records = |dispatches: &[Dispatch]| -> Vec<&str> {
            dispatches
                .iter()
                .filter(|d| d.invocation_records)
                .map(|d| d.kernel)
                .collect()
        };
        let case = format!("{dims:?} {layout:?} {tuning:?}");
        let want_forward: Vec<String> = want.iter().map(|k| format!("stats_{k}")).collect();
        assert_eq!(records(&forward), want_forward, "{case} forward");
        let backward = backward_dispatches(&bn, &shape);
        let want_backward: Vec<String> = want.iter().map(|k| format!("backward_{k}")).collect();
        assert_eq!(records(&backward), want_backward, "{case} backward");
    }
}

/// The scalar elementwise passes (where the vec4 ones cannot run: 7x7 planes) give each
/// invocation up to `Tuning::scalar_per_invocation` elements, fewer where more would leave
/// fewer than `target_workgroups` workgroups, and at least one.
#[test]
fn scalar_elements_per_invocation_keep_the_target_workgroups() {
    let gpu = gpu();
    let tuning = Tuning {
        target_workgroups: 4,
        scalar_per_invocation: 16,
        ..Tuning::GPU
    };
    // (dims, workgroups of the eval normalize pass): 4 workgroups of 256 invocations
    // hold 1,024; 25,088 elements take 16 per invocation (7 workgroups), 3,136 take 3 (5
    // workgroups, not 1 of 16 each), 150 take 1.
    let cases: [(&[usize], u32); 3] = [(&[64, 8, 7, 7], 7), (&[8, 8, 7, 7], 5), (&[2, 3, 5, 5], 1)];
    for (dims, want) in cases {
        let shape = TensorShape::new(dims, Layout::ChannelsFirst).unwrap();
        let bn = BatchNorm::new(&gpu.device, BatchNormConfig::new(shape.channels()))
            .unwrap()
            .with_tuning(tuning);
        let bufs = TrainBufs::new(&gpu.device, &shape);
        let eval = ForwardBuffers {
            saved: None,
            ..bufs.forward()
        };
        let dispatches = bn.forward_dispatches(Mode::Eval, &shape, &eval).unwrap();
        let normalize: Vec<(&str, (u32, u32))> = dispatches
            .iter()
            .filter(|d| d.kernel.starts_with("normalize"))
            .map(|d| (d.kernel, d.workgroups))
            .collect();
        assert_eq!(normalize, [("normalize", (want, 1))], "{dims:?}");
    }
}
