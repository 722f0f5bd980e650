//! burn's `BatchNorm` on its wgpu backend (fusion and autotune on), timed per pass with the
//! host's clock around each repetition and a wait for the device: the peer figures of the
//! speed issue, next to `examples/bench --host-clock` (this crate, same protocol, same
//! adapter). Channel-first shapes only (burn's layout).
//!
//! Passes, as the crate's bench names them:
//! - `fwd-train`: `forward` on the autodiff backend (batch statistics, running statistics
//!   updated);
//! - `fwd-eval`: `forward` of the input without autodiff (running statistics);
//! - `backward`: `(forward(x) * dy).sum().backward()` with x, gamma and beta requiring
//!   gradients, less the same forward and loss without `backward()` (both printed), since
//!   burn has no backward without its forward.
//!
//! Usage: `burn_peer [--reps N] [--warmup N] [--case DIMS ...]` (DIMS as `32x64x28x28`);
//! without `--case`, the speed issue's four shapes. `WGPU_BACKEND` is not read: the adapter
//! is Vulkan (lavapipe on the development machine) unless `--gl`.

use std::time::Instant;

use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::{Device, Distribution, Tensor};

const SHAPES: [&[usize]; 4] = [
    &[32, 64, 28, 28],
    &[16, 32, 64, 64],
    &[64, 256, 7, 7],
    &[4096, 256],
];

struct Options {
    reps: usize,
    warmup: usize,
    cases: Vec<Vec<usize>>,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        reps: 30,
        warmup: 3,
        cases: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--reps" => o.reps = value()?.parse().map_err(|e| format!("--reps: {e}"))?,
            "--warmup" => o.warmup = value()?.parse().map_err(|e| format!("--warmup: {e}"))?,
            "--case" => {
                let dims: Result<Vec<usize>, _> = value()?.split('x').map(str::parse).collect();
                o.cases.push(dims.map_err(|e| format!("--case: {e}"))?);
            }
            "-h" | "--help" => {
                println!("usage: burn_peer [--reps N] [--warmup N] [--case DIMS ...]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if o.cases.is_empty() {
        o.cases = SHAPES.iter().map(|d| d.to_vec()).collect();
    }
    if o.reps == 0 {
        return Err("--reps must be at least 1".into());
    }
    Ok(o)
}

/// Median wall time in milliseconds of `run` followed by a wait for the device, its
/// outputs held until then (so that a lazy backend cannot drop their work).
fn median_ms<T>(o: &Options, device: &Device, mut run: impl FnMut() -> T) -> f64 {
    let mut times = Vec::with_capacity(o.reps);
    for i in 0..o.warmup + o.reps {
        let t0 = Instant::now();
        let out = run();
        device.sync().expect("device sync");
        drop(out);
        if i >= o.warmup {
            times.push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn case<const D: usize>(o: &Options, device: &Device, dims: [usize; D]) {
    let c = dims[1];
    let bn: BatchNorm = BatchNormConfig::new(c).init(device);
    let x = Tensor::<D>::random(dims, Distribution::Normal(0.5, 2.0), device);
    let dy = Tensor::<D>::random(dims, Distribution::Normal(0.0, 1.0), device);
    let bytes = 4 * dims.iter().product::<usize>();
    let label = format!("{dims:?}");
    let layout = if D == 2 { "NC" } else { "NCHW" };
    let print = |pass: &str, ms: f64, moved: usize| {
        let gbps = (moved * bytes) as f64 / (ms * 1e6);
        println!("{label:>20} {layout:<4} {pass:<9} {ms:>9.4} ms {gbps:>7.1} GB/s");
    };

    let train = median_ms(o, device, || bn.forward(x.clone()));
    print("fwd-train", train, 3);

    // Without autodiff, burn's BatchNorm takes the running statistics.
    let x_inner = x.clone().inner();
    let eval = median_ms(o, device, || bn.forward(x_inner.clone()));
    print("fwd-eval", eval, 2);

    let xg = x.clone().require_grad();
    let forward_loss = median_ms(o, device, || (bn.forward(xg.clone()) * dy.clone()).sum());
    let with_backward = median_ms(o, device, || {
        let grads = (bn.forward(xg.clone()) * dy.clone()).sum().backward();
        let gx = xg.grad(&grads).expect("grad of x");
        let gg = bn.gamma.val().grad(&grads).expect("grad of gamma");
        let gb = bn.beta.val().grad(&grads).expect("grad of beta");
        (gx, gg, gb)
    });
    println!(
        "{label:>20} {layout:<4} fwd+loss {forward_loss:>9.4} ms, fwd+loss+backward {with_backward:>9.4} ms"
    );
    print("backward", with_backward - forward_loss, 5);
}

fn main() -> Result<(), String> {
    let o = options()?;
    let device = Device::wgpu(Default::default()).autodiff();
    println!(
        "burn 0.22.1, wgpu backend with fusion and autotune; {} reps after {} warm-up, host clock around each with a device sync",
        o.reps, o.warmup
    );
    for dims in &o.cases {
        match dims.len() {
            2 => case(&o, &device, [dims[0], dims[1]]),
            3 => case(&o, &device, [dims[0], dims[1], dims[2]]),
            4 => case(&o, &device, [dims[0], dims[1], dims[2], dims[3]]),
            5 => case(&o, &device, [dims[0], dims[1], dims[2], dims[3], dims[4]]),
            n => return Err(format!("{n} dimensions: expected 2 to 5")),
        }
    }
    Ok(())
}
