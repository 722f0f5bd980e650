//! Property tests: random shapes (1s, primes, large and tiny extents, empty batches),
//! layouts, options, modes and buffer offsets, through the recording API on one pooled
//! buffer, against the f64 reference. `PROPTEST_CASES` sets the number of cases (default 64
//! per property).

use crate::common::*;
use proptest::prelude::*;
use wgpu::util::DeviceExt;
use wgpu_batchnorm::{
    AffineGrads, AffineParams, BackwardBuffers, BatchNorm, BatchNormConfig, BatchNormError,
    ForwardBuffers, Layout, Mode, RunningStats, SavedStats, TensorShape, reference,
};

/// Largest tensor a case draws, to keep the f64 reference quick in debug builds.
const MAX_ELEMENTS: usize = 40_000;

#[derive(Clone, Debug)]
struct Case {
    dims: Vec<usize>,
    layout: Layout,
    config: BatchNormConfig,
    mode: Mode,
    /// Gap before each slice in the pool, in units of the offset alignment.
    gaps: Vec<u8>,
    seed: u64,
}

fn extent() -> impl Strategy<Value = usize> {
    prop_oneof![
        3 => Just(1usize),
        4 => prop::sample::select(vec![2usize, 3, 5, 7, 13, 17]),
        2 => 1usize..=40,
        1 => prop::sample::select(vec![64usize, 127, 256, 257, 1000]),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        2usize..=5,
        prop_oneof![Just(Layout::ChannelsFirst), Just(Layout::ChannelsLast)],
        prop_oneof![8 => 1usize..=9, 1 => Just(0usize)],
        1usize..=9,
        prop::collection::vec(extent(), 3),
        (any::<bool>(), any::<bool>(), prop::option::of(0.0f32..=1.0)),
        prop::sample::select(vec![1e-5f32, 1e-3, 0.1]),
        prop_oneof![Just(Mode::Train), Just(Mode::Eval)],
        prop::collection::vec(0u8..3, 16),
        any::<u64>(),
    )
        .prop_map(
            |(
                rank,
                layout,
                batch,
                channels,
                spatial,
                (affine, track, momentum),
                eps,
                mode,
                gaps,
                seed,
            )| {
                let spatial = &spatial[..rank - 2];
                let mut dims = vec![batch];
                if layout == Layout::ChannelsFirst {
                    dims.push(channels);
                    dims.extend(spatial);
                } else {
                    dims.extend(spatial);
                    dims.push(channels);
                }
                let config = BatchNormConfig::new(channels)
                    .affine(affine)
                    .track_running_stats(track)
                    .momentum(momentum)
                    .eps(eps);
                Case {
                    dims,
                    layout,
                    config,
                    mode,
                    gaps,
                    seed,
                }
            },
        )
        .prop_filter("tensor too large for a quick reference", |c| {
            c.dims.iter().product::<usize>() <= MAX_ELEMENTS
        })
}

/// Slices of one pooled buffer at aligned offsets with random gaps.
struct Pool {
    align: usize,
    gaps: Vec<u8>,
    ranges: Vec<(usize, usize)>,
    end: usize,
}

impl Pool {
    fn take(&mut self, bytes: usize) -> usize {
        let gap = self.gaps[self.ranges.len() % self.gaps.len()] as usize * self.align;
        let start = (self.end + gap).div_ceil(self.align) * self.align;
        // An empty tensor still needs a (never accessed) non-empty slice.
        self.ranges.push((start, bytes.max(4)));
        self.end = start + bytes.max(4);
        self.ranges.len() - 1
    }
}

