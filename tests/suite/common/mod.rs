//! Helpers shared by the GPU tests: one device per test binary, fresh random data, and
//! comparison against the f64 reference.

use std::sync::OnceLock;

mod buffers;
mod case;

pub use buffers::*;
pub use case::*;

use rand::{RngExt, SeedableRng, rngs::StdRng};
use wgpu_batchnorm::{
    AffineGrads, AffineParams, BackwardBuffers, BatchNorm, BatchNormConfig, DType, Epilogue,
    ForwardBuffers, HeadlessGpu, HostRunningStats, LayerState, Mode, Reduction, RunningStats,
    SavedStats, TensorShape, reference,
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
///
/// With `WGPU_BATCHNORM_LIMITS=webgpu` the device has WebGPU's default limits
/// (`wgpu::Limits::default()`, what every browser guarantees) instead of the adapter's, so
/// that the whole suite shows what a WebGPU user gets; CI runs it so once on lavapipe.
pub fn open_gpu() -> HeadlessGpu {
    let opened = match std::env::var("WGPU_BATCHNORM_LIMITS").as_deref() {
        Ok("webgpu") => HeadlessGpu::open_with_limits(wgpu::Limits::default()).inspect(|g| {
            assert_eq!(
                g.device.limits(),
                wgpu::Limits::default(),
                "WebGPU's limits"
            );
            eprintln!("limits: WebGPU's defaults (WGPU_BATCHNORM_LIMITS=webgpu)");
        }),
        Ok(other) => panic!("WGPU_BATCHNORM_LIMITS={other}: only `webgpu` is known"),
        Err(_) => HeadlessGpu::open(),
    };
    match opened {
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

/// A device of the test adapter with adjusted limits.
pub fn device_with(adjust: impl FnOnce(&mut wgpu::Limits)) -> (wgpu::Device, wgpu::Queue) {
    let adapter = &gpu().adapter;
    let mut limits = adapter.limits();
    adjust(&mut limits);
    pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("test device with adjusted limits"),
        required_features: adapter.features() & wgpu_batchnorm::USEFUL_FEATURES,
        required_limits: limits,
        ..Default::default()
    }))
    .expect("device with adjusted limits")
}

/// A device whose storage bindings hold 4 KiB, with a 256-byte offset alignment, so that
/// small tensors are processed in pieces.
pub fn small_binding_device() -> (wgpu::Device, wgpu::Queue) {
    device_with(|l| {
        l.max_storage_buffer_binding_size = 4096;
        l.min_storage_buffer_offset_alignment = 256;
    })
}

/// The reductions this device can run: always shared memory, and subgroups when present.
pub fn reductions(gpu: &HeadlessGpu) -> Vec<Reduction> {
    let mut r = vec![Reduction::Workgroup];
    if gpu.device.features().contains(wgpu::Features::SUBGROUP) {
        r.push(Reduction::Subgroup);
    }
    r
}

/// A layer with `config` for every reduction this test binary's device runs.
pub fn layers(config: BatchNormConfig) -> Vec<BatchNorm> {
    let gpu = gpu();
    reductions(gpu)
        .into_iter()
        .map(|r| BatchNorm::with_reduction(&gpu.device, config, r).unwrap())
        .collect()
}

/// Both modes.
pub const MODES: [Mode; 2] = [Mode::Train, Mode::Eval];

/// [`check`] of a layer with `config` for every reduction path, in both modes.
pub fn check_every_layer(
    config: BatchNormConfig,
    shape: &TensorShape,
    data: Data,
    tol: f64,
    rng: &mut StdRng,
) {
    for bn in layers(config) {
        for mode in MODES {
            check(&bn, mode, shape, data, tol, rng);
        }
    }
}

/// [`check_recorded`] of a layer with `config` for every reduction path, in both modes.
pub fn check_recorded_every_layer(
    config: BatchNormConfig,
    shape: &TensorShape,
    tol: f64,
    rng: &mut StdRng,
) {
    let gpu = gpu();
    for bn in layers(config) {
        for mode in MODES {
            check_recorded(&gpu.device, &gpu.queue, &bn, mode, shape, tol, rng);
        }
    }
}

/// A random generator with a fresh seed, printed so a failure can be replayed: run the
/// failing test alone with `WGPU_BATCHNORM_SEED=<seed>`.
pub fn rng() -> StdRng {
    let seed: u64 = std::env::var("WGPU_BATCHNORM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
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

/// Asserts an error of at most `tol` against the reference relative to the values'
/// condition scale (the size of the terms that cancel in them; see
/// [`reference::scaled_error`]), naming the case.
pub fn assert_close_scaled(
    case: &str,
    name: &str,
    got: &[f32],
    want: &[f64],
    scale: &[f64],
    tol: f64,
) {
    assert_eq!(got.len(), want.len(), "{case}: {name} length");
    let (err, at) = reference::scaled_error(got, want, scale);
    assert!(
        err <= tol,
        "{case}: {name} error {err:.3e} > {tol:.0e} relative to its condition scale; largest difference at index {at}: got {}, want {} (scale {})",
        got[at],
        want[at],
        scale[at]
    );
}

/// Asserts `dx`, and `grads` = (dgamma, dbeta) exactly when the reference has them, against
/// the reference backward, each relative to its condition scale.
pub fn assert_gradients(
    case: &str,
    dx: &[f32],
    grads: Option<(&[f32], &[f32])>,
    want: &reference::Backward,
    tol: f64,
) {
    assert_close_scaled(case, "dx", dx, &want.dx, &want.dx_abs, tol);
    assert_eq!(
        grads.is_some(),
        want.dgamma_dbeta.is_some(),
        "{case}: grads"
    );
    if let (Some((g, b)), Some((wg, wb)), Some((ag, ab))) =
        (grads, &want.dgamma_dbeta, &want.dgamma_dbeta_abs)
    {
        assert_close_scaled(case, "dgamma", g, wg, ag, tol);
        assert_close_scaled(case, "dbeta", b, wb, ab, tol);
    }
}

/// The condition scale of a running mean after one update from `old` with a batch whose
/// per-channel mean of `|x|` is `mean_abs`: the new value is a weighted average of the
/// old one and the batch mean, so neither term exceeds the larger of the two.
pub fn running_mean_abs(old: &[f64], mean_abs: &[f64]) -> Vec<f64> {
    old.iter()
        .zip(mean_abs)
        .map(|(o, a)| o.abs().max(*a))
        .collect()
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
        num_batches_tracked: r.num_batches_tracked,
    }
}

/// A layer's running statistics (as `BatchNormLayer::state` reads them) as the reference's.
pub fn layer_running(state: &LayerState) -> reference::RunningStats {
    let widen = |v: &Option<Vec<f32>>| {
        let v = v.as_ref().expect("a layer with tracked running statistics");
        v.iter().map(|&x| f64::from(x)).collect()
    };
    reference::RunningStats {
        mean: widen(&state.running_mean),
        var: widen(&state.running_var),
        num_batches_tracked: state.num_batches_tracked.expect("tracked"),
    }
}

/// Splits a batch along N into micro-batches of the given sizes.
pub fn split(shape: &TensorShape, x: &[f32], sizes: &[usize]) -> Vec<(TensorShape, Vec<f32>)> {
    let per_sample = shape.numel() / shape.dims()[0];
    let mut start = 0;
    sizes
        .iter()
        .map(|&n| {
            let mut dims = shape.dims().to_vec();
            dims[0] = n;
            let part = x[start * per_sample..(start + n) * per_sample].to_vec();
            start += n;
            (TensorShape::new(&dims, shape.layout()).unwrap(), part)
        })
        .collect()
}
