//! Helpers shared by the GPU tests: one device per test binary, fresh random data, and
//! comparison against the f64 reference.

use std::sync::OnceLock;

use rand::{RngExt, SeedableRng, rngs::StdRng};
use wgpu_batchnorm::{
    AffineGrads, AffineParams, BackwardBuffers, BatchNorm, BatchNormConfig, DType, Epilogue,
    ForwardBuffers, HeadlessGpu, HostRunningStats, Mode, Reduction, RunningStats, SavedStats,
    TensorShape, reference,
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
        num_batches_tracked: u64::from(r.num_batches_tracked),
    }
}

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

/// A storage buffer holding `bytes`.
pub fn upload_bytes(device: &wgpu::Device, bytes: &[u8]) -> wgpu::Buffer {
    wgpu::util::DeviceExt::create_buffer_init(
        device,
        &wgpu::util::BufferInitDescriptor {
            label: None,
            contents: bytes,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        },
    )
}

/// Zeroed storage buffers for a full training forward of `shape` (affine, tracked running
/// statistics, saved statistics), for tests that need valid buffers rather than values.
pub struct TrainBufs {
    pub x: wgpu::Buffer,
    pub y: wgpu::Buffer,
    pub gamma: wgpu::Buffer,
    pub beta: wgpu::Buffer,
    pub rm: wgpu::Buffer,
    pub rv: wgpu::Buffer,
    pub nbt: wgpu::Buffer,
    pub sm: wgpu::Buffer,
    pub si: wgpu::Buffer,
}

impl TrainBufs {
    pub fn new(device: &wgpu::Device, shape: &TensorShape) -> Self {
        let (n, c) = (shape.numel(), shape.channels());
        let zeros = |len: usize| upload_f32(device, &vec![0.0; len]);
        Self {
            x: zeros(n),
            y: zeros(n),
            gamma: zeros(c),
            beta: zeros(c),
            rm: zeros(c),
            rv: zeros(c),
            nbt: zeros(1),
            sm: zeros(c),
            si: zeros(c),
        }
    }

    /// The buffers of a training forward, without a residual or skipped-batch counter.
    pub fn forward(&self) -> ForwardBuffers<'_> {
        ForwardBuffers {
            x: self.x.slice(..),
            y: self.y.slice(..),
            residual: None,
            affine: Some(AffineParams {
                gamma: self.gamma.slice(..),
                beta: self.beta.slice(..),
            }),
            running: Some(RunningStats {
                mean: self.rm.slice(..),
                var: self.rv.slice(..),
                num_batches_tracked: Some(self.nbt.slice(..)),
                skipped_batches: None,
            }),
            saved: Some(SavedStats {
                mean: self.sm.slice(..),
                invstd: self.si.slice(..),
            }),
        }
    }
}

/// A storage buffer holding f32 values.
pub fn upload_f32(device: &wgpu::Device, v: &[f32]) -> wgpu::Buffer {
    upload_bytes(device, bytemuck::cast_slice(v))
}

/// A tensor of `dtype` holding `v` (f16: rounded, padded to a whole 4-byte word with NaN).
pub fn upload_tensor(device: &wgpu::Device, dtype: DType, v: &[f32]) -> wgpu::Buffer {
    match dtype {
        DType::F32 => upload_f32(device, v),
        DType::F16 => {
            let mut h: Vec<half::f16> = v.iter().map(|&x| half::f16::from_f32(x)).collect();
            if h.len() % 2 == 1 {
                h.push(half::f16::NAN);
            }
            upload_bytes(device, bytemuck::cast_slice(&h))
        }
    }
}

/// `v` rounded to `dtype` (and back to f32, exactly).
pub fn round_to(dtype: DType, v: &[f32]) -> Vec<f32> {
    match dtype {
        DType::F32 => v.to_vec(),
        DType::F16 => v.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect(),
    }
}

/// The bytes of `buffer`, after everything submitted so far.
pub fn read_bytes(device: &wgpu::Device, queue: &wgpu::Queue, buffer: &wgpu::Buffer) -> Vec<u8> {
    let staging = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("test readback"),
        size: buffer.size(),
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = device.create_command_encoder(&Default::default());
    encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, buffer.size());
    queue.submit([encoder.finish()]);
    staging
        .slice(..)
        .map_async(wgpu::MapMode::Read, |r| r.unwrap());
    device.poll(wgpu::PollType::wait_indefinitely()).unwrap();
    let bytes = staging.slice(..).get_mapped_range().unwrap().to_vec();
    staging.unmap();
    bytes
}

/// The f32 values of `buffer`.
pub fn read_f32(device: &wgpu::Device, queue: &wgpu::Queue, buffer: &wgpu::Buffer) -> Vec<f32> {
    bytemuck::pod_collect_to_vec(&read_bytes(device, queue, buffer))
}

/// The first `n` values of a `dtype` tensor, as f32.
pub fn read_tensor(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    dtype: DType,
    buffer: &wgpu::Buffer,
    n: usize,
) -> Vec<f32> {
    let bytes = read_bytes(device, queue, buffer);
    match dtype {
        DType::F32 => bytemuck::pod_collect_to_vec(&bytes[..4 * n]),
        DType::F16 => {
            let h: Vec<half::f16> = bytemuck::pod_collect_to_vec(&bytes[..(2 * n).div_ceil(4) * 4]);
            h[..n].iter().map(|x| x.to_f32()).collect()
        }
    }
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

/// Values written over the random inputs of [`check_recorded_with`]: (flat index, value)
/// pairs for x, the residual z and dy, e.g. a NaN or an infinity.
#[derive(Clone, Debug, Default)]
pub struct Inject {
    pub x: Vec<(usize, f32)>,
    pub z: Vec<(usize, f32)>,
    pub dy: Vec<(usize, f32)>,
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
    let [smb, sib, dgb, dbb] = [(); 4].map(|_| upload_f32(device, &vec![f32::NAN; c]));
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
        let count: u32 = bytemuck::pod_read_unaligned(&read_bytes(device, queue, &tb)[..4]);
        assert_eq!(
            u64::from(count),
            w.num_batches_tracked,
            "{case}: num_batches_tracked"
        );
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
    let want = reference::backward(
        &config,
        mode,
        shape,
        &x,
        &through,
        config.affine.then_some(gamma.as_slice()),
        batch.then_some((sm.as_slice(), si.as_slice())),
        before.as_ref(),
    );
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
