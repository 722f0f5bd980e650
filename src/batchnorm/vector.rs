//! Passes that read four elements at a time: when a piece may take the vec4 elementwise
//! kernels (`normalize_vec4.wgsl`, `backward_dx_vec4.wgsl`) and their grid, and when the row
//! partial passes may read vec4s of four channels (`*_rows_vec4.wgsl`).

use super::*;

/// Channels per block of the vec4 row partial passes, fewest and most: 32 channels of f32
/// are one 128-byte line per row (8 invocations of a row); 256 are 64 invocations per row,
/// 4 rows per workgroup.
pub(crate) const VEC4_ROW_LANES: (u32, u32) = (32, 256);

/// Whether the row partial passes over `shape`, in pieces of `max_len` elements, may read
/// vec4s of four consecutive channels: the channel is the innermost axis, C is a multiple
/// of 4, every piece is whole rows (one piece, or pieces a multiple of C long), and every
/// binding offset is a multiple of 16 bytes (the device's storage offset alignment, and
/// each piece's start, a multiple of C elements).
pub(crate) fn vec4_rows(shape: &TensorShape, max_len: u64, limits: &wgpu::Limits) -> bool {
    let channels = shape.channels() as u64;
    shape.outer_inner().1 == 1
        && channels > 0
        && channels.is_multiple_of(4)
        && (shape.numel() as u64 <= max_len || max_len.is_multiple_of(channels))
        && limits.min_storage_buffer_offset_alignment >= 16
}

/// Whether the elementwise pass over `piece` of a tensor of `shape`, whose bound slices
/// are `slices` (the tensors the pass reads and writes, before they are cut to the piece),
/// may take the vec4 kernels: every vec4 of the piece holds four elements of one channel
/// (inner a multiple of 4) or of four consecutive channels (inner = 1 and C a multiple of
/// 4: channels-last and (N, C)), the piece is whole vec4s from a vec4 boundary, and every
/// bound slice of it starts at a multiple of the vec4's size. Else the scalar kernels run.
pub(crate) fn vec4_piece(
    shape: &TensorShape,
    piece: &Piece,
    slices: &[Option<wgpu::BufferSlice<'_>>],
) -> bool {
    let (_, inner) = shape.outer_inner();
    let grouped = inner.is_multiple_of(4) || (inner == 1 && shape.channels().is_multiple_of(4));
    let vec_bytes = 4 * piece.size;
    grouped
        && piece.base.is_multiple_of(4)
        && piece.len.is_multiple_of(4)
        // The bind group layouts ask for a whole vec4<f32>.
        && piece.len * piece.size >= 16
        && slices
            .iter()
            .flatten()
            .all(|s| (s.offset() + piece.base * piece.size).is_multiple_of(vec_bytes))
}

impl BatchNorm {
    /// Workgroups of a vec4 elementwise pass over `piece`: a few vec4s per invocation
    /// ([`Tuning::vec4_per_invocation`]), and, for inner = 1, at least one invocation for
    /// each four channels (the kernels keep an invocation's channels for its whole loop).
    pub(super) fn vec4_groups(&self, shape: &TensorShape, piece: &Piece) -> usize {
        let wg = WORKGROUP_SIZE as usize;
        let per = self.tuning.vec4_per_invocation.max(1);
        let by_size = (piece.len as usize / 4).div_ceil(wg * per);
        let quads = if shape.outer_inner().1 == 1 {
            (shape.channels() / 4).div_ceil(wg)
        } else {
            0
        };
        let max = self.limits.max_compute_workgroups_per_dimension as usize;
        by_size.min(max).max(quads).max(1)
    }

    /// The elementwise pass over `piece`: `vec4` with `vec4_bindings` where
    /// [`vec4_piece`] allows it, else `scalar` over `bindings` with a grid of one element
    /// per invocation.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn elementwise<'k>(
        &self,
        steps: &mut Vec<Step<'k>>,
        (scalar, vec4): (&'k Kernel, &'k Kernel),
        shape: &TensorShape,
        piece: &Piece,
        params: &wgpu::Buffer,
        whole: &[Option<wgpu::BufferSlice<'_>>],
        bindings: &[wgpu::BufferSlice<'_>],
    ) {
        if vec4_piece(shape, piece, whole) {
            let groups = self.vec4_groups(shape, piece);
            self.dispatch(steps, vec4, params, bindings, groups);
        } else {
            let groups = self.elementwise_groups(piece.len);
            self.dispatch(steps, scalar, params, bindings, groups);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vec4 row passes: channels-last (or (N, C)) with C a multiple of 4 and pieces of
    /// whole rows; blocks from 256 channels down to 32 as filling the GPU needs.
    #[test]
    fn vec4_rows_need_whole_rows_of_quads() {
        let limits = wgpu::Limits::default();
        let nhwc = |dims: &[usize]| TensorShape::channels_last(dims).unwrap();
        let big = u64::MAX;
        assert!(vec4_rows(&nhwc(&[32, 112, 112, 64]), big, &limits));
        assert!(vec4_rows(
            &TensorShape::channels_first(&[4096, 4096]).unwrap(),
            big,
            &limits
        ));
        assert!(!vec4_rows(&nhwc(&[4, 8, 8, 6]), big, &limits));
        assert!(!vec4_rows(
            &TensorShape::channels_first(&[8, 64, 7, 7]).unwrap(),
            big,
            &limits
        ));
        // Pieces of 1,024 values: whole rows of 16 channels, not of 12.
        assert!(vec4_rows(&nhwc(&[4, 8, 8, 16]), 1024, &limits));
        assert!(!vec4_rows(&nhwc(&[3, 7, 5, 12]), 1024, &limits));
        let fine = wgpu::Limits {
            min_storage_buffer_offset_alignment: 4,
            ..limits
        };
        assert!(!vec4_rows(&nhwc(&[32, 112, 112, 64]), big, &fine));
        let gpu = Tuning::GPU.target_workgroups;
        let lanes = |dims: &[usize]| row_lanes_within(&nhwc(dims), gpu, VEC4_ROW_LANES, 4);
        // 64 channels: two blocks of 32 (blocks of 64 would leave at most 256 workgroups).
        assert_eq!(lanes(&[32, 112, 112, 64]), 32);
        // 2048 channels: 8 blocks of 256 times 242 chunks.
        assert_eq!(lanes(&[256, 7, 7, 2048]), 256);
        // Fewer channels than the narrowest block: one block of C rounded up.
        assert_eq!(lanes(&[100, 12]), 16);
    }
}
