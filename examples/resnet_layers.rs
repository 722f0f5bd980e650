//! Builds the 53 batch-norm layers of a ResNet-50 (their channel counts, in order) on the
//! default adapter and reports the wall time, the process's resident memory before and
//! after, and the compute pipelines built. Layers of one device, element type and
//! reduction share one kernel set, so only the first layer compiles anything.
//!
//! ```text
//! cargo run --release --example resnet_layers
//! ```

use std::time::Instant;

use wgpu_batchnorm::{BatchNorm, BatchNormConfig, HeadlessGpu, pipelines_built};

/// The channels of ResNet-50's batch norms: the stem, then per stage its bottleneck
/// blocks (width, width, 4 x width) and the first block's projection shortcut.
fn resnet50_channels() -> Vec<usize> {
    let mut c = vec![64];
    for (width, blocks) in [(64, 3), (128, 4), (256, 6), (512, 3)] {
        for block in 0..blocks {
            c.extend([width, width, 4 * width]);
            if block == 0 {
                c.push(4 * width);
            }
        }
    }
    c
}

/// The resident set size of this process in KiB (Linux), or `None`.
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let gpu = HeadlessGpu::open()?;
    println!("adapter: {}", gpu.describe());
    let channels = resnet50_channels();
    assert_eq!(channels.len(), 53);
    let rss_before = rss_kib();
    let built_before = pipelines_built();
    let start = Instant::now();
    let mut first = None;
    let mut layers = Vec::new();
    for &c in &channels {
        let t = Instant::now();
        layers.push(BatchNorm::new(&gpu.device, BatchNormConfig::new(c))?);
        first.get_or_insert(t.elapsed());
    }
    let total = start.elapsed();
    let rss_after = rss_kib();
    let shared = layers.iter().all(|l| l.shares_kernels_with(&layers[0]));
    println!("layers: {}", layers.len());
    println!("pipelines built: {}", pipelines_built() - built_before);
    println!("one kernel set shared by all: {shared}");
    println!(
        "wall time: {:.1} ms in all, {:.1} ms for the first layer",
        total.as_secs_f64() * 1e3,
        first.unwrap_or_default().as_secs_f64() * 1e3
    );
    match (rss_before, rss_after) {
        (Some(b), Some(a)) => println!(
            "resident memory: {:.1} MiB before, {:.1} MiB after (+{:.1} MiB)",
            b as f64 / 1024.0,
            a as f64 / 1024.0,
            (a as f64 - b as f64) / 1024.0
        ),
        _ => println!("resident memory: not available on this system"),
    }
    Ok(())
}
