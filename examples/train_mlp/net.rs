//! The network `Linear(11, 64) -> [BN] -> ReLU -> Linear(64, 64) -> [BN] -> ReLU ->
//! Linear(64, 6)`, its parameters and optimizer state on the device, and the recording of a
//! training step and an evaluation. Batch norm is the crate's `BatchNormLayer` with the fused
//! ReLU; without batch norm the example's ReLU kernel takes its place.

use crate::data::{CLASSES, FEATURES};
use crate::kernels::{Dispatch, Hyper, Kernels, Step, filled, zeros};
use wgpu::BufferUsages as U;
use wgpu_batchnorm::{
    BatchNormConfig, BatchNormLayer, Epilogue, GradMode, Result, TensorShape, read_f32,
};

/// Units of each hidden layer.
pub const HIDDEN: usize = 64;
/// SGD momentum, as commonly used with batch norm.
pub const MOMENTUM: f32 = 0.9;

/// One linear layer's parameters and gradients (its SGD velocities live in the optimizer's
/// bindings).
pub struct Linear {
    pub inputs: usize,
    pub outputs: usize,
    pub w: wgpu::Buffer,
    pub b: wgpu::Buffer,
    dw: wgpu::Buffer,
    db: wgpu::Buffer,
}

impl Linear {
    fn new(device: &wgpu::Device, name: &str, inputs: usize, init: &(Vec<f32>, Vec<f32>)) -> Self {
        let outputs = init.1.len();
        assert_eq!(init.0.len(), inputs * outputs);
        Self {
            inputs,
            outputs,
            w: filled(device, &format!("{name}.weight"), &init.0, U::STORAGE),
            b: filled(device, &format!("{name}.bias"), &init.1, U::STORAGE),
            dw: zeros(device, &format!("{name}.weight.grad"), inputs * outputs),
            db: zeros(device, &format!("{name}.bias.grad"), outputs),
        }
    }
}

/// The network on the device.
pub struct Net {
    pub linears: [Linear; 3],
    /// The two batch-norm layers (fused ReLU), or `None` for the plain network.
    pub bns: Option<[BatchNormLayer; 2]>,
    sgd: Vec<Dispatch>,
}

impl Net {
    /// A network with the given initial linear weights (three `(weight, bias)` pairs), with
    /// or without batch norm, trained by SGD at learning rate `lr`.
    pub fn new(
        device: &wgpu::Device,
        kernels: &Kernels,
        init: &[(Vec<f32>, Vec<f32>); 3],
        batch_norm: bool,
        lr: f32,
    ) -> Result<Self> {
        let linears = [
            Linear::new(device, "fc1", FEATURES, &init[0]),
            Linear::new(device, "fc2", HIDDEN, &init[1]),
            Linear::new(device, "fc3", HIDDEN, &init[2]),
        ];
        let bns = if batch_norm {
            let config = BatchNormConfig::new(HIDDEN).epilogue(Epilogue::Relu);
            let layer = |name: &str| {
                BatchNormLayer::batch_norm_1d(device, config, name)
                    .map(|l| l.with_grad_mode(GradMode::Overwrite))
            };
            Some([layer("bn1")?, layer("bn2")?])
        } else {
            None
        };
        let hyper = Hyper {
            lr,
            momentum: MOMENTUM,
            pad: [0.0; 2],
        };
        let hyper = filled(device, "sgd", &[hyper], U::UNIFORM);
        let mut sgd = Vec::new();
        let mut add = |p: &wgpu::Buffer, g: &wgpu::Buffer, len: usize| {
            let v = zeros(device, "velocity", len);
            let resources = [hyper.as_entire_binding(), p.as_entire_binding()];
            let resources = [
                &resources[..],
                &[g.as_entire_binding(), v.as_entire_binding()],
            ];
            sgd.push(Dispatch::new(
                device,
                &kernels.sgd,
                &resources.concat(),
                len as u32,
            ));
        };
        for l in &linears {
            add(&l.w, &l.dw, l.inputs * l.outputs);
            add(&l.b, &l.db, l.outputs);
        }
        for bn in bns.iter().flatten() {
            let (gamma, beta) = bn.weight_bias().expect("affine layers");
            let (dgamma, dbeta) = bn.grads().expect("affine layers");
            add(gamma, dgamma, HIDDEN);
            add(beta, dbeta, HIDDEN);
        }
        Ok(Self { linears, bns, sgd })
    }

    /// Puts the batch-norm layers in training or eval mode.
    pub fn set_training(&mut self, training: bool) {
        for bn in self.bns.iter_mut().flatten() {
            if training { bn.train() } else { bn.eval() }
        }
    }

