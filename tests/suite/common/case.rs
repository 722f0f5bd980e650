//! The case builder of the suite: one forward and its backward recorded on fresh data with
//! poisoned outputs, every output compared with the f64 reference (`check_recorded_with`,
//! behind `check_on`, `check` and `check_recorded`); and the host layer's twin,
//! `check_host`.

use super::*;

/// The one case builder of the suite, through the recording API: one forward and its
/// backward of `bn` on fresh `data` on `queue` (of `bn`'s device), outputs poisoned
/// first, every output compared with the reference ([`check_recorded_with`]).
pub fn check_on(
    queue: &wgpu::Queue,
    bn: &BatchNorm,
    mode: Mode,
    shape: &TensorShape,
    data: Data,
    tol: f64,
    rng: &mut StdRng,
) {
    let inject = Inject::default();
    check_recorded_with(bn.device(), queue, bn, mode, shape, data, tol, rng, &inject);
}

/// The blocking host layer on top of the recording API (`forward_host`, `backward_host`),
/// tested once: one forward and its backward on fresh `data`, every output compared with
/// the reference.
pub fn check_host(
    queue: &wgpu::Queue,
    bn: &BatchNorm,
    mode: Mode,
    shape: &TensorShape,
    data: Data,
    tol: f64,
    rng: &mut StdRng,
) {
    let config = *bn.config();
    let c = shape.channels();
    let case = format!(
        "{:?} {:?} {:?} {config:?} subgroups={}",
        shape.layout(),
        shape.dims(),
        mode,
        bn.uses_subgroups()
    );
    let x = normal(rng, shape.numel(), data.mean, data.std);
    let dy = normal(rng, shape.numel(), 0.3, 1.0);
    let gamma = normal(rng, c, 1.0, 0.3);
    let beta = normal(rng, c, 0.0, 0.5);
    let affine = config.affine.then_some((gamma.as_slice(), beta.as_slice()));
    let mut running = config
        .track_running_stats
        .then(|| random_running(rng, c, data));
    let mut ref_running = running.as_ref().map(to_ref);
    let before = running.clone();

    let got = bn
        .forward_host(queue, mode, shape, &x, affine, running.as_mut())
        .unwrap_or_else(|e| panic!("{case}: forward: {e}"));
    let want = reference::forward(&config, mode, shape, &x, affine, ref_running.as_mut());
    let mean_abs = reference::mean_abs(shape, &x);
    assert_close(&case, "y", &got.y, &want.y, tol);
    assert_eq!(got.saved.is_some(), want.saved.is_some(), "{case}: saved");
    if let (Some((m, s)), Some((wm, ws))) = (&got.saved, &want.saved) {
        assert_close_scaled(&case, "save_mean", m, wm, &mean_abs, tol);
        assert_close(&case, "save_invstd", s, ws, tol);
        assert!(
            s.iter().all(|v| v.is_finite() && *v > 0.0),
            "{case}: invstd {s:?}"
        );
    }
    if let (Some(r), Some(wr), Some(old)) = (&running, &ref_running, &before) {
        let abs = running_mean_abs(&to_ref(old).mean, &mean_abs);
        assert_close_scaled(&case, "running_mean", &r.mean, &wr.mean, &abs, tol);
        assert_close(&case, "running_var", &r.var, &wr.var, tol);
        assert!(
            r.var.iter().all(|v| *v >= 0.0),
            "{case}: negative running var"
        );
        assert_eq!(r.num_batches_tracked, wr.num_batches_tracked, "{case}");
        if mode == Mode::Eval {
            assert_eq!(
                Some(r),
                before.as_ref(),
                "{case}: eval changed running stats"
            );
        }
    }

    let saved = got
        .saved
        .as_ref()
        .map(|(m, s)| (m.as_slice(), s.as_slice()));
    let eval_running = running.as_ref().filter(|_| saved.is_none());
    let got = bn
        .backward_host(
            queue,
            mode,
            shape,
            &x,
            &dy,
            config.affine.then_some(gamma.as_slice()),
            saved,
            eval_running,
        )
        .unwrap_or_else(|e| panic!("{case}: backward: {e}"));
    // The reference backward takes what the GPU backward takes: the saved statistics (checked
    // against the exact f64 ones above), or the running statistics the forward read. With
    // exact statistics instead, dgamma would also carry the f32 rounding of the saved mean
    // times sum(dy), an error of the saved mean's precision rather than of the backward.
    let ref_before = before.as_ref().map(to_ref);
    let want = reference::backward(
        &config,
        mode,
        shape,
        &x,
        &dy,
        config.affine.then_some(gamma.as_slice()),
        saved,
        ref_before.as_ref(),
    );
    assert_eq!(got.dgamma_dbeta.is_some(), config.affine, "{case}: grads");
    let grads = got
        .dgamma_dbeta
        .as_ref()
        .map(|(g, b)| (g.as_slice(), b.as_slice()));
    assert_gradients(&case, &got.dx, grads, &want, tol);
}

