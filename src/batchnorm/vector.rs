//! The elementwise passes four elements at a time: when a piece may take the vec4 kernels
//! (`normalize_vec4.wgsl`, `backward_dx_vec4.wgsl`), and their grid.

use super::*;

/// Whether the elementwise pass over `piece` of a tensor of `shape`, with `bindings` (the
/// slices the pass binds: the tensors cut to the piece, and the crate's own scratch and
/// unused-binding buffers, bound from offset 0), may take the vec4 kernels: every vec4 of
/// the piece holds four elements of one channel (inner a multiple of 4) or of four
/// consecutive channels (inner = 1 and C a multiple of 4: channels-last and (N, C)), the
/// piece is whole vec4s from a vec4 boundary, and every binding starts at a multiple of the
/// vec4's size. Else the scalar kernels run.
pub(crate) fn vec4_piece(
    shape: &TensorShape,
    piece: &Piece,
    bindings: &[wgpu::BufferSlice<'_>],
) -> bool {
    let (_, inner) = shape.outer_inner();
    let grouped = inner.is_multiple_of(4) || (inner == 1 && shape.channels().is_multiple_of(4));
    let vec_bytes = 4 * piece.size;
    grouped
        && piece.base.is_multiple_of(4)
        && piece.len.is_multiple_of(4)
        // The bind group layouts ask for a whole vec4<f32>.
        && piece.len * piece.size >= 16
        && bindings
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

    /// The elementwise pass over `piece` with `bindings`: `vec4` where [`vec4_piece`]
    /// allows it, else `scalar` with a grid of one element per invocation.
    pub(super) fn elementwise<'k>(
        &self,
        steps: &mut Vec<Step<'k>>,
        (scalar, vec4): (&'k Kernel, &'k Kernel),
        shape: &TensorShape,
        piece: &Piece,
        params: &wgpu::Buffer,
        bindings: &[wgpu::BufferSlice<'_>],
    ) {
        if vec4_piece(shape, piece, bindings) {
            let groups = self.vec4_groups(shape, piece);
            self.dispatch(steps, vec4, params, bindings, groups);
        } else {
            let groups = self.elementwise_groups(piece.len);
            self.dispatch(steps, scalar, params, bindings, groups);
        }
    }
}