    /// Records the forward of `batch` (gathered at the offset in its step) and the loss.
    pub fn record_forward(&mut self, encoder: &mut wgpu::CommandEncoder, b: &Batch) -> Result<()> {
        compute(encoder, &[&b.gather, &b.linear[0]]);
        for layer in 0..2 {
            match &mut self.bns {
                Some(bns) => {
                    let (z, h) = (b.z[layer].slice(..), b.h[layer].slice(..));
                    bns[layer].forward(encoder, &b.hidden_shape, z, h)?;
                }
                None => compute(encoder, &[&b.relu_forward[layer]]),
            }
            compute(encoder, &[&b.linear[layer + 1]]);
        }
        compute(encoder, &[&b.loss_rows, &b.loss_reduce]);
        Ok(())
    }

    /// Records the backward of the last forward of `batch` and the SGD update.
    pub fn record_backward_and_step(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        b: &Batch,
    ) -> Result<()> {
        for layer in (0..2).rev() {
            compute(encoder, &[&b.params_grad[layer + 1], &b.input_grad[layer]]);
            match &mut self.bns {
                Some(bns) => {
                    let (z, h) = (b.z[layer].slice(..), b.h[layer].slice(..));
                    let (dh, dz) = (b.dh[layer].slice(..), b.dz[layer].slice(..));
                    bns[layer].backward(encoder, z, h, dh, dz)?;
                }
                None => compute(encoder, &[&b.relu_backward[layer]]),
            }
        }
        let mut last: Vec<&Dispatch> = vec![&b.params_grad[0]];
        last.extend(&self.sgd);
        compute(encoder, &last);
        Ok(())
    }
}

/// Records `dispatches` in one compute pass.
fn compute(encoder: &mut wgpu::CommandEncoder, dispatches: &[&Dispatch]) {
    let mut pass = encoder.begin_compute_pass(&Default::default());
    for d in dispatches {
        d.record(&mut pass);
    }
}

/// The activations, gradients and records of batches of one size, bound to one network's
/// parameters and one order buffer.
pub struct Batch {
    pub rows: usize,
    pub hidden_shape: TensorShape,
    step: wgpu::Buffer,
    /// Each hidden layer's linear output (the batch norm's input) and its output after ReLU.
    pub z: [wgpu::Buffer; 2],
    pub h: [wgpu::Buffer; 2],
    dz: [wgpu::Buffer; 2],
    dh: [wgpu::Buffer; 2],
    /// Per slot: the mean loss and the number of correct predictions.
    pub losses: wgpu::Buffer,
    pub correct: wgpu::Buffer,
    /// Each row's predicted-class-is-label flag (of the last forward).
    pub row_correct: wgpu::Buffer,
    gather: Dispatch,
    linear: [Dispatch; 3],
    relu_forward: [Dispatch; 2],
    loss_rows: Dispatch,
    loss_reduce: Dispatch,
    params_grad: [Dispatch; 3],
    input_grad: [Dispatch; 2],
    relu_backward: [Dispatch; 2],
}

/// The data set on the device: features (row-major) and labels.
pub struct DeviceData {
    pub features: wgpu::Buffer,
    pub labels: wgpu::Buffer,
}

