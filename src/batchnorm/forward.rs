//! The dispatches of a training or eval forward (and of `forward_with_statistics`).

use super::*;

impl BatchNorm {
    /// The statistics partial pass over every piece of `x`, into the scratch partials; for
    /// a folded plan, each piece's partials merged right after into the running records
    /// (`stats_merge.wgsl`). Returns the records to merge next: the partials (`plan.slots`
    /// per channel), or the last running records (one per channel) of a folded plan.
    pub(super) fn record_stats_partials<'k, 's>(
        &'k self,
        steps: &mut Vec<Step<'k>>,
        shape: &TensorShape,
        plan: &Plan,
        flags: u32,
        x: wgpu::BufferSlice<'_>,
        scratch: &'s ScratchBuffers,
    ) -> Result<wgpu::BufferSlice<'s>> {
        let partials = scratch.partials();
        let mut merged = partials;
        for (i, piece) in plan.pieces.iter().enumerate() {
            let params = self.params_buffer(shape, plan, Some(piece), flags)?;
            let groups = plan.partial_groups(shape.channels(), piece);
            let partial = if plan.lanes > 0 {
                &self.set.pipelines.stats_partial_rows
            } else {
                &self.set.pipelines.stats_partial
            };
            let kernel = partial.get(plan.specialization());
            let bindings = StatsPartialBindings {
                x: piece.of(x),
                partials,
            };
            self.dispatch(steps, kernel, &params, &bindings.slices(), groups);
            if plan.fold {
                let merge = &self.set.pipelines.stats_merge;
                merged = self.fold_piece(steps, merge, shape, plan, scratch, i)?;
            }
        }
        Ok(merged)
    }

    /// The dispatches of a forward (or of `forward_with_statistics` with `given`), every
    /// bind group created: nothing is recorded until all of them exist.
    pub(super) fn forward_steps(
        &self,
        mode: Mode,
        shape: &TensorShape,
        bufs: &ForwardBuffers<'_>,
        given: Option<wgpu::BufferSlice<'_>>,
    ) -> Result<Vec<Step<'_>>> {
        match given {
            None => self.check_shape(shape, mode)?,
            Some(_) => self.check_channels(shape)?,
        }
        let cfg = &self.config;
        let batch = cfg.uses_batch_stats(mode);
        let update = cfg.updates_running_stats(mode);
        let affine = presence("affine (gamma, beta)", bufs.affine, cfg.affine, AFFINE_WHY)?;
        let running = presence(
            "running (running_mean, running_var)",
            bufs.running,
            cfg.track_running_stats,
            RUNNING_WHY,
        )?;
        let saved = presence(
            "saved (save_mean, save_invstd)",
            bufs.saved,
            batch,
            "saved statistics are written exactly when the forward uses batch statistics (training, or eval without tracked running statistics)",
        )?;
        let tracked = match running {
            Some(r) if update => Some(r.num_batches_tracked.ok_or(BatchNormError::MissingBuffer {
                name: "num_batches_tracked",
                why: "a training forward with track_running_stats increments it (and reads it when momentum is None)",
            })?),
            _ => None,
        };
        let residual = presence(
            "residual",
            bufs.residual,
            cfg.epilogue == Epilogue::AddRelu,
            EPILOGUE_WHY,
        )?;
        let skipped = presence(
            "skipped_batches",
            running.and_then(|r| r.skipped_batches),
            update && cfg.skip_non_finite_update,
            "a training forward with track_running_stats and skip_non_finite_update counts skipped batches in it",
        )?;

        let mut bound = vec![
            Bound::tensor("x", bufs.x, false),
            Bound::tensor("y", bufs.y, true),
        ];
        if let Some(z) = residual {
            bound.push(Bound::tensor("residual", z, false));
        }
        if let Some(a) = affine {
            bound.push(Bound::channel("gamma", a.gamma, false));
            bound.push(Bound::channel("beta", a.beta, false));
        }
        if let Some(r) = running {
            bound.push(Bound::channel("running_mean", r.mean, update));
            bound.push(Bound::channel("running_var", r.var, update));
        }
        if let Some(t) = tracked {
            bound.push(Bound::counter64("num_batches_tracked", t));
        }
        if let Some(k) = skipped {
            bound.push(Bound::counter("skipped_batches", k));
        }
        if let Some(s) = saved {
            bound.push(Bound::channel("save_mean", s.mean, true));
            bound.push(Bound::channel("save_invstd", s.invstd, true));
        }
        if let Some(g) = given {
            bound.push(Bound::stats("statistics", g, false));
        }
        self.check_bindings(shape, &bound)?;

        let mut flags = 0;
        if cfg.affine {
            flags |= FLAG_AFFINE;
        }
        if cfg.momentum.is_none() {
            flags |= FLAG_CUMULATIVE;
        }
        if cfg.running_var_convention == VarianceConvention::Biased {
            flags |= FLAG_BIASED_VAR;
        }
        if cfg.skip_non_finite_update {
            flags |= FLAG_SKIP_NON_FINITE;
        }
        flags |= epilogue_flags(cfg.epilogue);
        let plan = self.plan(shape, batch && given.is_none())?;
        let one_record = Plan::one_record();
        // Given statistics, and the running records of a folded plan, are read as one
        // partial record per channel.
        let global_plan = match given {
            None if !plan.fold => &plan,
            _ => &one_record,
        };
        let global = self.params_buffer(shape, global_plan, None, flags)?;
        let scratch = self.scratch(shape.channels(), &plan)?;
        let chan = scratch.chan();
        let dummy = self.set.dummy.slice(..);
        let (gamma, beta) = affine.map_or((dummy, dummy), |a| (a.gamma, a.beta));
        let p = &self.set.pipelines;
        let per_channel = shape.channels().div_ceil(WORKGROUP_SIZE as usize);
        let empty = plan.pieces.is_empty();

        // The running update inside the pass that makes the statistics (the finalize, or
        // the one-pass kernel) where the device has that kernel and nothing needs the
        // separate one: a fixed momentum (no channel reads the count), no skipping of
        // non-finite batches (a decision over every channel first), the batch's own
        // statistics. See `running_stats.wgsl`.
        let running_here = match (running, tracked) {
            (Some(r), Some(t))
                if given.is_none() && flags & (FLAG_CUMULATIVE | FLAG_SKIP_NON_FINITE) == 0 =>
            {
                Some((r, t))
            }
            _ => None,
        };
        let running_in_finalize =
            running_here.and_then(|(r, t)| p.stats_finalize_running.as_ref().map(|k| (k, r, t)));
        // The one-pass kernel that updates the running statistics itself.
        let running_one_pass = running_here.and_then(|(r, t)| {
            let (kernel, _, _) =
                plan.one_pass(&p.forward_fused_running, &p.forward_thin_running, 0)?;
            Some((kernel, r, t))
        });
        let mut running_done = false;
        let tensors = NormalizeTensors {
            x: bufs.x,
            y: bufs.y,
            z: residual,
            dummy,
        };
        // An eval forward with running statistics in one dispatch per piece where the
        // normalize pass computes the coefficients itself (`one_pass_eval`).
        let eval_in_one = match (running, saved) {
            (Some(r), None) if self.one_pass_eval(shape, &plan, tensors) => Some(r),
            _ => None,
        };

        let mut steps = Vec::new();
        // One pass per channel (statistics, coefficients and y) on the one-pass paths
        // (`KernelPath`): see `forward_fused.wgsl` and `forward_thin.wgsl`.
        let fused = match (
            plan.one_pass(&p.forward_fused, &p.forward_thin, shape.channels()),
            saved,
        ) {
            (Some((kernel, piece, groups)), Some(s)) if given.is_none() => {
                Some((kernel, piece, groups, s))
            }
            _ => None,
        };
        match (fused, saved, running) {
            (Some((kernel, piece, groups, s)), _, _) => {
                let params = self.params_buffer(shape, &plan, Some(piece), flags)?;
                let bindings = ForwardOnePassBindings {
                    x: piece.of(bufs.x),
                    gamma,
                    beta,
                    chan,
                    save_mean: s.mean,
                    save_invstd: s.invstd,
                    y: piece.of(bufs.y),
                    z: residual.map_or(dummy, |z| piece.of(z)),
                };
                match running_one_pass {
                    Some((kernel, r, t)) => {
                        let bindings = bindings.with_running(r.mean, r.var, t).slices();
                        self.dispatch(&mut steps, kernel, &params, &bindings, groups);
                        running_done = true;
                    }
                    None => self.dispatch(&mut steps, kernel, &params, &bindings.slices(), groups),
                }
            }
            (None, Some(s), _) if given.is_some() || !empty => {
                let stats = match given {
                    Some(g) => g,
                    None => self
                        .record_stats_partials(&mut steps, shape, &plan, flags, bufs.x, &scratch)?,
                };
                let groups = self.merge_groups(global_plan, shape.channels());
                let bindings = StatsFinalizeBindings {
                    partials: stats,
                    gamma,
                    beta,
                    chan,
                    save_mean: s.mean,
                    save_invstd: s.invstd,
                };
                match running_in_finalize {
                    Some((kernel, r, t)) => {
                        let bindings = bindings.with_running(r.mean, r.var, t).slices();
                        self.dispatch(&mut steps, kernel, &global, &bindings, groups);
                        running_done = true;
                    }
                    None => {
                        let finalize = &p.stats_finalize;
                        self.dispatch(&mut steps, finalize, &global, &bindings.slices(), groups);
                    }
                }
            }
            (None, Some(_), _) => {}
            // Eval with running statistics: the normalize pass computes the coefficients
            // itself, or they are stored first (`eval_coeffs`).
            (None, None, Some(_)) if eval_in_one.is_some() => {}
            (None, None, Some(r)) => {
                let bindings = EvalCoeffsBindings {
                    running_mean: r.mean,
                    running_var: r.var,
                    gamma,
                    beta,
                    chan,
                };
                let coeffs = &p.eval_coeffs;
                self.dispatch(&mut steps, coeffs, &global, &bindings.slices(), per_channel);
            }
            (None, None, None) => {
                unreachable!("presence checks give saved or running statistics")
            }
        }
        if let (Some(r), Some(t), false) = (running, tracked, running_done) {
            // The update skips an empty batch by its count; with given statistics the batch
            // is every device's (their counts per channel are in the records, and a
            // channel of count 0 is skipped there), so this device's own count must not
            // skip it.
            let update = match given {
                Some(_) => &self.params_buffer_counted(shape, global_plan, None, flags, 1)?,
                None => &global,
            };
            let bindings = RunningUpdateBindings {
                chan,
                running_mean: r.mean,
                running_var: r.var,
                num_batches_tracked: t,
                skipped_batches: skipped.unwrap_or(dummy),
            }
            .slices();
            if cfg.skip_non_finite_update {
                // One workgroup decides for the whole batch, updates and counts.
                self.dispatch(&mut steps, &p.running_update, update, &bindings, 1);
            } else {
                // The channels in parallel; the count in the same dispatch, or after it
                // where every channel reads it (the cumulative average; see
                // `running_update.wgsl`).
                self.dispatch(
                    &mut steps,
                    &p.running_update,
                    update,
                    &bindings,
                    per_channel,
                );
                if flags & FLAG_CUMULATIVE != 0 {
                    let count =
                        self.params_buffer(shape, global_plan, None, flags | FLAG_COUNT_ONLY)?;
                    self.dispatch(&mut steps, &p.running_update, &count, &bindings, 1);
                }
            }
        }
        if fused.is_none() {
            let coefficients = match eval_in_one {
                Some(r) => Coefficients::Running {
                    mean: r.mean,
                    var: r.var,
                    gamma,
                    beta,
                },
                None => Coefficients::Stored(chan),
            };
            self.record_normalize(&mut steps, (shape, &plan, flags), tensors, coefficients)?;
        }
        Ok(steps)
    }
}
