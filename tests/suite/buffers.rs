//! The public buffer helpers: uploads and read-backs in f32 and f16, blocking and async,
//! slices at offsets, empty data, and a buffer that cannot be read back.

use crate::common::*;
use wgpu_batchnorm::{
    BatchNormError, read_f16, read_f16_async, read_f32, read_f32_async, upload_f16, upload_f32,
};

#[test]
fn f32_round_trip_whole_and_at_an_offset() {
    let gpu = gpu();
    let mut rng = rng();
    let v = normal(&mut rng, 300, 0.5, 2.0);
    let b = upload_f32(&gpu.device, "v", &v).unwrap();
    assert_eq!(read_f32(&gpu.device, &gpu.queue, b.slice(..)).unwrap(), v);
    // Values 64..300 (byte offset 256).
    let tail = read_f32(&gpu.device, &gpu.queue, b.slice(256..)).unwrap();
    assert_eq!(tail, v[64..]);
}

#[test]
fn f16_round_trip_rounds_to_nearest_even() {
    let gpu = gpu();
    let mut rng = rng();
    // An odd count, so the upload pads one f16.
    let v = normal(&mut rng, 301, 0.0, 100.0);
    let b = upload_f16(&gpu.device, "v", &v).unwrap();
    assert_eq!(b.size(), 302 * 2);
    let back = read_f16(&gpu.device, &gpu.queue, b.slice(..), v.len()).unwrap();
    let want: Vec<f32> = v.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect();
    assert_eq!(back, want);
    let err = read_f16(&gpu.device, &gpu.queue, b.slice(..), 400).unwrap_err();
    assert!(
        matches!(err, BatchNormError::HostLength { expected: 400, .. }),
        "{err}"
    );
}

#[test]
fn empty_data_gets_one_word() {
    let gpu = gpu();
    let b = upload_f32(&gpu.device, "empty", &[]).unwrap();
    assert_eq!(b.size(), 4);
    let h = upload_f16(&gpu.device, "empty", &[]).unwrap();
    assert_eq!(h.size(), 4);
}

#[test]
fn a_buffer_without_copy_src_is_refused() {
    let gpu = gpu();
    let b = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 16,
        usage: wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    let err = read_f32(&gpu.device, &gpu.queue, b.slice(..)).unwrap_err();
    assert!(
        matches!(&err, BatchNormError::Readback(m) if m.contains("COPY_SRC")),
        "{err}"
    );
}

/// The futures resolve once the device is polled, here from the test's own thread.
#[test]
fn async_reads_resolve_when_the_device_is_polled() {
    let gpu = gpu();
    let mut rng = rng();
    let v = normal(&mut rng, 64, 0.0, 1.0);
    let b = upload_f32(&gpu.device, "v", &v).unwrap();
    let h = upload_f16(&gpu.device, "h", &v).unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    let (f32s, f16s) = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let r = pollster::block_on(async {
                let a = read_f32_async(&gpu.device, &gpu.queue, b.slice(..)).await;
                let h = read_f16_async(&gpu.device, &gpu.queue, h.slice(..), v.len()).await;
                (a, h)
            });
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            r
        });
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            gpu.device.poll(wgpu::PollType::Poll).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        reader.join().unwrap()
    });
    assert_eq!(f32s.unwrap(), v);
    let want: Vec<f32> = v.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect();
    assert_eq!(f16s.unwrap(), want);
}
