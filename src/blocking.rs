//! A small blocking layer over host slices: upload, record, submit, wait, read back.
//! For examples, tests and quick use; training code should use the recording API.

use crate::batchnorm::{
    AffineGrads, AffineParams, BackwardBuffers, BatchNorm, ForwardBuffers, RunningStats, SavedStats,
};
use crate::buffers::{read_bytes, upload_words};
use crate::config::Mode;
use crate::error::{BatchNormError, Result};
use crate::shape::TensorShape;

/// Running statistics on the host.
#[derive(Clone, Debug, PartialEq)]
pub struct HostRunningStats {
    /// Running mean per channel.
    pub mean: Vec<f32>,
    /// Running unbiased variance per channel.
    pub var: Vec<f32>,
    /// Training forwards seen (PyTorch's int64; does not wrap).
    pub num_batches_tracked: u64,
}

impl HostRunningStats {
    /// PyTorch's initial state: mean 0, variance 1, no batches.
    pub fn new(channels: usize) -> Self {
        Self {
            mean: vec![0.0; channels],
            var: vec![1.0; channels],
            num_batches_tracked: 0,
        }
    }
}

/// Host results of a forward.
#[derive(Clone, Debug, PartialEq)]
pub struct HostForward {
    /// Output.
    pub y: Vec<f32>,
    /// Saved batch mean and invstd, when batch statistics were used.
    pub saved: Option<(Vec<f32>, Vec<f32>)>,
    /// Whether the running-statistics update was skipped for non-finite batch statistics
    /// (only with `config.skip_non_finite_update`).
    pub running_update_skipped: bool,
}

/// Host results of a backward.
#[derive(Clone, Debug, PartialEq)]
pub struct HostBackward {
    /// Gradient with respect to x.
    pub dx: Vec<f32>,
    /// Gradients of gamma and beta, when affine.
    pub dgamma_dbeta: Option<(Vec<f32>, Vec<f32>)>,
}

/// Creates the buffers of one blocking call and reads its outputs back.
struct HostCall<'d> {
    device: &'d wgpu::Device,
}

impl<'d> HostCall<'d> {
    fn new(device: &'d wgpu::Device) -> Self {
        Self { device }
    }

    /// A storage buffer holding `data`, which the call may also update and read back.
    /// Empty data (the tensors of an empty batch, which are not accessed) gets 4 bytes, as
    /// wgpu has no empty buffer slices.
    fn input<T: bytemuck::Pod>(&self, label: &str, data: &[T]) -> Result<wgpu::Buffer> {
        let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
        upload_words(self.device, label, data, usage)
    }

    /// An output buffer of `len` f32, poisoned with NaN so unwritten values show.
    fn output(&self, label: &str, len: usize) -> Result<wgpu::Buffer> {
        self.input(label, &vec![f32::NAN; len])
    }

    /// Submits the recorded work, then reads `buffers` back in order (waiting for both).
    fn finish(
        self,
        queue: &wgpu::Queue,
        encoder: wgpu::CommandEncoder,
        buffers: &[&wgpu::Buffer],
    ) -> Result<Vec<Vec<u8>>> {
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        queue.submit([encoder.finish()]);
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(BatchNormError::Wgpu(e.to_string()));
        }
        let slices: Vec<wgpu::BufferSlice<'_>> = buffers.iter().map(|b| b.slice(..)).collect();
        read_bytes(self.device, queue, &slices)
    }
}

fn check_len<T>(name: &'static str, data: &[T], expected: usize) -> Result<()> {
    if data.len() != expected {
        return Err(BatchNormError::HostLength {
            name,
            expected,
            got: data.len(),
        });
    }
    Ok(())
}

fn to_f32(bytes: &[u8]) -> Vec<f32> {
    bytemuck::pod_collect_to_vec(bytes)
}

