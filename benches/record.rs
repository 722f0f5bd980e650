//! Host-side cost of recording: CPU time to record a training forward and a backward into
//! an encoder in the steady state (pipelines built, buffers allocated, parameters cached).
//! No GPU work is submitted; the encoder of each iteration is dropped unfinished.
//!
//! ```text
//! cargo bench --bench record
//! ```

use criterion::{Criterion, criterion_group, criterion_main};
use wgpu_batchnorm::{
    AffineGrads, AffineParams, BackwardBuffers, BatchNorm, BatchNormConfig, ForwardBuffers,
    HeadlessGpu, Mode, RunningStats, SavedStats, TensorShape,
};

fn bench(c: &mut Criterion) {
    let gpu = HeadlessGpu::open().expect("a wgpu adapter (e.g. mesa-vulkan-drivers)");
    eprintln!("adapter: {}", gpu.describe());
    let shape = TensorShape::channels_first(&[8, 64, 28, 28]).unwrap();
    let ch = shape.channels();
    let bn = BatchNorm::new(&gpu.device, BatchNormConfig::new(ch)).unwrap();
    let buffer = |floats: usize| {
        gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: 4 * floats as u64,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        })
    };
    let [x, y, dy, dx] = [(); 4].map(|_| buffer(shape.numel()));
    let [g, b, rm, rv, sm, si, dg, db] = [(); 8].map(|_| buffer(ch));
    let nbt = buffer(2); // a u64
    let saved = SavedStats {
        mean: sm.slice(..),
        invstd: si.slice(..),
    };
    let fwd = ForwardBuffers {
        x: x.slice(..),
        y: y.slice(..),
        residual: None,
        affine: Some(AffineParams {
            gamma: g.slice(..),
            beta: b.slice(..),
        }),
        running: Some(RunningStats {
            mean: rm.slice(..),
            var: rv.slice(..),
            num_batches_tracked: Some(nbt.slice(..)),
            skipped_batches: None,
        }),
        saved: Some(saved),
    };
    let bwd = BackwardBuffers {
        x: x.slice(..),
        dy: dy.slice(..),
        dx: dx.slice(..),
        y: None,
        dresidual: None,
        gamma: Some(g.slice(..)),
        grads: Some(AffineGrads {
            dgamma: dg.slice(..),
            dbeta: db.slice(..),
            accumulate: false,
        }),
        saved: Some(saved),
        running: None,
    };
    c.bench_function("record training forward", |bench| {
        bench.iter(|| {
            let mut encoder = gpu.device.create_command_encoder(&Default::default());
            bn.forward(&mut encoder, Mode::Train, &shape, &fwd).unwrap();
            encoder
        })
    });
    c.bench_function("record backward", |bench| {
        bench.iter(|| {
            let mut encoder = gpu.device.create_command_encoder(&Default::default());
            bn.backward(&mut encoder, Mode::Train, &shape, &bwd)
                .unwrap();
            encoder
        })
    });
    c.bench_function("create and drop an empty encoder (baseline)", |bench| {
        bench.iter(|| gpu.device.create_command_encoder(&Default::default()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
