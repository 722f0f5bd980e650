//! Training and evaluating one configuration: one submission per step, the step's loss
//! recorded on the device and read once per epoch; per epoch an eval pass over the test set
//! (accuracy, loss, and each hidden layer's pre-activation scale).

use crate::data::{SplitMix64, WineData, linear_init};
use crate::kernels::{Kernels, filled};
use crate::net::{Batch, DeviceData, HIDDEN, Net};
use wgpu::BufferUsages as U;
use wgpu_batchnorm::{HeadlessGpu, PopulationStats, Result, read_f32};

/// Samples per training batch.
pub const BATCH: usize = 64;
/// Training steps per epoch (1,280 / 64).
pub const STEPS_PER_EPOCH: usize = crate::data::TRAIN / BATCH;

/// One configuration: with or without batch norm, and the learning rate.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    pub batch_norm: bool,
    pub lr: f32,
}

impl Config {
    const fn new(batch_norm: bool, lr: f32) -> Self {
        Self { batch_norm, lr }
    }

    /// A short name, as in the CSV files and the PyTorch loss curve (`bn_lr0.1`, `bn_lr1.0`).
    pub fn name(&self) -> String {
        let net = if self.batch_norm { "bn" } else { "plain" };
        format!("{net}_lr{:?}", self.lr)
    }
}

/// The configurations trained, in the order of the tables: without batch norm, then with,
/// each at learning rates 0.01, 0.1 and 1.0.
pub const CONFIGS: [Config; 6] = [
    Config::new(false, 0.01),
    Config::new(false, 0.1),
    Config::new(false, 1.0),
    Config::new(true, 0.01),
    Config::new(true, 0.1),
    Config::new(true, 1.0),
];

/// What one epoch measured.
#[derive(Clone, Debug)]
pub struct Epoch {
    /// Mean of the epoch's step losses.
    pub train_loss: f32,
    /// Eval mode, the whole test set in one batch.
    pub test_loss: f32,
    pub test_accuracy: f64,
    /// Standard deviation, over the test set and the units, of each hidden layer's
    /// pre-activation (ReLU's input) in eval mode.
    pub preactivation_std: [f64; 2],
}

/// The device, the example's kernels and the data on the device, shared by every run.
pub struct Setup<'a> {
    pub gpu: &'a HeadlessGpu,
    pub kernels: Kernels,
    pub data: &'a WineData,
    pub seed: u64,
    device_data: DeviceData,
    test_order: wgpu::Buffer,
}

impl<'a> Setup<'a> {
    pub fn new(gpu: &'a HeadlessGpu, data: &'a WineData, seed: u64) -> Self {
        let device = &gpu.device;
        let device_data = DeviceData {
            features: filled(device, "features", &data.features, U::STORAGE),
            labels: filled(device, "labels", &data.labels, U::STORAGE),
        };
        Self {
            gpu,
            kernels: Kernels::new(device),
            data,
            seed,
            test_order: filled(device, "test order", &data.test, U::STORAGE),
            device_data,
        }
    }

    /// The initial linear weights, the same for every configuration.
    pub fn initial_weights(&self) -> [(Vec<f32>, Vec<f32>); 3] {
        let mut rng = SplitMix64::new(self.seed ^ 0x1A17);
        let fc1 = linear_init(&mut rng, crate::data::FEATURES, HIDDEN);
        let fc2 = linear_init(&mut rng, HIDDEN, HIDDEN);
        let fc3 = linear_init(&mut rng, HIDDEN, crate::data::CLASSES);
        [fc1, fc2, fc3]
    }
}

/// A network in training, with its batches' buffers.
pub struct Run<'s, 'a> {
    setup: &'s Setup<'a>,
    pub net: Net,
    train_order: wgpu::Buffer,
    train: Batch,
    test: Batch,
    epoch: usize,
}

impl<'s, 'a> Run<'s, 'a> {
    pub fn new(setup: &'s Setup<'a>, config: Config) -> Result<Self> {
        let device = &setup.gpu.device;
        let net = Net::new(
            device,
            &setup.kernels,
            &setup.initial_weights(),
            config.batch_norm,
            config.lr,
        )?;
        let train_order = filled(device, "train order", &setup.data.train, U::STORAGE);
        let (k, d) = (&setup.kernels, &setup.device_data);
        let train = Batch::new(device, k, &net, d, &train_order, BATCH, STEPS_PER_EPOCH)?;
        let test_rows = setup.data.test.len();
        let test = Batch::new(device, k, &net, d, &setup.test_order, test_rows, 1)?;
        Ok(Self {
            setup,
            net,
            train_order,
            train,
            test,
            epoch: 0,
        })
    }

    /// Trains one epoch (one submission per step) and returns its step losses.
    pub fn train_epoch(&mut self) -> Result<Vec<f32>> {
        let (device, queue) = (&self.setup.gpu.device, &self.setup.gpu.queue);
        let order = self.setup.data.epoch_order(self.setup.seed, self.epoch);
        queue.write_buffer(&self.train_order, 0, bytemuck::cast_slice(&order));
        for step in 0..STEPS_PER_EPOCH {
            self.train.set_step(queue, step * BATCH, step);
            let mut encoder = device.create_command_encoder(&Default::default());
            self.net.record_forward(&mut encoder, &self.train)?;
            self.net
                .record_backward_and_step(&mut encoder, &self.train)?;
            queue.submit([encoder.finish()]);
        }
        self.epoch += 1;
        Ok(self.train.read_records(device, queue, STEPS_PER_EPOCH)?.0)
    }