impl Batch {
    /// Buffers and bindings for batches of `rows` rows drawn through `order` from `data`,
    /// with `slots` loss records.
    pub fn new(
        device: &wgpu::Device,
        kernels: &Kernels,
        net: &Net,
        data: &DeviceData,
        order: &wgpu::Buffer,
        rows: usize,
        slots: usize,
    ) -> Result<Self> {
        let n = rows;
        let uniform = |d: crate::kernels::Dims| filled(device, "dims", &[d], U::UNIFORM);
        let dims = |inputs: usize, outputs: usize| crate::kernels::Dims {
            rows: n as u32,
            inputs: inputs as u32,
            outputs: outputs as u32,
            pad: 0,
        };
        let step = filled(
            device,
            "step",
            &[Step {
                offset: 0,
                slot: 0,
                pad: [0; 2],
            }],
            U::UNIFORM,
        );
        let x = zeros(device, "x", n * FEATURES);
        let labels = zeros(device, "labels", n);
        let z = [
            zeros(device, "z1", n * HIDDEN),
            zeros(device, "z2", n * HIDDEN),
        ];
        let h = [
            zeros(device, "h1", n * HIDDEN),
            zeros(device, "h2", n * HIDDEN),
        ];
        let dz = [
            zeros(device, "dz1", n * HIDDEN),
            zeros(device, "dz2", n * HIDDEN),
        ];
        let dh = [
            zeros(device, "dh1", n * HIDDEN),
            zeros(device, "dh2", n * HIDDEN),
        ];
        let logits = zeros(device, "logits", n * CLASSES);
        let dlogits = zeros(device, "dlogits", n * CLASSES);
        let (row_loss, row_correct) = (
            zeros(device, "row_loss", n),
            zeros(device, "row_correct", n),
        );
        let (losses, correct) = (
            zeros(device, "losses", slots),
            zeros(device, "correct", slots),
        );
        let bind = |pipeline: &wgpu::ComputePipeline, res: &[&wgpu::Buffer], count: usize| {
            let res: Vec<_> = res.iter().map(|b| b.as_entire_binding()).collect();
            Dispatch::new(device, pipeline, &res, count as u32)
        };
        let gather_dims = uniform(dims(FEATURES, 0));
        let gather = bind(
            &kernels.gather,
            &[
                &gather_dims,
                &step,
                order,
                &data.features,
                &data.labels,
                &x,
                &labels,
            ],
            n * FEATURES,
        );
        // Each linear layer: its input, output, and their gradients.
        let [l1, l2, l3] = &net.linears;
        let io: [(
            &Linear,
            &wgpu::Buffer,
            &wgpu::Buffer,
            &wgpu::Buffer,
            Option<&wgpu::Buffer>,
        ); 3] = [
            (l1, &x, &z[0], &dz[0], None),
            (l2, &h[0], &z[1], &dz[1], Some(&dh[0])),
            (l3, &h[1], &logits, &dlogits, Some(&dh[1])),
        ];
        let ldims: Vec<_> = io
            .iter()
            .map(|(l, ..)| uniform(dims(l.inputs, l.outputs)))
            .collect();
        let linear = std::array::from_fn(|i| {
            let (l, input, output, ..) = io[i];
            bind(
                &kernels.linear_forward,
                &[&ldims[i], input, &l.w, &l.b, output],
                n * l.outputs,
            )
        });
        let params_grad = std::array::from_fn(|i| {
            let (l, input, _, doutput, _) = io[i];
            let count = l.outputs * (l.inputs + 1);
            bind(
                &kernels.linear_backward_params,
                &[&ldims[i], doutput, input, &l.dw, &l.db],
                count,
            )
        });
        let input_grad = std::array::from_fn(|i| {
            let (l, _, _, doutput, dinput) = io[i + 1];
            let dinput = dinput.expect("hidden layers have an input gradient");
            bind(
                &kernels.linear_backward_input,
                &[&ldims[i + 1], doutput, &l.w, dinput],
                n * l.inputs,
            )
        });
        let hidden_dims = uniform(dims(HIDDEN, HIDDEN));
        let relu_forward = std::array::from_fn(|i| {
            bind(
                &kernels.relu_forward,
                &[&hidden_dims, &z[i], &h[i]],
                n * HIDDEN,
            )
        });
        let relu_backward = std::array::from_fn(|i| {
            bind(
                &kernels.relu_backward,
                &[&hidden_dims, &h[i], &dh[i], &dz[i]],
                n * HIDDEN,
            )
        });
        let loss_dims = uniform(dims(HIDDEN, CLASSES));
        let loss_rows = bind(
            &kernels.cross_entropy,
            &[
                &loss_dims,
                &logits,
                &labels,
                &dlogits,
                &row_loss,
                &row_correct,
            ],
            n,
        );
        let loss_reduce = bind(
            &kernels.loss_reduce,
            &[
                &loss_dims,
                &step,
                &row_loss,
                &row_correct,
                &losses,
                &correct,
            ],
            1,
        );
        Ok(Self {
            rows,
            hidden_shape: TensorShape::channels_first(&[n, HIDDEN])?,
            step,
            z,
            h,
            dz,
            dh,
            losses,
            correct,
            row_correct,
            gather,
            linear,
            relu_forward,
            loss_rows,
            loss_reduce,
            params_grad,
            input_grad,
            relu_backward,
        })
    }

    /// Sets where the next submission's batch starts in the order buffer and which loss
    /// slot it writes (takes effect at the queue's next submission).
    pub fn set_step(&self, queue: &wgpu::Queue, offset: usize, slot: usize) {
        let step = Step {
            offset: offset as u32,
            slot: slot as u32,
            pad: [0; 2],
        };
        queue.write_buffer(&self.step, 0, bytemuck::bytes_of(&step));
    }

    /// The first `slots` mean losses and correct counts (blocks).
    pub fn read_records(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        slots: usize,
    ) -> Result<(Vec<f32>, Vec<u32>)> {
        let losses = read_f32(device, queue, self.losses.slice(..4 * slots as u64))?;
        let correct = read_f32(device, queue, self.correct.slice(..4 * slots as u64))?;
        Ok((losses, correct.iter().map(|c| c.to_bits()).collect()))
    }
}
