//! Helpers shared by the GPU tests: one device per test binary, fresh random data, and
//! comparison against the f64 reference.
#![allow(dead_code)]

use std::sync::OnceLock;

use rand::{RngExt, SeedableRng, rngs::StdRng};
use wgpu_batchnorm::{
    BatchNorm, HeadlessGpu, HostRunningStats, Mode, Reduction, TensorShape, reference,
};

/// Relative L2 bound on ordinary data.
pub const TOL: f64 = 1e-5;
/// Relative L2 bound on data whose mean is 10^4 times its standard deviation.
pub const TOL_FAR_MEAN: f64 = 1e-3;

/// The shared device of this test binary. Fails (never skips) when no adapter is found.
pub fn gpu() -> &'static HeadlessGpu {
    static GPU: OnceLock<HeadlessGpu> = OnceLock::new();
    GPU.get_or_init(open_gpu)
}

/// A fresh device. Panics with instructions when there is no adapter: a GPU test must not
/// pass without a GPU.
pub fn open_gpu() -> HeadlessGpu {
    match HeadlessGpu::open() {
        Ok(gpu) => {
            eprintln!("adapter: {}", gpu.describe());
            require_subgroups_if_asked(&gpu);
            gpu
        }
        Err(e) => panic!(
            "GPU tests need a wgpu adapter and none was usable: {e}\n\
             On Debian/Ubuntu: `apt-get install mesa-vulkan-drivers` gives the lavapipe Vulkan \
             adapter (run with WGPU_BACKEND=vulkan); Mesa's llvmpipe serves WGPU_BACKEND=gl."
        ),
    }
}

/// CI sets `WGPU_BATCHNORM_REQUIRE_SUBGROUPS=1` for the Vulkan run, so the subgroup kernels
/// cannot go untested unnoticed.
fn require_subgroups_if_asked(gpu: &HeadlessGpu) {
    if std::env::var("WGPU_BATCHNORM_REQUIRE_SUBGROUPS").is_ok_and(|v| v == "1") {
        assert!(
            gpu.device.features().contains(wgpu::Features::SUBGROUP),
            "WGPU_BATCHNORM_REQUIRE_SUBGROUPS=1 but the device has no Features::SUBGROUP: {}",
            gpu.describe()
        );
    }
}

/// The reductions this device can run: always shared memory, and subgroups when present.
pub fn reductions(gpu: &HeadlessGpu) -> Vec<Reduction> {
    let mut r = vec![Reduction::Workgroup];
    if gpu.device.features().contains(wgpu::Features::SUBGROUP) {
        r.push(Reduction::Subgroup);
    }
    r
}

/// A random generator with a fresh seed, printed so a failure can be replayed.
pub fn rng() -> StdRng {
    let seed: u64 = rand::rng().random();
    eprintln!("seed {seed}");
    StdRng::seed_from_u64(seed)
}

/// `n` normal values with the given mean and standard deviation (Box-Muller).
pub fn normal(rng: &mut StdRng, n: usize, mean: f64, std: f64) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let u1: f64 = 1.0 - rng.random::<f64>();
            let u2: f64 = rng.random::<f64>();
            (mean + std * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
        })
        .collect()
}

/// `n` values uniform in [lo, hi).
pub fn uniform(rng: &mut StdRng, n: usize, lo: f64, hi: f64) -> Vec<f32> {
    (0..n)
        .map(|_| (lo + (hi - lo) * rng.random::<f64>()) as f32)
        .collect()
}

/// Asserts a relative L2 error of at most `tol` against the reference, naming the case.
pub fn assert_close(case: &str, name: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{case}: {name} length");
    let (err, at) = reference::relative_l2_error(got, want);
    assert!(
        err <= tol,
        "{case}: {name} relative L2 error {err:.3e} > {tol:.0e}; largest difference at index {at}: got {}, want {}",
        got[at],
        want[at]
    );
}

/// Input distribution of a case.
#[derive(Clone, Copy)]
pub struct Data {
    pub mean: f64,
    pub std: f64,
}

pub const ORDINARY: Data = Data {
    mean: 0.5,
    std: 2.0,
};

/// Random running statistics near the data's, as after some training.
pub fn random_running(rng: &mut StdRng, c: usize, data: Data) -> HostRunningStats {
    HostRunningStats {
        mean: normal(rng, c, data.mean, data.std * 0.1),
        var: uniform(rng, c, 0.5 * data.std * data.std, 2.0 * data.std * data.std),
        num_batches_tracked: 3,
    }
}

pub fn to_ref(r: &HostRunningStats) -> reference::RunningStats {
    reference::RunningStats {
        mean: r.mean.iter().map(|&v| f64::from(v)).collect(),
        var: r.var.iter().map(|&v| f64::from(v)).collect(),
        num_batches_tracked: u64::from(r.num_batches_tracked),
    }
}

/// One forward and its backward on fresh data on `queue` (of `bn`'s device), every output
/// compared with the reference.
pub fn check_on(
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
    assert_close(&case, "y", &got.y, &want.y, tol);
    assert_eq!(got.saved.is_some(), want.saved.is_some(), "{case}: saved");
    if let (Some((m, s)), Some((wm, ws))) = (&got.saved, &want.saved) {
        assert_close(&case, "save_mean", m, wm, tol);
        assert_close(&case, "save_invstd", s, ws, tol);
        assert!(
            s.iter().all(|v| v.is_finite() && *v > 0.0),
            "{case}: invstd {s:?}"
        );
    }
    if let (Some(r), Some(wr)) = (&running, &ref_running) {
        assert_close(&case, "running_mean", &r.mean, &wr.mean, tol);
        assert_close(&case, "running_var", &r.var, &wr.var, tol);
        assert!(
            r.var.iter().all(|v| *v >= 0.0),
            "{case}: negative running var"
        );
        assert_eq!(
            u64::from(r.num_batches_tracked),
            wr.num_batches_tracked,
            "{case}"
        );
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
    assert_close(&case, "dx", &got.dx, &want.dx, tol);
    assert_eq!(got.dgamma_dbeta.is_some(), config.affine, "{case}: grads");
    if let (Some((g, b)), Some((wg, wb))) = (&got.dgamma_dbeta, &want.dgamma_dbeta) {
        assert_close(&case, "dgamma", g, wg, tol);
        assert_close(&case, "dbeta", b, wb, tol);
    }
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
