//! Synchronized batch norm over MPI: each rank (its own process, its own device) holds a
//! slice of one batch, of unequal sizes and one of them empty; `SyncBatchNormLayer` over
//! `MpiCollective` gives each rank the slice of one batch norm over the whole batch. Every
//! rank checks its y and dx against a single-process layer over the whole batch, and the
//! gradients and running statistics against that layer's, and all ranks compare their
//! gradient and running-statistics bits. Then the failure cases: one value per channel over
//! all ranks (every rank gets `TooFewValuesPerChannel`) and a rank whose input is refused
//! (the others get `PeerFailed`, none waits). A failed check exits with status 1.
//! `--bench` times one exchange per layer for C = 64, 256 and 2048 next to the layer's local
//! forward.
//!
//! ```text
//! cargo build --release --features mpi --example sync_bn_mpi
//! mpirun -n 3 target/release/examples/sync_bn_mpi                    # one machine
//! mpirun -n 3 target/release/examples/sync_bn_mpi --bench
//! mpirun -H host1,host2,host3 -n 3 target/release/examples/sync_bn_mpi   # three machines
//! ```
//! (as root, Open MPI also needs `--allow-run-as-root`; more ranks than cores need
//! `--oversubscribe`.)

mod common;

use common::normal;
use mpi::traits::*;
use rand::{SeedableRng, rngs::StdRng};
use std::time::Instant;
use wgpu_batchnorm::{
    BatchNormConfig, BatchNormError, BatchNormLayer, ChannelStats, Collective, HeadlessGpu,
    MpiCollective, SyncBatchNormLayer, TensorShape, read_f32, reference, upload_f32,
};

type Error = Box<dyn std::error::Error>;

/// Every rank's slice of the batch along N: 3, 0, 4 samples, repeated for more ranks.
fn sizes(world: usize) -> Vec<usize> {
    (0..world).map(|r| [3, 0, 4][r % 3]).collect()
}

/// What one training step (forward, backward) leaves: y, dx, dgamma, dbeta, running mean
/// and variance.
struct Step {
    y: Vec<f32>,
    dx: Vec<f32>,
    state: Vec<Vec<f32>>,
}

fn layer(
    gpu: &HeadlessGpu,
    c: usize,
    gamma: &[f32],
    beta: &[f32],
) -> Result<BatchNormLayer, Error> {
    let mut l = BatchNormLayer::batch_norm_2d(&gpu.device, BatchNormConfig::new(c), "bn")?;
    let mut state = l.state(&gpu.queue)?;
    (state.weight, state.bias) = (Some(gamma.to_vec()), Some(beta.to_vec()));
    l.load_state(&gpu.queue, &state)?;
    Ok(l)
}

fn finish(
    gpu: &HeadlessGpu,
    l: &BatchNormLayer,
    n: usize,
    y: &wgpu::Buffer,
    dx: &wgpu::Buffer,
) -> Result<Step, Error> {
    let read = |b: &wgpu::Buffer| read_f32(&gpu.device, &gpu.queue, b.slice(..));
    let (g, b) = l.grads().expect("affine");
    let s = l.state(&gpu.queue)?;
    Ok(Step {
        y: read(y)?[..n].to_vec(),
        dx: read(dx)?[..n].to_vec(),
        state: vec![
            read(g)?,
            read(b)?,
            s.running_mean.unwrap(),
            s.running_var.unwrap(),
        ],
    })
}

/// Buffers for x, dy, y and dx (an empty tensor gets one placeholder value).
fn buffers(gpu: &HeadlessGpu, x: &[f32], dy: &[f32]) -> Result<[wgpu::Buffer; 4], Error> {
    let up = |v: &[f32]| upload_f32(&gpu.device, "t", if v.is_empty() { &[0.0] } else { v });
    let poison = vec![f32::NAN; x.len()];
    Ok([up(x)?, up(dy)?, up(&poison)?, up(&poison)?])
}

