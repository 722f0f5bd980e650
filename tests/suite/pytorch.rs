//! Accuracy against PyTorch's own float32 error on the same data (`tests/data/pytorch/`):
//! every output within max(2 x PyTorch's relative L2 error, 1e-7) of the f64 reference.
//!
//! `make_cases.py` ran PyTorch on about twenty ordinary cases (per-channel mean about 0.01
//! of the standard deviation, 8k to 65k values per channel; a few far from zero or at
//! other scales) in float64 and float32 and committed its float64 results and its
//! float32 errors to `cases.json`. This test draws the same data bit for bit (the
//! generator below is the script's), checks that the crate's f64 reference gives
//! PyTorch's float64 results, and bounds each GPU output's error by PyTorch's.

use serde_json::Value;
use wgpu_batchnorm::{
    BatchNorm, BatchNormConfig, HostRunningStats, Layout, Mode, TensorShape, reference,
};

/// The floor of the bound: about twice f32's unit roundoff.
const FLOOR: f64 = 1e-7;

/// Output `i` of splitmix64 from `seed` (the script's `splitmix64`).
fn splitmix64(seed: u64, i: u64) -> u64 {
    let mut z = seed.wrapping_add((i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The script's `normal_like`: loc + scale * (sum of 12 uniforms - 6), rounded to f32.
/// Every uniform is a multiple of 2^-24 below 1, so their sum is exact in f64 whatever
/// the order of the additions.
fn normal_like(spec: &Value, n: usize) -> Vec<f32> {
    let seed = spec["seed"].as_u64().expect("seed");
    let loc = spec["loc"].as_f64().expect("loc");
    let scale = spec["scale"].as_f64().expect("scale");
    (0..n as u64)
        .map(|j| {
            let z: f64 = (0..12)
                .map(|t| (splitmix64(seed, 12 * j + t) >> 40) as f64 / 16_777_216.0)
                .sum::<f64>()
                - 6.0;
            (loc + scale * z) as f32
        })
        .collect()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|e| e.as_f64().expect("number"))
        .collect()
}

/// The crate's f64 reference against PyTorch's float64 result: the same data and the same
/// semantics give the same values to f64 rounding.
fn check_reference(case: &str, name: &str, ours: &[f64], theirs: &Value) {
    let close = |a: f64, b: f64, scale: f64| (a - b).abs() <= 1e-9 * scale;
    if let Some(l2) = theirs.get("l2") {
        let l2 = l2.as_f64().expect("l2");
        let sum = theirs["sum"].as_f64().expect("sum");
        let our_l2 = ours.iter().map(|v| v * v).sum::<f64>().sqrt();
        let our_sum: f64 = ours.iter().sum();
        assert!(
            close(our_l2, l2, l2) && close(our_sum, sum, l2 * (ours.len() as f64).sqrt()),
            "{case} {name}: reference (l2 {our_l2}, sum {our_sum}) is not PyTorch's float64 \
             (l2 {l2}, sum {sum}): not the same data or not the same semantics"
        );
    } else {
        let theirs = floats(theirs);
        let scale = theirs.iter().map(|v| v * v).sum::<f64>().sqrt();
        for (c, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            assert!(
                close(*a, *b, scale),
                "{case} {name}[{c}]: reference {a} is not PyTorch's float64 {b}"
            );
        }
    }
}

/// The GPU's and the reference's value of each output of one case, by PyTorch's names.
type Outputs = Vec<(&'static str, Vec<f32>, Vec<f64>)>;

fn run_case(case: &Value) -> Outputs {
    let gpu = crate::common::gpu();
    let dims: Vec<usize> = case["dims"]
        .as_array()
        .expect("dims")
        .iter()
        .map(|d| d.as_u64().expect("dim") as usize)
        .collect();
    let layout = match case["layout"].as_str() {
        Some("first") => Layout::ChannelsFirst,
        _ => Layout::ChannelsLast,
    };
    let shape = TensorShape::new(&dims, layout).expect("shape");
    let c = shape.channels();
    let n = shape.numel();
    let x = normal_like(&case["x"], n);
    let dy = normal_like(&case["dy"], n);
    let affine = !case["gamma"].is_null();
    let (gamma, beta) = if affine {
        (
            normal_like(&case["gamma"], c),
            normal_like(&case["beta"], c),
        )
    } else {
        (vec![1.0; c], vec![0.0; c])
    };
    let training = case["training"].as_bool().expect("training");
    let mut config = BatchNormConfig::new(c);
    config.affine = affine;
    let bn = BatchNorm::new(&gpu.device, config).expect("BatchNorm::new");
    let params = affine.then_some((gamma.as_slice(), beta.as_slice()));
    let mut running = HostRunningStats::new(c);
    let mut want_running = reference::RunningStats::new(c);
    let mode = if training { Mode::Train } else { Mode::Eval };
    if !training {
        running.mean.fill(0.02);
        running.var.fill(0.9);
        want_running.mean.fill(f64::from(0.02f32));
        want_running.var.fill(f64::from(0.9f32));
    }
    let got = bn
        .forward_host(&gpu.queue, mode, &shape, &x, params, Some(&mut running))
        .expect("forward");
    let want = reference::forward(&config, mode, &shape, &x, params, Some(&mut want_running));
    let saved = got
        .saved
        .as_ref()
        .map(|(m, s)| (m.as_slice(), s.as_slice()));
    // The backward from the GPU forward's saved statistics, as PyTorch's from its own.
    let back = bn
        .backward_host(
            &gpu.queue,
            mode,
            &shape,
            &x,
            &dy,
            affine.then_some(gamma.as_slice()),
            saved,
            (!training).then_some(&running),
        )
        .expect("backward");
    let want_back = reference::backward(
        &config,
        mode,
        &shape,
        &x,
        &dy,
        affine.then_some(gamma.as_slice()),
        None,
        Some(&want_running),
    );
    let mut out: Outputs = vec![("y", got.y, want.y), ("dx", back.dx, want_back.dx)];
    if let (Some((gm, gi)), Some((wm, wi))) = (got.saved, want.saved) {
        out.push(("mean", gm, wm));
        out.push(("invstd", gi, wi));
        out.push(("running_mean", running.mean, want_running.mean));
        out.push(("running_var", running.var, want_running.var));
    }
    if let (Some((gdg, gdb)), Some((wdg, wdb))) = (back.dgamma_dbeta, want_back.dgamma_dbeta) {
        out.push(("dgamma", gdg, wdg));
        out.push(("dbeta", gdb, wdb));
    }
    out
}

#[test]
fn every_output_within_twice_pytorchs_f32_error() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/pytorch/cases.json"
    ))
    .expect("tests/data/pytorch/cases.json");
    let doc: Value = serde_json::from_str(&text).expect("cases.json is JSON");
    let cases = doc["cases"].as_array().expect("cases");
    assert!(cases.len() >= 20, "the data set has {} cases", cases.len());
    let mut misses = Vec::new();
    let mut checked = 0;
    for case in cases {
        let name = case["name"].as_str().expect("name");
        for (output, got, want) in run_case(case) {
            check_reference(name, output, &want, &case["f64"][output]);
            let theirs = case["f32_error"][output].as_f64().expect("PyTorch's error");
            let ours = reference::relative_l2_error(&got, &want).0;
            let bound = (2.0 * theirs).max(FLOOR);
            // A NaN error is a miss too.
            let within = ours <= bound;
            eprintln!(
                "{name:<26} {output:<13} ours {ours:9.2e}  PyTorch f32 {theirs:9.2e}  bound {bound:9.2e}{}",
                if within { "" } else { "  MISSED" }
            );
            if !within {
                misses.push(format!("{name} {output}: {ours:.2e} > {bound:.2e}"));
            }
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} outputs compared");
    assert!(
        misses.is_empty(),
        "{} of {checked} outputs beyond max(2 x PyTorch's f32 error, {FLOOR:e}):\n{}",
        misses.len(),
        misses.join("\n")
    );
}
