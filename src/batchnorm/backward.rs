//! The dispatches of a backward: whole, or in the two parts of a synchronized batch norm
//! (the per-channel sums of the local batch, and dx from the sums over every device).

use super::*;

/// Which part of a backward to record.
#[derive(Clone, Copy, Debug)]
pub(super) enum Part<'a> {
    /// The whole backward.
    Whole,
    /// Only the per-channel sums of dy and dy * (x - mean), into this slice (C records of
    /// 4 f32, two-float sums (hi, hi, lo, lo) as `sums_add` in common.wgsl keeps them).
    Reduce(wgpu::BufferSlice<'a>),
    /// dx and the gradients of gamma and beta from given sums (as `Reduce` writes them,
    /// merged over devices) and the number of values per channel they sum.
    Apply {
        sums: wgpu::BufferSlice<'a>,
        count: u32,
    },
}

impl BatchNorm {
    /// Records the first part of a synchronized batch norm's backward (PyTorch's
    /// `batch_norm_backward_reduce`): per channel, `sum(dy)` and `sum(dy * (x - mean))` over
    /// this device's batch, into `sums` (C records of 4 f32, see
    /// [`BackwardSums`](crate::BackwardSums)), differentiating a training forward with
    /// `bufs.saved` as its statistics. An empty batch writes zero sums. Add every device's
    /// sums in rank order ([`BackwardSums::add`](crate::BackwardSums::add) on the host) and
    /// give the total to [`backward_apply`](Self::backward_apply).
    pub fn backward_reduce(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        shape: &TensorShape,
        bufs: &ReduceBuffers<'_>,
        sums: wgpu::BufferSlice<'_>,
    ) -> Result<()> {
        // The reduce part binds neither dx nor the gradients: `dx` is a placeholder here.
        let whole = BackwardBuffers {
            x: bufs.x,
            dy: bufs.dy,
            dx: bufs.x,
            y: bufs.y,
            dresidual: None,
            gamma: None,
            grads: None,
            saved: Some(bufs.saved),
            running: None,
        };
        let steps = scoped(&self.device, || {
            self.backward_steps(Mode::Train, shape, &whole, Part::Reduce(sums))
        })?;
        self.record(encoder, "backward-reduce", &steps)
    }

    /// Records the second part of a synchronized batch norm's backward (PyTorch's
    /// `batch_norm_backward_elemt`): this device's `dx` (and, with a fused epilogue's
    /// residual, `dresidual`) from `sums`, the sums of [`backward_reduce`](Self::backward_reduce)
    /// over every device, and `count`, the values per channel over every device; and, when
    /// affine, the gradients of gamma and beta of the whole batch (the same on every device).
    /// `bufs` as for [`backward`](Self::backward) in [`Mode::Train`]. `count` must be at
    /// least this device's values per channel and fit 32 bits.
    pub fn backward_apply(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        shape: &TensorShape,
        bufs: &BackwardBuffers<'_>,
        sums: wgpu::BufferSlice<'_>,
        count: u64,
    ) -> Result<()> {
        let local = shape.per_channel() as u64;
        let count = u32::try_from(count).ok().filter(|&c| u64::from(c) >= local).ok_or_else(|| {
            BatchNormError::InvalidConfig(format!(
                "backward_apply: the total count per channel {count} must be at least this device's {local} and below 2^32"
            ))
        })?;
        let steps = scoped(&self.device, || {
            self.backward_steps(Mode::Train, shape, bufs, Part::Apply { sums, count })
        })?;
        self.record(encoder, "backward-apply", &steps)
    }