fn check(world: &mpi::topology::SimpleCommunicator, gpu: &HeadlessGpu) -> Result<bool, Error> {
    let (rank, size) = (world.rank() as usize, world.size() as usize);
    let sizes = sizes(size);
    let (c, h, w) = (4, 5, 5);
    let total: usize = sizes.iter().sum();
    // The same seed on every rank: every rank knows the whole batch (to check its slice).
    let mut rng = StdRng::seed_from_u64(2026);
    let whole_shape = TensorShape::channels_first(&[total, c, h, w])?;
    let x = normal(&mut rng, whole_shape.numel(), 1.5, 2.0);
    let dy = normal(&mut rng, whole_shape.numel(), 0.2, 1.0);
    let (gamma, beta) = (normal(&mut rng, c, 1.0, 0.3), normal(&mut rng, c, 0.0, 0.3));
    let per_sample = c * h * w;
    let start = sizes[..rank].iter().sum::<usize>() * per_sample;
    let end = start + sizes[rank] * per_sample;
    let shape = TensorShape::channels_first(&[sizes[rank], c, h, w])?;

    // This rank's synchronized step.
    let mut sync = SyncBatchNormLayer::new(
        layer(gpu, c, &gamma, &beta)?,
        MpiCollective::new(world.duplicate()),
    )?;
    let [xb, dyb, yb, dxb] = buffers(gpu, &x[start..end], &dy[start..end])?;
    let n = end - start;
    // An empty rank's tensors are placeholders, neither checked nor accessed.
    let (xs, ys, dys, dxs) = (xb.slice(..), yb.slice(..), dyb.slice(..), dxb.slice(..));
    sync.forward(&gpu.queue, &shape, xs, ys)?;
    sync.backward(&gpu.queue, xs, ys, dys, dxs)?;
    let got = finish(gpu, sync.layer(), n, &yb, &dxb)?;

    // One layer over the whole batch, in this process.
    let mut whole = layer(gpu, c, &gamma, &beta)?;
    let [xb, dyb, yb, dxb] = buffers(gpu, &x, &dy)?;
    let mut e = gpu.device.create_command_encoder(&Default::default());
    whole.forward(&mut e, &whole_shape, xb.slice(..), yb.slice(..))?;
    whole.backward(
        &mut e,
        xb.slice(..),
        yb.slice(..),
        dyb.slice(..),
        dxb.slice(..),
    )?;
    gpu.queue.submit([e.finish()]);
    let want = finish(gpu, &whole, x.len(), &yb, &dxb)?;

    let widen = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
    let mut worst = 0.0f64;
    let mut compare = |got: &[f32], want: &[f32]| {
        if !got.is_empty() {
            worst = worst.max(reference::relative_l2_error(got, &widen(want)).0);
        }
    };
    compare(&got.y, &want.y[start..end]);
    compare(&got.dx, &want.dx[start..end]);
    for (g, w) in got.state.iter().zip(&want.state) {
        compare(g, w);
    }
    // Every rank's gradient and running-statistics bits, compared on every rank.
    let bits: Vec<u32> = got.state.iter().flatten().map(|v| v.to_bits()).collect();
    let mut all = vec![0u32; bits.len() * size];
    world.all_gather_into(&bits[..], &mut all[..]);
    let identical = all.chunks(bits.len()).all(|b| b == bits.as_slice());
    let ok = worst <= 1e-5 && identical;
    println!(
        "rank {rank}: {} samples; largest relative L2 error against one layer over the whole batch {worst:.1e} (y, dx, dgamma, dbeta, running mean and variance); gradients and running statistics bit-identical on all {size} ranks: {identical}",
        sizes[rank]
    );
    Ok(ok && errors_on_every_rank(world, gpu)?)
}

/// The typed errors of the issue's failure cases, on every rank, with no rank left waiting:
/// one value per channel over all ranks (rank 0 holds one sample of 1 x 1, the others none),
/// then a rank whose input is refused (rank 1 gives the wrong channel count).
fn errors_on_every_rank(
    world: &mpi::topology::SimpleCommunicator,
    gpu: &HeadlessGpu,
) -> Result<bool, Error> {
    let rank = world.rank() as usize;
    let c = 3;
    let run = |dims: &[usize]| -> Result<Result<(), BatchNormError>, Error> {
        let shape = TensorShape::channels_first(dims)?;
        let l = layer(gpu, c, &[1.0; 3], &[0.0; 3])?;
        let mut sync = SyncBatchNormLayer::new(l, MpiCollective::new(world.duplicate()))?;
        let [xb, _, yb, _] = buffers(gpu, &vec![0.5; shape.numel()], &[])?;
        Ok(sync.forward(&gpu.queue, &shape, xb.slice(..), yb.slice(..)))
    };
    let one = run(&[usize::from(rank == 0), c, 1, 1])?;
    let one_ok = matches!(one, Err(BatchNormError::TooFewValuesPerChannel { .. }));
    let channels = if rank == 1 { c + 1 } else { c };
    let failed = run(&[2, channels, 2, 2])?;
    let failed_ok = match rank {
        1 => matches!(failed, Err(BatchNormError::ChannelMismatch { .. })),
        _ => matches!(failed, Err(BatchNormError::PeerFailed { rank: 1 })),
    };
    println!(
        "rank {rank}: one value per channel over all ranks: {}; rank 1's input refused: {}",
        one.err().map_or("no error".to_string(), |e| e.to_string()),
        failed
            .err()
            .map_or("no error".to_string(), |e| e.to_string()),
    );
    Ok(one_ok && failed_ok)
}

