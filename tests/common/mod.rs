//! Helpers shared by the GPU tests: one device per test binary, fresh random data, and
//! comparison against the f64 reference.
#![allow(dead_code)]

use std::sync::OnceLock;

use rand::{RngExt, SeedableRng, rngs::StdRng};
use wgpu_batchnorm::{HeadlessGpu, Reduction, reference};

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
