//! A forward's normalize pass, piece by piece: the scalar or vec4 kernel with the
//! coefficients a finalize pass stored in chan, or, in eval with running statistics, the
//! vec4 kernel that computes them from the running statistics itself
//! (`normalize_vec4_eval`), which makes the eval forward one dispatch.

use super::*;

/// Where a normalize pass takes each channel's coefficients (shift, scale, bias).
#[derive(Clone, Copy)]
pub(super) enum Coefficients<'a> {
    /// Stored in chan (`coeffs_chan.wgsl`): by the statistics' finalize, by
    /// `eval_coeffs`, or from given statistics.
    Stored(wgpu::BufferSlice<'a>),
    /// Computed from the running statistics and the affine parameters (or the unused
    /// binding's buffer without them) by `normalize_vec4_eval` (`coeffs_running.wgsl`).
    Running {
        mean: wgpu::BufferSlice<'a>,
        var: wgpu::BufferSlice<'a>,
        gamma: wgpu::BufferSlice<'a>,
        beta: wgpu::BufferSlice<'a>,
    },
}

/// The tensors of a normalize pass: x, y and the residual (or the unused binding's buffer).
#[derive(Clone, Copy)]
pub(super) struct NormalizeTensors<'a> {
    pub x: wgpu::BufferSlice<'a>,
    pub y: wgpu::BufferSlice<'a>,
    pub z: Option<wgpu::BufferSlice<'a>>,
    pub dummy: wgpu::BufferSlice<'a>,
}

impl<'a> NormalizeTensors<'a> {
    /// x, y and z cut to `piece`, in binding order.
    fn of(&self, piece: &Piece) -> [wgpu::BufferSlice<'a>; 3] {
        let z = self.z.map_or(self.dummy, |z| piece.of(z));
        [piece.of(self.x), piece.of(self.y), z]
    }
}

impl BatchNorm {
    /// Whether an eval forward with running statistics computes its coefficients in the
    /// normalize pass: the device has `normalize_vec4_eval` (seven storage buffers per
    /// stage), every piece takes the vec4 pass with invocations that keep their channels,
    /// and none computes a channel's coefficients more than
    /// [`Tuning::one_pass_eval_recomputes`] times.
    pub(super) fn one_pass_eval(
        &self,
        shape: &TensorShape,
        plan: &Plan,
        t: NormalizeTensors,
    ) -> bool {
        let most = self.tuning.one_pass_eval_recomputes;
        self.set.pipelines.normalize_vec4_eval.is_some()
            && !plan.pieces.is_empty()
            && plan.pieces.iter().all(|piece| {
                self.vec4_recomputes(shape, piece, &t.of(piece))
                    .is_some_and(|n| n <= most)
            })
    }

    /// The normalize pass over every piece of the tensors, with `coefficients`
    /// (`Running` only where [`BatchNorm::one_pass_eval`] holds).
    pub(super) fn record_normalize<'k>(
        &'k self,
        steps: &mut Vec<Step<'k>>,
        (shape, plan, flags): (&TensorShape, &Plan, u32),
        tensors: NormalizeTensors,
        coefficients: Coefficients,
    ) -> Result<()> {
        let p = &self.set.pipelines;
        let special = Specialization::of_flags(flags);
        for piece in &plan.pieces {
            let params = self.params_buffer(shape, plan, Some(piece), flags)?;
            let [x, y, z] = tensors.of(piece);
            match coefficients {
                Coefficients::Stored(chan) => {
                    let bindings = NormalizeBindings { x, y, z, chan };
                    self.elementwise(
                        steps,
                        (&p.normalize, p.normalize_vec4.get(special)),
                        shape,
                        piece,
                        &params,
                        (&bindings.slices(), &bindings.tensors()),
                    );
                }
                Coefficients::Running {
                    mean,
                    var,
                    gamma,
                    beta,
                } => {
                    let kernels = p.normalize_vec4_eval.as_ref();
                    let kernel = kernels.expect("one_pass_eval checked it").get(special);
                    let bindings = NormalizeEvalBindings {
                        x,
                        y,
                        z,
                        running_mean: mean,
                        running_var: var,
                        gamma,
                        beta,
                    };
                    let groups = self.vec4_groups(shape, piece);
                    self.dispatch(steps, kernel, &params, &bindings.slices(), groups);
                }
            }
        }
        Ok(())
    }
}
