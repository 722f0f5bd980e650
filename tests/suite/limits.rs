//! The README's minimum limits (`wgpu_batchnorm::minimum_limits`): a device that has
//! exactly them runs every kernel path and the layer; one below any of the four that the
//! kernels need is refused with a typed error naming it.

use crate::common::*;
use wgpu_batchnorm::{
    BatchNorm, BatchNormConfig, BatchNormError, Layout, TensorShape, minimum_limits,
};

fn device_with_exactly(
    limits: wgpu::Limits,
) -> Result<(wgpu::Device, wgpu::Queue), wgpu::RequestDeviceError> {
    let adapter = &gpu().adapter;
    pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("device with exactly the given limits"),
        required_features: adapter.features() & wgpu_batchnorm::USEFUL_FEATURES,
        required_limits: limits,
        ..Default::default()
    }))
}

#[test]
fn minimum_limits_run_every_path() {
    let (device, queue) =
        device_with_exactly(minimum_limits()).expect("the adapter meets the minimum limits");
    assert_eq!(device.limits().max_storage_buffers_per_shader_stage, 6);
    let mut rng = rng();
    let cases: [(&[usize], Layout); 5] = [
        (&[4, 3, 9, 11], Layout::ChannelsFirst),
        (&[2, 300, 5], Layout::ChannelsFirst),
        (&[16, 4, 64, 64], Layout::ChannelsFirst),
        (&[4, 8, 8, 16], Layout::ChannelsLast),
        (&[512, 32], Layout::ChannelsFirst),
    ];
    for (dims, layout) in cases {
        let shape = TensorShape::new(dims, layout).unwrap();
        let bn = BatchNorm::new(&device, BatchNormConfig::new(shape.channels())).unwrap();
        for mode in MODES {
            check_on(&queue, &bn, mode, &shape, ORDINARY, TOL, &mut rng);
        }
    }
}

#[test]
fn one_below_the_minimum_is_refused_by_name() {
    type Lower = fn(&mut wgpu::Limits);
    let lowered: [(&str, Lower); 4] = [
        ("max_storage_buffers_per_shader_stage", |l| {
            l.max_storage_buffers_per_shader_stage -= 1
        }),
        ("max_compute_invocations_per_workgroup", |l| {
            l.max_compute_invocations_per_workgroup -= 1
        }),
        ("max_compute_workgroup_size_x", |l| {
            l.max_compute_workgroup_size_x -= 1
        }),
        ("max_compute_workgroup_storage_size", |l| {
            l.max_compute_workgroup_storage_size -= 16
        }),
    ];
    for (name, lower) in lowered {
        let mut limits = minimum_limits();
        lower(&mut limits);
        let (device, _) = device_with_exactly(limits).unwrap();
        let e = BatchNorm::new(&device, BatchNormConfig::new(3)).unwrap_err();
        assert!(
            matches!(&e, BatchNormError::UnsupportedDevice(m) if m.contains(name)),
            "{name}: {e}"
        );
    }
}
