//! The elementwise passes four elements at a time: when a piece may take the vec4 kernels
//! (`normalize_vec4.wgsl`, `backward_dx_vec4.wgsl`), and their grid.

use super::*;

/// Whether the elementwise pass over `piece` of a tensor of `shape`, with `tensors` (the
/// tensor slices the pass binds, cut to the piece, or an unused binding's buffer from
/// offset 0), may take the vec4 kernels: every vec4 of the piece holds four elements of
/// one channel (inner a multiple of 4) or of four consecutive channels (inner = 1 and C a
/// multiple of 4: channels-last and (N, C)), the piece is whole vec4s from a vec4
/// boundary, and every tensor binding starts at a multiple of the vec4's size (per-channel
/// arrays are bound as in the scalar kernels). Else the scalar kernels run.
pub(crate) fn vec4_piece(
    shape: &TensorShape,
    piece: &Piece,
    tensors: &[wgpu::BufferSlice<'_>],
) -> bool {
    let (_, inner) = shape.outer_inner();
    let grouped = inner.is_multiple_of(4) || (inner == 1 && shape.channels().is_multiple_of(4));
    let vec_bytes = 4 * piece.size;
    grouped
        && piece.base.is_multiple_of(4)
        && piece.len.is_multiple_of(4)
        // The bind group layouts ask for a whole vec4<f32>.
        && piece.len * piece.size >= 16
        && tensors
            .iter()
            .all(|s| s.offset().is_multiple_of(vec_bytes))
}

impl BatchNorm {
    /// Workgroups of a vec4 elementwise pass over `piece`: a few vec4s per invocation
    /// ([`Tuning::vec4_per_invocation`]), in whole samples (C * inner / 4 vec4s) where the
    /// piece has at least one per invocation, so that every invocation keeps its channels
    /// for its whole loop and reads their coefficients once (`vec4_sample_stride` in
    /// indexing.wgsl); for inner = 1, at least one sample (C / 4 invocations), whose four
    /// channels per vec4 the kernels cannot walk.
    pub(super) fn vec4_groups(&self, shape: &TensorShape, piece: &Piece) -> usize {
        let wg = WORKGROUP_SIZE as usize;
        let per = self.tuning.vec4_per_invocation.max(1);
        let (_, inner) = shape.outer_inner();
        let sample = shape.channels() * inner / 4;
        let mut threads = (piece.len as usize / 4).div_ceil(per);
        if threads >= sample {
            threads = threads / sample * sample;
        }
        let max = self.limits.max_compute_workgroups_per_dimension as usize;
        let least = if inner == 1 { sample.div_ceil(wg) } else { 1 };
        threads.div_ceil(wg).min(max).max(least)
    }

    /// How many times per channel the vec4 pass over `piece` computes a channel's
    /// coefficients where each invocation computes those of its channel (or four channels)
    /// once (`normalize_vec4_eval`): the invocations that keep channels (the stride of
    /// `vec4_sample_stride` in indexing.wgsl, for this grid) times the channels each
    /// keeps, over C. `None` where the pass cannot keep its channels: the scalar pass
    /// ([`vec4_piece`] false, with `tensors` as there) or fewer invocations than a sample.
    pub(super) fn vec4_recomputes(
        &self,
        shape: &TensorShape,
        piece: &Piece,
        tensors: &[wgpu::BufferSlice<'_>],
    ) -> Option<usize> {
        if !vec4_piece(shape, piece, tensors) {
            return None;
        }
        let (x, y) = self.grid(self.vec4_groups(shape, piece));
        let threads = x as usize * y as usize * WORKGROUP_SIZE as usize;
        let (_, inner) = shape.outer_inner();
        let c = shape.channels();
        let sample = c * inner / 4;
        let stride = threads / sample * sample;
        // The channels each invocation keeps: four per vec4 for inner = 1, else one.
        let kept = if inner == 1 { 4 } else { 1 };
        (stride > 0).then(|| stride * kept / c)
    }

    /// The elementwise pass over `piece` with `bindings` (in binding order) of which
    /// `tensors` are the tensors: `vec4` where [`vec4_piece`] allows it, else `scalar` with
    /// a grid of one element per invocation.
    pub(super) fn elementwise<'k>(
        &self,
        steps: &mut Vec<Step<'k>>,
        (scalar, vec4): (&'k Kernel, &'k Kernel),
        shape: &TensorShape,
        piece: &Piece,
        params: &wgpu::Buffer,
        (bindings, tensors): (&[wgpu::BufferSlice<'_>], &[wgpu::BufferSlice<'_>]),
    ) {
        if vec4_piece(shape, piece, tensors) {
            let groups = self.vec4_groups(shape, piece);
            self.dispatch(steps, vec4, params, bindings, groups);
        } else {
            let groups = self.elementwise_groups(piece.len);
            self.dispatch(steps, scalar, params, bindings, groups);
        }
    }
}