/// [`check_on`] on the shared device of this test binary.
pub fn check(
    bn: &BatchNorm,
    mode: Mode,
    shape: &TensorShape,
    data: Data,
    tol: f64,
    rng: &mut StdRng,
) {
    check_on(&gpu().queue, bn, mode, shape, data, tol, rng);
}

/// Forward and backward of `bn` (any dtype, epilogue, affine or not, tracked or not)
/// recorded into one encoder on fresh data with poisoned outputs, every output compared
/// with the f64 reference on the same (dtype-rounded) inputs within `tol`.
pub fn check_recorded(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    bn: &BatchNorm,
    mode: Mode,
    shape: &TensorShape,
    tol: f64,
    rng: &mut StdRng,
) {
    let inject = Inject::default();
    check_recorded_with(device, queue, bn, mode, shape, ORDINARY, tol, rng, &inject);
}

/// What [`check_recorded_with`] changes of its random case: values written over the
/// inputs ((flat index, value) pairs for x, the residual z and dy, e.g. a NaN or an
/// infinity), and whether dgamma and dbeta start with random values that the backward
/// accumulates into (`AffineGrads::accumulate`) instead of poison it overwrites.
#[derive(Clone, Debug, Default)]
pub struct Inject {
    pub x: Vec<(usize, f32)>,
    pub z: Vec<(usize, f32)>,
    pub dy: Vec<(usize, f32)>,
    pub accumulate: bool,
}

impl Inject {
    fn apply(list: &[(usize, f32)], v: &mut [f32]) {
        for &(i, value) in list {
            v[i] = value;
        }
    }
}