impl BatchNorm {
    /// The blocking layer moves f32 host slices.
    fn check_f32_host(&self) -> Result<()> {
        if self.config().dtype != crate::config::DType::F32 {
            return Err(BatchNormError::InvalidConfig(
                "the blocking layer takes f32 host slices; f16 tensors go through the recording API"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Blocking forward on host slices: uploads, records [`BatchNorm::forward`], submits,
    /// waits and reads back. [`Epilogue::AddRelu`](crate::Epilogue::AddRelu) needs a residual
    /// and is served by the recording API only (a `MissingBuffer` error here). `affine` is `(gamma, beta)`; `running` is read in eval and
    /// updated in place by training.
    pub fn forward_host(
        &self,
        queue: &wgpu::Queue,
        mode: Mode,
        shape: &TensorShape,
        x: &[f32],
        affine: Option<(&[f32], &[f32])>,
        running: Option<&mut HostRunningStats>,
    ) -> Result<HostForward> {
        self.check_f32_host()?;
        self.check_shape(shape, mode)?;
        let c = shape.channels();
        check_len("x", x, shape.numel())?;
        if let Some((g, b)) = affine {
            check_len("gamma", g, c)?;
            check_len("beta", b, c)?;
        }
        if let Some(r) = &running {
            check_len("running mean", &r.mean, c)?;
            check_len("running var", &r.var, c)?;
        }
        let device = self.device();
        let call = HostCall::new(device);
        let xb = call.input("x", x)?;
        let yb = call.output("y", x.len())?;
        let affine_b = affine
            .map(|(g, b)| Result::<_>::Ok((call.input("gamma", g)?, call.input("beta", b)?)))
            .transpose()?;
        let running_b = running
            .as_ref()
            .map(|r| {
                Result::<_>::Ok((
                    call.input("running_mean", &r.mean)?,
                    call.input("running_var", &r.var)?,
                    call.input("num_batches_tracked", &[r.num_batches_tracked])?,
                ))
            })
            .transpose()?;
        let counts_skips =
            self.config().updates_running_stats(mode) && self.config().skip_non_finite_update;
        let skipped_b = counts_skips
            .then(|| call.input("skipped_batches", &[0u32]))
            .transpose()?;
        let batch = self.config().uses_batch_stats(mode);
        let saved_b = batch
            .then(|| {
                Result::<_>::Ok((call.output("save_mean", c)?, call.output("save_invstd", c)?))
            })
            .transpose()?;

        let mut encoder = device.create_command_encoder(&Default::default());
        self.forward(
            &mut encoder,
            mode,
            shape,
            &ForwardBuffers {
                x: xb.slice(..),
                y: yb.slice(..),
                residual: None,
                affine: affine_b.as_ref().map(|(g, b)| AffineParams {
                    gamma: g.slice(..),
                    beta: b.slice(..),
                }),
                running: running_b.as_ref().map(|(m, v, t)| RunningStats {
                    mean: m.slice(..),
                    var: v.slice(..),
                    num_batches_tracked: Some(t.slice(..)),
                    skipped_batches: skipped_b.as_ref().map(|k| k.slice(..)),
                }),
                saved: saved_b.as_ref().map(|(m, s)| SavedStats {
                    mean: m.slice(..),
                    invstd: s.slice(..),
                }),
            },
        )?;
        let empty = x.is_empty();
        let mut read = Vec::new();
        if !empty {
            read.push(&yb);
        }
        if let Some((m, s)) = &saved_b {
            read.extend([m, s]);
        }
        if let Some((m, v, t)) = &running_b {
            read.extend([m, v, t]);
        }
        if let Some(k) = &skipped_b {
            read.push(k);
        }
        let mut out = call.finish(queue, encoder, &read)?.into_iter();
        let mut next = || out.next().expect("one readback per buffer");
        let y = if empty { Vec::new() } else { to_f32(&next()) };
        let saved = saved_b.map(|_| (to_f32(&next()), to_f32(&next())));
        if let Some(r) = running {
            r.mean = to_f32(&next());
            r.var = to_f32(&next());
            r.num_batches_tracked = bytemuck::pod_read_unaligned(&next()[..8]);
        }
        let running_update_skipped =
            skipped_b.is_some() && bytemuck::pod_read_unaligned::<u32>(&next()[..4]) != 0;
        Ok(HostForward {
            y,
            saved,
            running_update_skipped,
        })
    }

    /// Blocking backward on host slices. `saved` is `(save_mean, save_invstd)` from the
    /// forward when it used batch statistics; `running` when it used running statistics.
    /// Configurations with a fused epilogue need the forward's output and are served by the
    /// recording API ([`BatchNorm::backward`]) only; here they get a `MissingBuffer` error.
    #[allow(clippy::too_many_arguments)]
    pub fn backward_host(
        &self,
        queue: &wgpu::Queue,
        mode: Mode,
        shape: &TensorShape,
        x: &[f32],
        dy: &[f32],
        gamma: Option<&[f32]>,
        saved: Option<(&[f32], &[f32])>,
        running: Option<&HostRunningStats>,
    ) -> Result<HostBackward> {
        self.check_f32_host()?;
        self.check_shape(shape, mode)?;
        let c = shape.channels();
        check_len("x", x, shape.numel())?;
        check_len("dy", dy, shape.numel())?;
        if let Some(g) = gamma {
            check_len("gamma", g, c)?;
        }
        if let Some((m, s)) = saved {
            check_len("save_mean", m, c)?;
            check_len("save_invstd", s, c)?;
        }
        if let Some(r) = running {
            check_len("running mean", &r.mean, c)?;
            check_len("running var", &r.var, c)?;
        }
        let device = self.device();
        let call = HostCall::new(device);
        let xb = call.input("x", x)?;
        let dyb = call.input("dy", dy)?;
        let dxb = call.output("dx", x.len())?;
        let gamma_b = gamma.map(|g| call.input("gamma", g)).transpose()?;
        let affine = self.config().affine;
        let grads_b = affine
            .then(|| Result::<_>::Ok((call.output("dgamma", c)?, call.output("dbeta", c)?)))
            .transpose()?;
        let saved_b = saved
            .map(|(m, s)| {
                Result::<_>::Ok((call.input("save_mean", m)?, call.input("save_invstd", s)?))
            })
            .transpose()?;
        let running_b = running
            .map(|r| {
                Result::<_>::Ok((
                    call.input("running_mean", &r.mean)?,
                    call.input("running_var", &r.var)?,
                ))
            })
            .transpose()?;

        let mut encoder = device.create_command_encoder(&Default::default());
        self.backward(
            &mut encoder,
            mode,
            shape,
            &BackwardBuffers {
                x: xb.slice(..),
                dy: dyb.slice(..),
                dx: dxb.slice(..),
                y: None,
                dresidual: None,
                gamma: gamma_b.as_ref().map(|g| g.slice(..)),
                grads: grads_b.as_ref().map(|(g, b)| AffineGrads {
                    dgamma: g.slice(..),
                    dbeta: b.slice(..),
                    accumulate: false,
                }),
                saved: saved_b.as_ref().map(|(m, s)| SavedStats {
                    mean: m.slice(..),
                    invstd: s.slice(..),
                }),
                running: running_b.as_ref().map(|(m, v)| RunningStats {
                    mean: m.slice(..),
                    var: v.slice(..),
                    num_batches_tracked: None,
                    skipped_batches: None,
                }),
            },
        )?;
        let empty = x.is_empty();
        let mut read = Vec::new();
        if !empty {
            read.push(&dxb);
        }
        if let Some((g, b)) = &grads_b {
            read.extend([g, b]);
        }
        let mut out = call.finish(queue, encoder, &read)?.into_iter();
        let mut next = || out.next().expect("one readback per buffer");
        let dx = if empty { Vec::new() } else { to_f32(&next()) };
        let dgamma_dbeta = grads_b.map(|_| (to_f32(&next()), to_f32(&next())));
        Ok(HostBackward { dx, dgamma_dbeta })
    }
}