fn run_case(case: &Case) -> Result<(), TestCaseError> {
    let gpu = gpu();
    let shape = TensorShape::new(&case.dims, case.layout).unwrap();
    let config = case.config;
    let bn = BatchNorm::new(&gpu.device, config).unwrap();
    let (n, c) = (shape.numel(), shape.channels());
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(case.seed);
    let x = normal(&mut rng, n, 1.5, 2.0);
    let dy = normal(&mut rng, n, 0.2, 1.0);
    let gamma = normal(&mut rng, c, 1.0, 0.3);
    let beta = normal(&mut rng, c, 0.0, 0.3);
    let rmean = normal(&mut rng, c, 1.5, 0.3);
    let rvar = uniform(&mut rng, c, 2.0, 6.0);

    let align = gpu.device.limits().min_storage_buffer_offset_alignment as usize;
    let mut pool = Pool {
        align,
        gaps: case.gaps.clone(),
        ranges: Vec::new(),
        end: 0,
    };
    let [xi, yi, dyi, dxi] = [(); 4].map(|_| pool.take(4 * n));
    let [gi, bi, rmi, rvi, smi, sii, dgi, dbi] = [(); 8].map(|_| pool.take(4 * c));
    let ti = pool.take(8);
    let mut init = vec![f32::NAN; pool.end.div_ceil(4)];
    let mut put = |i: usize, v: &[f32]| {
        let s = pool.ranges[i].0 / 4;
        init[s..s + v.len()].copy_from_slice(v);
    };
    put(xi, &x);
    put(dyi, &dy);
    put(gi, &gamma);
    put(bi, &beta);
    put(rmi, &rmean);
    put(rvi, &rvar);
    put(ti, &[f32::from_bits(7), 0.0]);
    let buffer = gpu
        .device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("property pool"),
            contents: bytemuck::cast_slice(&init),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        });
    let s = |i: usize| {
        let (start, len) = pool.ranges[i];
        buffer.slice(start as u64..(start + len) as u64)
    };
    let batch = config.uses_batch_stats(case.mode);
    let saved = batch.then(|| SavedStats {
        mean: s(smi),
        invstd: s(sii),
    });
    let running = config.track_running_stats.then(|| RunningStats {
        mean: s(rmi),
        var: s(rvi),
        num_batches_tracked: Some(s(ti)),
        skipped_batches: None,
    });
    let mut encoder = gpu.device.create_command_encoder(&Default::default());
    let forward = bn.forward(
        &mut encoder,
        case.mode,
        &shape,
        &ForwardBuffers {
            x: s(xi),
            y: s(yi),
            residual: None,
            affine: config.affine.then(|| AffineParams {
                gamma: s(gi),
                beta: s(bi),
            }),
            running,
            saved,
        },
    );
    if n > 0 && batch && shape.per_channel() == 1 {
        prop_assert!(
            matches!(forward, Err(BatchNormError::TooFewValuesPerChannel { .. })),
            "{forward:?}"
        );
        return Ok(());
    }
    forward.map_err(|e| TestCaseError::fail(format!("forward: {e}")))?;
    // The backward of an eval forward with running statistics reads them; training ones
    // were updated by the forward, so read them from before (eval does not update).
    let bwd_running = (!batch).then(|| RunningStats {
        num_batches_tracked: None,
        skipped_batches: None,
        ..running.unwrap()
    });
    bn.backward(
        &mut encoder,
        case.mode,
        &shape,
        &BackwardBuffers {
            x: s(xi),
            dy: s(dyi),
            dx: s(dxi),
            y: None,
            dresidual: None,
            gamma: config.affine.then(|| s(gi)),
            grads: config.affine.then(|| AffineGrads {
                dgamma: s(dgi),
                dbeta: s(dbi),
                accumulate: false,
            }),
            saved,
            running: bwd_running,
        },
    )
    .map_err(|e| TestCaseError::fail(format!("backward: {e}")))?;
    gpu.queue.submit([encoder.finish()]);

    let staging = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: buffer.size(),
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = gpu.device.create_command_encoder(&Default::default());
    encoder.copy_buffer_to_buffer(&buffer, 0, &staging, 0, buffer.size());
    gpu.queue.submit([encoder.finish()]);
    staging
        .slice(..)
        .map_async(wgpu::MapMode::Read, |r| r.unwrap());
    gpu.device
        .poll(wgpu::PollType::wait_indefinitely())
        .unwrap();
    let out: Vec<f32> =
        bytemuck::pod_collect_to_vec(&staging.slice(..).get_mapped_range().unwrap());
    let get = |i: usize, len: usize| {
        let s = pool.ranges[i].0 / 4;
        out[s..s + len].to_vec()
    };

    let label = format!("{case:?}");
    let affine = config.affine.then_some((gamma.as_slice(), beta.as_slice()));
    let mut want_running = config.track_running_stats.then(|| reference::RunningStats {
        mean: rmean.iter().map(|&v| f64::from(v)).collect(),
        var: rvar.iter().map(|&v| f64::from(v)).collect(),
        num_batches_tracked: 7,
    });
    let before = want_running.clone();
    let want = reference::forward(
        &config,
        case.mode,
        &shape,
        &x,
        affine,
        want_running.as_mut(),
    );
    if n > 0 {
        assert_close(&label, "y", &get(yi, n), &want.y, TOL);
    }
    let got_saved = (get(smi, c), get(sii, c));
    if let (true, Some((wm, ws))) = (n > 0, &want.saved) {
        let abs = reference::mean_abs(&shape, &x);
        assert_close_scaled(&label, "save_mean", &got_saved.0, wm, &abs, TOL);
        assert_close(&label, "save_invstd", &got_saved.1, ws, TOL);
    }
    if let Some(w) = &want_running {
        // An empty batch leaves the running statistics bit for bit (the reference would
        // average in a NaN batch, which PyTorch does not).
        let (want_mean, want_var) = match (n, &before) {
            (0, Some(b)) => (&b.mean, &b.var),
            _ => (&w.mean, &w.var),
        };
        let abs = running_mean_abs(
            &before.as_ref().unwrap().mean,
            &reference::mean_abs(&shape, &x),
        );
        assert_close_scaled(&label, "running_mean", &get(rmi, c), want_mean, &abs, TOL);
        assert_close(&label, "running_var", &get(rvi, c), want_var, TOL);
        let words: Vec<u32> = get(ti, 2).iter().map(|w| w.to_bits()).collect();
        let tracked = u64::from(words[0]) | u64::from(words[1]) << 32;
        prop_assert_eq!(tracked, 7 + u64::from(case.mode == Mode::Train));
    }
    let saved_host = batch.then_some((got_saved.0.as_slice(), got_saved.1.as_slice()));
    let want = reference::backward(
        &config,
        case.mode,
        &shape,
        &x,
        &dy,
        config.affine.then_some(gamma.as_slice()),
        saved_host,
        before.as_ref(),
    );
    if n > 0 {
        // With few values per channel, dx can be a near cancellation of terms some 1/eps
        // larger (two values: gamma * invstd * eps / (var + eps) * (dy_1 - dy_2) / 2), so its
        // error is measured against the terms' magnitudes (`reference::scaled_error`).
        assert_close_scaled(&label, "dx", &get(dxi, n), &want.dx, &want.dx_abs, TOL);
    }
    if let (Some((wg, wb)), Some((ag, ab))) = (&want.dgamma_dbeta, &want.dgamma_dbeta_abs) {
        let zeros = vec![0.0; c];
        let (wg, wb) = if n == 0 { (&zeros, &zeros) } else { (wg, wb) };
        assert_close_scaled(&label, "dgamma", &get(dgi, c), wg, ag, TOL);
        assert_close_scaled(&label, "dbeta", &get(dbi, c), wb, ab, TOL);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
        ..ProptestConfig::default()
    })]

    #[test]
    fn gpu_matches_the_reference(case in case()) {
        run_case(&case)?;
    }
}