    /// Evaluates on the whole test set in eval mode (running statistics): mean loss,
    /// accuracy, and the pre-activation scale of each hidden layer.
    pub fn evaluate(&mut self) -> Result<(f32, f64, [f64; 2])> {
        let (device, queue) = (&self.setup.gpu.device, &self.setup.gpu.queue);
        self.net.set_training(false);
        self.test.set_step(queue, 0, 0);
        let mut encoder = device.create_command_encoder(&Default::default());
        let recorded = self.net.record_forward(&mut encoder, &self.test);
        self.net.set_training(true);
        recorded?;
        queue.submit([encoder.finish()]);
        let (loss, correct) = self.test.read_records(device, queue, 1)?;
        let accuracy = correct[0] as f64 / self.test.rows as f64;
        let mut scale = [0.0; 2];
        for (layer, s) in scale.iter_mut().enumerate() {
            let z = read_f32(device, queue, self.test.z[layer].slice(..))?;
            let pre = match &self.net.bns {
                None => z.iter().map(|&v| v as f64).collect(),
                Some(bns) => {
                    eval_batch_norm(&z, &bns[layer].state(queue)?, bns[layer].config().eps)
                }
            };
            *s = std_dev(&pre);
        }
        Ok((loss[0], accuracy, scale))
    }

    /// Each test sample's prediction is right (1) or wrong (0), from the last `evaluate`.
    pub fn test_hits(&self) -> Result<Vec<u32>> {
        let (device, queue) = (&self.setup.gpu.device, &self.setup.gpu.queue);
        let hits = read_f32(device, queue, self.test.row_correct.slice(..))?;
        Ok(hits.iter().map(|h| h.to_bits()).collect())
    }

    /// Predicts the test set one sample at a time (batches of 1, eval mode, one submission
    /// each) and returns each prediction's hit.
    pub fn predict_one_by_one(&mut self) -> Result<Vec<u32>> {
        let (device, queue) = (&self.setup.gpu.device, &self.setup.gpu.queue);
        let (k, d) = (&self.setup.kernels, &self.setup.device_data);
        let n = self.setup.data.test.len();
        let single = Batch::new(device, k, &self.net, d, &self.setup.test_order, 1, n)?;
        self.net.set_training(false);
        let mut result = Ok(());
        for i in 0..n {
            single.set_step(queue, i, i);
            let mut encoder = device.create_command_encoder(&Default::default());
            result = self.net.record_forward(&mut encoder, &single);
            if result.is_err() {
                break;
            }
            queue.submit([encoder.finish()]);
        }
        self.net.set_training(true);
        result?;
        Ok(single.read_records(device, queue, n)?.1)
    }

    /// Records a training forward on a batch of one sample: the error batch norm gives.
    pub fn train_on_one_sample(&mut self) -> Result<()> {
        let (device, k, d) = (
            &self.setup.gpu.device,
            &self.setup.kernels,
            &self.setup.device_data,
        );
        let single = Batch::new(device, k, &self.net, d, &self.train_order, 1, 1)?;
        let mut encoder = device.create_command_encoder(&Default::default());
        self.net.record_forward(&mut encoder, &single)
    }

    /// Replaces each batch-norm layer's running statistics by the exact statistics of its
    /// input over the whole training set ([`PopulationStats`], one pass per layer in eval
    /// mode, layer by layer, so that each layer sees the input it will see at prediction).
    pub fn apply_population_stats(&mut self) -> Result<()> {
        let (device, queue) = (&self.setup.gpu.device, &self.setup.gpu.queue);
        let order = self.setup.data.epoch_order(self.setup.seed, 0);
        queue.write_buffer(&self.train_order, 0, bytemuck::cast_slice(&order));
        self.net.set_training(false);
        let result = (|| {
            for layer in 0..2 {
                let mut population = PopulationStats::new(bn(&self.net, layer))?;
                for step in 0..STEPS_PER_EPOCH {
                    self.train.set_step(queue, step * BATCH, step);
                    let mut encoder = device.create_command_encoder(&Default::default());
                    self.net.record_forward(&mut encoder, &self.train)?;
                    let (shape, z) = (&self.train.hidden_shape, self.train.z[layer].slice(..));
                    population.add(bn(&self.net, layer), &mut encoder, shape, z)?;
                    queue.submit([encoder.finish()]);
                }
                let bns = self.net.bns.as_mut().expect("a batch-norm network");
                population.apply(&mut bns[layer], queue)?;
            }
            Ok(())
        })();
        self.net.set_training(true);
        result
    }
}

/// A batch-norm network's layer.
fn bn(net: &Net, layer: usize) -> &wgpu_batchnorm::BatchNormLayer {
    &net.bns.as_ref().expect("a batch-norm network")[layer]
}

/// PyTorch's eval-mode batch norm of `z` (rows x HIDDEN) before the ReLU, in f64.
fn eval_batch_norm(z: &[f32], s: &wgpu_batchnorm::LayerState, eps: f32) -> Vec<f64> {
    let get = |v: &Option<Vec<f32>>| v.clone().expect("an affine layer with running statistics");
    let (g, b, m, v) = (
        get(&s.weight),
        get(&s.bias),
        get(&s.running_mean),
        get(&s.running_var),
    );
    z.iter()
        .enumerate()
        .map(|(i, &x)| {
            let c = i % HIDDEN;
            let invstd = 1.0 / (v[c] as f64 + eps as f64).sqrt();
            g[c] as f64 * (x as f64 - m[c] as f64) * invstd + b[c] as f64
        })
        .collect()
}

/// Population standard deviation.
fn std_dev(v: &[f64]) -> f64 {
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
}
