//! The dispatches of a backward.

use super::*;

impl BatchNorm {
    /// The dispatches of a backward, every bind group created.
    pub(super) fn backward_steps(
        &self,
        mode: Mode,
        shape: &TensorShape,
        bufs: &BackwardBuffers<'_>,
    ) -> Result<Vec<Step<'_>>> {
        self.check_shape(shape, mode)?;
        let cfg = &self.config;
        let batch = cfg.uses_batch_stats(mode);
        let gamma = presence("gamma", bufs.gamma, cfg.affine, AFFINE_WHY)?;
        let grads = presence("grads (dgamma, dbeta)", bufs.grads, cfg.affine, AFFINE_WHY)?;
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
            cfg.epilogue == Epilogue::AddRelu,
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
            Bound::tensor("dx", bufs.dx, true),
        ];
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
        if cfg.affine {
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
        let global = self.params_buffer(shape, global_plan, None, flags)?;
        let scratch = self.scratch(shape.channels(), &plan)?;
        let (partials, chan) = (scratch.partials(), scratch.chan());
        let dummy = self.set.dummy.slice(..);
        let gamma = gamma.unwrap_or(dummy);
        let (dgamma, dbeta) = grads.map_or((dummy, dummy), |g| (g.dgamma, g.dbeta));
        let p = &self.set.pipelines;
        let per_channel = shape.channels().div_ceil(WORKGROUP_SIZE as usize);

        let mut steps = Vec::new();
        if !plan.pieces.is_empty() {
            let bindings = BackwardPrepBindings {
                stat_a,
                stat_b,
                gamma,
                chan,
            };
            let prep = &p.backward_prep;
            self.dispatch(&mut steps, prep, &global, &bindings.slices(), per_channel);
        }
        // One pass per channel (sums, gradients, dx) where each channel is one chunk of one
        // piece and not the innermost axis; see `backward_fused.wgsl`.
        if let Some((kernel, piece, groups)) =
            plan.one_pass(&p.backward_fused, &p.backward_thin, shape.channels())
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
        for (i, piece) in plan
            .pieces
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
            let kernel = if plan.lanes > 0 {
                &p.backward_partial_rows
            } else {
                &p.backward_partial
            };
            self.dispatch(&mut steps, kernel, &params, &bindings.slices(), groups);
            // A folded plan: this piece's sums into the running records right away.
            if plan.fold {
                let merge = &p.backward_merge;
                sums = self.fold_piece(&mut steps, merge, shape, &plan, &scratch, i)?;
            }
        }
        if !plan.pieces.is_empty() || cfg.affine {
            let bindings = BackwardFinalizeBindings {
                partials: sums,
                chan,
                dgamma,
                dbeta,
            };
            let kernel = &p.backward_finalize;
            self.dispatch(&mut steps, kernel, &global, &bindings.slices(), per_channel);
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
            let groups = self.elementwise_groups(piece.len);
            let kernel = &p.backward_dx;
            self.dispatch(&mut steps, kernel, &params, &bindings.slices(), groups);
        }
        Ok(steps)
    }
}