    /// The dispatches of a backward or of one of its parts, every bind group created.
    pub(super) fn backward_steps(
        &self,
        mode: Mode,
        shape: &TensorShape,
        bufs: &BackwardBuffers<'_>,
        part: Part<'_>,
    ) -> Result<Vec<Step<'_>>> {
        let whole = matches!(part, Part::Whole);
        // A device of a synchronized batch norm may hold one value per channel (or none):
        // the statistics are those of every device.
        if whole {
            self.check_shape(shape, mode)?;
        } else {
            self.check_channels(shape)?;
        }
        let cfg = &self.config;
        let batch = cfg.uses_batch_stats(mode);
        let reduce = matches!(part, Part::Reduce(_));
        if !whole && !batch {
            return Err(BatchNormError::InvalidConfig(
                "the parts of a synchronized backward differentiate a forward with batch statistics (training); this one used running statistics".to_string(),
            ));
        }
        // The reduce part writes only the sums: it reads no gamma and writes no gradients.
        let gamma = presence("gamma", bufs.gamma, cfg.affine && !reduce, AFFINE_WHY)?;
        let grads = presence(
            "grads (dgamma, dbeta)",
            bufs.grads,
            cfg.affine && !reduce,
            AFFINE_WHY,
        )?;
        let saved = presence(
            "saved (save_mean, save_invstd)",
            bufs.saved,
            batch,
            "backward reads saved statistics exactly when the forward used batch statistics (training, or eval without tracked running statistics)",
        )?;
        let fused = cfg.epilogue != Epilogue::None;
        let y = presence("y", bufs.y, fused, EPILOGUE_WHY)?;
        let dresidual = presence(
            "dresidual",
            bufs.dresidual,
            cfg.epilogue == Epilogue::AddRelu && !reduce,
            EPILOGUE_WHY,
        )?;
        let running = presence(
            "running (running_mean, running_var)",
            bufs.running,
            !batch,
            "backward reads running statistics exactly when the forward used them (eval with track_running_stats)",
        )?;

        let mut bound = vec![
            Bound::tensor("x", bufs.x, false),
            Bound::tensor("dy", bufs.dy, false),
        ];
        match part {
            Part::Whole => bound.push(Bound::tensor("dx", bufs.dx, true)),
            Part::Reduce(sums) => bound.push(Bound::stats("sums", sums, true)),
            Part::Apply { sums, .. } => {
                bound.push(Bound::tensor("dx", bufs.dx, true));
                bound.push(Bound::stats("sums", sums, false));
            }
        }
        if let Some(y) = y {
            bound.push(Bound::tensor("y", y, false));
        }
        if let Some(dz) = dresidual {
            bound.push(Bound::tensor("dresidual", dz, true));
        }
        if let Some(g) = gamma {
            bound.push(Bound::channel("gamma", g, false));
        }
        if let Some(g) = grads {
            bound.push(Bound::channel("dgamma", g.dgamma, true));
            bound.push(Bound::channel("dbeta", g.dbeta, true));
        }
        let (stat_a, stat_b) = match (saved, running) {
            (Some(s), _) => {
                bound.push(Bound::channel("save_mean", s.mean, false));
                bound.push(Bound::channel("save_invstd", s.invstd, false));
                (s.mean, s.invstd)
            }
            (None, Some(r)) => {
                bound.push(Bound::channel("running_mean", r.mean, false));
                bound.push(Bound::channel("running_var", r.var, false));
                (r.mean, r.var)
            }
            (None, None) => unreachable!("presence checks give saved or running statistics"),
        };
        self.check_bindings(shape, &bound)?;

        let mut flags = 0;
        if cfg.affine && !reduce {
            flags |= FLAG_AFFINE;
        }
        if batch {
            flags |= FLAG_BATCH_STATS;
        }
        flags |= epilogue_flags(cfg.epilogue);
        if grads.is_some_and(|g| g.accumulate) {
            flags |= FLAG_ACCUMULATE_GRADS;
        }
        let plan = self.plan(shape, batch || cfg.affine)?;
        // The running records of a folded plan are read as one partial per channel.
        let one_record = Plan::one_record();
        let global_plan = if plan.fold { &one_record } else { &plan };
        let global = match part {
            Part::Apply { count, .. } => {
                self.params_buffer_counted(shape, &one_record, None, flags, count)?
            }
            _ => self.params_buffer(shape, global_plan, None, flags)?,
        };
        // Workgroups of the passes merging the records per channel that `global` describes.
        let merge_groups = match part {
            Part::Apply { .. } => self.merge_groups(&one_record, shape.channels()),
            _ => self.merge_groups(global_plan, shape.channels()),
        };
        let scratch = self.scratch(shape.channels(), &plan)?;
        let (partials, chan) = (scratch.partials(), scratch.chan());
        let dummy = self.set.dummy.slice(..);
        let gamma = gamma.unwrap_or(dummy);
        let (dgamma, dbeta) = grads.map_or((dummy, dummy), |g| (g.dgamma, g.dbeta));
        let p = &self.set.pipelines;
        let per_channel = shape.channels().div_ceil(WORKGROUP_SIZE as usize);