fn median(mut t: Vec<f64>) -> f64 {
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn bench(world: &mpi::topology::SimpleCommunicator, gpu: &HeadlessGpu) -> Result<(), Error> {
    let collective = MpiCollective::new(world.duplicate());
    let rank = collective.rank();
    if rank == 0 {
        println!(
            "| C | forward exchange (all-reduce, Chan's merge) | backward exchange (all-reduce, sums) | PyTorch-style all-gather of world x (2C + 1) f32 | local training forward of (8, C, 16, 16) |"
        );
        println!("|---|---|---|---|---|");
    }
    for c in [64, 256, 2048] {
        let mut rng = StdRng::seed_from_u64(rank as u64);
        let stats = ChannelStats {
            count: vec![2048.0; c],
            mean: normal(&mut rng, c, 0.0, 1.0)
                .iter()
                .map(|&v| v as f64)
                .collect(),
            m2: vec![2048.0; c],
        };
        let sums = wgpu_batchnorm::BackwardSums::zeros(c);
        let time = |f: &mut dyn FnMut()| {
            (0..20).for_each(|_| f());
            median(
                (0..200)
                    .map(|_| {
                        let t = Instant::now();
                        f();
                        t.elapsed().as_secs_f64()
                    })
                    .collect(),
            )
        };
        let t_stats = time(&mut || {
            collective.merge_statistics(c, Some(&stats)).unwrap();
        });
        let t_sums = time(&mut || {
            collective.add_sums(c, Some(&sums)).unwrap();
        });
        // PyTorch's SyncBatchNorm exchange: an all-gather of world x (2C + 1) f32 (mean,
        // invstd, count per rank), merged on each rank afterwards.
        let local = vec![0.5f32; 2 * c + 1];
        let mut gathered = vec![0.0f32; (2 * c + 1) * collective.world_size()];
        let comm = collective.communicator();
        let t_gather = time(&mut || comm.all_gather_into(&local[..], &mut gathered[..]));
        // The same layer's local training forward: record, submit, wait.
        let shape = TensorShape::channels_first(&[8, c, 16, 16])?;
        let mut l = BatchNormLayer::batch_norm_2d(&gpu.device, BatchNormConfig::new(c), "bench")?;
        let x = upload_f32(&gpu.device, "x", &normal(&mut rng, shape.numel(), 0.0, 1.0))?;
        let y = upload_f32(&gpu.device, "y", &vec![0.0; shape.numel()])?;
        let t_local = time(&mut || {
            let mut e = gpu.device.create_command_encoder(&Default::default());
            l.forward(&mut e, &shape, x.slice(..), y.slice(..)).unwrap();
            gpu.queue.submit([e.finish()]);
            gpu.device
                .poll(wgpu::PollType::wait_indefinitely())
                .unwrap();
        });
        if rank == 0 {
            println!(
                "| {c} | {:.1} us | {:.1} us | {:.1} us | {:.1} us |",
                1e6 * t_stats,
                1e6 * t_sums,
                1e6 * t_gather,
                1e6 * t_local
            );
        }
    }
    Ok(())
}

fn main() -> Result<(), Error> {
    let universe = mpi::initialize().ok_or("MPI could not be initialized")?;
    let world = universe.world();
    let gpu = HeadlessGpu::open()?;
    if world.rank() == 0 {
        println!("{} ranks; rank 0 adapter: {}", world.size(), gpu.describe());
    }
    if std::env::args().any(|a| a == "--bench") {
        return bench(&world, &gpu);
    }
    let ok = check(&world, &gpu)?;
    let mut all_ok = 0i32;
    world.all_reduce_into(
        &(ok as i32),
        &mut all_ok,
        mpi::collective::SystemOperation::sum(),
    );
    if all_ok != world.size() {
        if world.rank() == 0 {
            eprintln!("synchronized batch norm: a check failed (see the ranks' lines)");
        }
        std::process::exit(1);
    }
    if world.rank() == 0 {
        println!("synchronized batch norm over MPI: every check passed");
    }
    Ok(())
}