/// [`check_recorded`] on `data`, with `inject` written over the random inputs. Non-finite
/// outputs must match the reference's (see `reference::non_finite_matches`).
#[allow(clippy::too_many_arguments)]
pub fn check_recorded_with(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    bn: &BatchNorm,
    mode: Mode,
    shape: &TensorShape,
    data: Data,
    tol: f64,
    rng: &mut StdRng,
    inject: &Inject,
) {
    let config = *bn.config();
    let dtype = config.dtype;
    let (n, c) = (shape.numel(), shape.channels());
    let case = format!(
        "{:?} {:?} {mode:?} {config:?} subgroups={} {inject:?}",
        shape.layout(),
        shape.dims(),
        bn.uses_subgroups()
    );
    let [mut x, mut z, mut dy] =
        [(data.mean, data.std), (0.0, 1.0), (0.2, 1.0)].map(|(m, s)| normal(rng, n, m, s));
    Inject::apply(&inject.x, &mut x);
    Inject::apply(&inject.z, &mut z);
    Inject::apply(&inject.dy, &mut dy);
    let [x, z, dy] = [x, z, dy].map(|v| round_to(dtype, &v));
    let gamma = normal(rng, c, 1.0, 0.3);
    let beta = normal(rng, c, 0.0, 0.5);
    let start = random_running(rng, c, data);
    let (rm, rv) = (start.mean.clone(), start.var.clone());
    let add = config.epilogue == Epilogue::AddRelu;
    let fused = config.epilogue != Epilogue::None;
    let poison = vec![f32::NAN; n];
    let (xb, zb, dyb) = (
        upload_tensor(device, dtype, &x),
        upload_tensor(device, dtype, &z),
        upload_tensor(device, dtype, &dy),
    );
    let [yb, dxb, dzb] = [(); 3].map(|_| upload_tensor(device, dtype, &poison));
    let (gb, bb) = (upload_f32(device, &gamma), upload_f32(device, &beta));
    let (rmb, rvb, tb) = (
        upload_f32(device, &rm),
        upload_f32(device, &rv),
        upload_bytes(device, bytemuck::bytes_of(&start.num_batches_tracked)),
    );
    let [smb, sib] = [(); 2].map(|_| upload_f32(device, &vec![f32::NAN; c]));
    let held = [(); 2].map(|_| match inject.accumulate {
        true => normal(rng, c, 0.0, 10.0),
        false => vec![f32::NAN; c],
    });
    let [dgb, dbb] = [0, 1].map(|i| upload_f32(device, &held[i]));
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
            y: fused.then(|| yb.slice(..)),
            dresidual: add.then(|| dzb.slice(..)),
            gamma: config.affine.then(|| gb.slice(..)),
            grads: config.affine.then(|| AffineGrads {
                dgamma: dgb.slice(..),
                dbeta: dbb.slice(..),
                accumulate: inject.accumulate,
            }),
            saved,
            running: bwd_running,
        },
    )
    .unwrap_or_else(|e| panic!("{case}: {e}"));
    queue.submit([encoder.finish()]);

    let widen = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
    let y = read_tensor(device, queue, dtype, &yb, n);
    let mut want_running = config.track_running_stats.then(|| to_ref(&start));
    let before = want_running.clone();
    let affine = config.affine.then_some((gamma.as_slice(), beta.as_slice()));
    let mut want = reference::forward(&config, mode, shape, &x, affine, want_running.as_mut());
    reference::apply_epilogue(&mut want.y, add.then_some(z.as_slice()), config.epilogue);
    let mean_abs = reference::mean_abs(shape, &x);
    assert_close(&case, "y", &y, &want.y, tol);
    let (sm, si) = (read_f32(device, queue, &smb), read_f32(device, queue, &sib));
    if let Some((wm, ws)) = &want.saved {
        assert_close_scaled(&case, "save_mean", &sm, wm, &mean_abs, tol);
        assert_close(&case, "save_invstd", &si, ws, tol);
        // Finite data has a positive, finite invstd.
        if inject.x.is_empty() {
            assert!(
                si.iter().all(|v| v.is_finite() && *v > 0.0),
                "{case}: invstd {si:?}"
            );
        }
    }
    if let (Some(w), Some(old)) = (&want_running, &before) {
        let (got_mean, got_var) = (read_f32(device, queue, &rmb), read_f32(device, queue, &rvb));
        let abs = running_mean_abs(&old.mean, &mean_abs);
        assert_close_scaled(&case, "running_mean", &got_mean, &w.mean, &abs, tol);
        assert_close(&case, "running_var", &got_var, &w.var, tol);
        let count: u64 = bytemuck::pod_read_unaligned(&read_bytes(device, queue, &tb)[..8]);
        assert_eq!(count, w.num_batches_tracked, "{case}: num_batches_tracked");
        if inject.x.is_empty() {
            assert!(
                got_var.iter().all(|v| *v >= 0.0),
                "{case}: negative running var"
            );
        }
        if mode == Mode::Eval {
            assert_eq!(
                (&got_mean, &got_var),
                (&rm, &rv),
                "{case}: eval changed running stats"
            );
        }
    }
    let through = reference::through_epilogue(&dy, &y, config.epilogue);
    let mut want = reference::backward(
        &config,
        mode,
        shape,
        &x,
        &through,
        config.affine.then_some(gamma.as_slice()),
        batch.then_some((sm.as_slice(), si.as_slice())),
        before.as_ref(),
    );
    if let (true, Some((g, b)), Some((g_abs, b_abs))) = (
        inject.accumulate,
        &mut want.dgamma_dbeta,
        &mut want.dgamma_dbeta_abs,
    ) {
        // The held values are added once: the sum and its scale grow by them.
        for (sum, scale, held) in [(g, g_abs, &held[0]), (b, b_abs, &held[1])] {
            for ((s, a), &h) in sum.iter_mut().zip(scale.iter_mut()).zip(held) {
                *s += f64::from(h);
                *a += f64::from(h).abs();
            }
        }
    }
    let grads = config
        .affine
        .then(|| (read_f32(device, queue, &dgb), read_f32(device, queue, &dbb)));
    assert_gradients(
        &case,
        &read_tensor(device, queue, dtype, &dxb, n),
        grads.as_ref().map(|(g, b)| (g.as_slice(), b.as_slice())),
        &want,
        tol,
    );
    if add {
        assert_close(
            &case,
            "dz",
            &read_tensor(device, queue, dtype, &dzb, n),
            &widen(&through),
            tol,
        );
    }
}