        let mut steps = Vec::new();
        // The apply part needs the per-channel statistics even for an empty local batch:
        // the gradients of gamma and beta come from the given sums.
        if !plan.pieces.is_empty() || matches!(part, Part::Apply { .. }) {
            let bindings = BackwardPrepBindings {
                stat_a,
                stat_b,
                gamma,
                chan,
            };
            let prep = &p.backward_prep;
            self.dispatch(&mut steps, prep, &global, &bindings.slices(), per_channel);
        }
        // One pass per channel (sums, gradients, dx) on the one-pass paths (`KernelPath`):
        // see `backward_fused.wgsl` and `backward_thin.wgsl`.
        if let Some((kernel, piece, groups)) = plan
            .one_pass(&p.backward_fused, &p.backward_thin, shape.channels())
            .filter(|_| whole)
        {
            let params = self.params_buffer(shape, &plan, Some(piece), flags)?;
            let bindings = BackwardOnePassBindings {
                x: piece.of(bufs.x),
                dy: piece.of(bufs.dy),
                chan,
                dgamma,
                dbeta,
                dx: piece.of(bufs.dx),
                y: y.map_or(dummy, |y| piece.of(y)),
                dz: dresidual.map_or(dummy, |dz| piece.of(dz)),
            };
            self.dispatch(&mut steps, kernel, &params, &bindings.slices(), groups);
            return Ok(steps);
        }
        let mut sums = partials;
        let local_pieces = if let Part::Apply { .. } = part {
            &[][..]
        } else {
            &plan.pieces[..]
        };
        for (i, piece) in local_pieces
            .iter()
            .enumerate()
            .filter(|(_, pc)| pc.chunks > 0)
        {
            let params = self.params_buffer(shape, &plan, Some(piece), flags)?;
            let groups = plan.partial_groups(shape.channels(), piece);
            let bindings = BackwardPartialBindings {
                x: piece.of(bufs.x),
                dy: piece.of(bufs.dy),
                chan,
                partials,
                y: y.map_or(dummy, |y| piece.of(y)),
            };
            let partial = if plan.lanes > 0 {
                &p.backward_partial_rows
            } else {
                &p.backward_partial
            };
            let kernel = partial.get(plan.specialization());
            self.dispatch(&mut steps, kernel, &params, &bindings.slices(), groups);
            // A folded plan: this piece's sums into the running records right away.
            if plan.fold {
                let merge = &p.backward_merge;
                sums = self.fold_piece(&mut steps, merge, shape, &plan, &scratch, i)?;
            }
        }
        match part {
            // The local sums, merged over the slots (or the folded record) in fixed order.
            Part::Reduce(out) => {
                let bindings = MergeBindings {
                    a: sums,
                    b: dummy,
                    out,
                };
                let merge = &p.backward_merge;
                self.dispatch(&mut steps, merge, &global, &bindings.slices(), merge_groups);
                return Ok(steps);
            }
            Part::Apply { sums: given, .. } => sums = given,
            Part::Whole => {}
        }
        if !plan.pieces.is_empty() || cfg.affine || !whole {
            let bindings = BackwardFinalizeBindings {
                partials: sums,
                chan,
                dgamma,
                dbeta,
            };
            let kernel = &p.backward_finalize;
            self.dispatch(
                &mut steps,
                kernel,
                &global,
                &bindings.slices(),
                merge_groups,
            );
        }
        for piece in &plan.pieces {
            let params = self.params_buffer(shape, &plan, Some(piece), flags)?;
            let bindings = BackwardDxBindings {
                x: piece.of(bufs.x),
                dy: piece.of(bufs.dy),
                chan,
                dx: piece.of(bufs.dx),
                y: y.map_or(dummy, |y| piece.of(y)),
                dz: dresidual.map_or(dummy, |dz| piece.of(dz)),
            };
            self.elementwise(
                &mut steps,
                (
                    &p.backward_dx,
                    p.backward_dx_vec4.get(Specialization::of_flags(flags)),
                ),
                shape,
                piece,
                &params,
                (&bindings.slices(), &bindings.tensors()),
            );
        }
        Ok(steps)
    }
}
