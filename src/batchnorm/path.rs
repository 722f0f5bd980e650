//! The kernel path of a call, as data: which kernels run, chosen from its plan.

use super::*;

/// Tensors in one piece with at most this many values per channel take the one-pass
/// kernels with an invocation per channel (`forward_thin.wgsl`, `backward_thin.wgsl`)
/// instead of a workgroup per channel: a 256-invocation workgroup and its reduction for a
/// handful of values is the cost that made (1, 10^6, 2) take seconds. Channel-innermost
/// tensors too ((2, 10^6): row blocks of 8 lanes left 6 of every 8 invocations idle).
pub(crate) const THIN_MAX_COUNT: usize = 64;

/// The kernel path of a call, as its plan names it (in the spirit of PyTorch's
/// `batch_norm_choose_impl`): which kernels run, in which order. A pure function of the
/// shape, the mode, the device's limits and whether the one-pass kernels are allowed
/// ([`BatchNorm::forward_path`], [`BatchNorm::backward_path`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KernelPath {
    /// No reduction over the tensor (eval with running statistics, given statistics, or an
    /// eval backward without affine parameters), or an empty tensor: per-channel
    /// coefficients, then one elementwise pass per piece.
    Elementwise,
    /// Channel-first: a partial pass per piece with a workgroup per (channel, chunk)
    /// (`stats_partial.wgsl`, `backward_partial.wgsl`), a per-channel finalize, then the
    /// elementwise pass.
    SplitReduction,
    /// The channel is the innermost axis (channels-last, and (N, C)): partial passes with a
    /// workgroup per (block of channels, chunk), reading rows of consecutive channels
    /// (`*_rows.wgsl`), then as [`KernelPath::SplitReduction`].
    RowBlocks,
    /// Channel-first in one piece, every channel one chunk: one dispatch, a workgroup per
    /// channel reduces it and writes its output (`forward_fused.wgsl`,
    /// `backward_fused.wgsl`).
    OnePassWorkgroup,
    /// A tensor in one piece (any layout) with at most 64 values per channel
    /// (`THIN_MAX_COUNT`): one dispatch, an invocation per channel (`forward_thin.wgsl`,
    /// `backward_thin.wgsl`).
    OnePassInvocation,
}

/// The path of a call whose plan has `pieces` and `lanes` (see [`KernelPath`]); `reduce`
/// says whether the call reduces over the tensor, `one_pass` whether the one-pass kernels
/// may run (the device binds enough storage buffers, and the layer allows them).
pub(crate) fn choose_path(
    shape: &TensorShape,
    pieces: &[Piece],
    lanes: u32,
    reduce: bool,
    one_pass: bool,
) -> KernelPath {
    if !reduce || pieces.is_empty() {
        return KernelPath::Elementwise;
    }
    let thin = shape.per_channel() <= THIN_MAX_COUNT;
    match pieces {
        // Any layout: an invocation per channel reads its few values, neighbouring channels
        // at neighbouring addresses where the channel is the innermost axis.
        [piece] if one_pass && thin && (lanes > 0 || piece.chunks == 1) => {
            KernelPath::OnePassInvocation
        }
        _ if lanes > 0 => KernelPath::RowBlocks,
        [piece] if one_pass && piece.chunks == 1 => KernelPath::OnePassWorkgroup,
        _ => KernelPath::SplitReduction,
    }
}

impl Plan {
    /// The one-pass kernel of a one-pass path (`wide` or `thin`), the tensor's one piece and
    /// the workgroups to dispatch; `None` on the other paths.
    pub(super) fn one_pass<'k>(
        &self,
        wide: &'k Option<Kernel>,
        thin: &'k Option<Kernel>,
        channels: usize,
    ) -> Option<(&'k Kernel, &Piece, usize)> {
        let piece = self.pieces.first()?;
        match self.path {
            KernelPath::OnePassInvocation => Some((
                thin.as_ref()?,
                piece,
                channels.div_ceil(WORKGROUP_SIZE as usize),
            )),
            KernelPath::OnePassWorkgroup => Some((wide.as_ref()?, piece, channels)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The path choice: the one-pass kernels (an invocation per channel up to
    /// `THIN_MAX_COUNT` values, a workgroup above) where a channel-first tensor is one piece
    /// of one chunk per channel and they are allowed; row blocks where lanes are set; the
    /// split reduction for several chunks or pieces; elementwise without a reduction.
    #[test]
    fn paths_are_chosen_by_layout_pieces_chunks_and_values_per_channel() {
        use KernelPath::*;
        let piece = |chunks| Piece {
            len: 1,
            size: 4,
            chunks,
            chunk_len: 1,
            ..Default::default()
        };
        let cf = |dims: &[usize]| TensorShape::channels_first(dims).unwrap();
        let path = |dims: &[usize], pieces: &[Piece], lanes| {
            choose_path(&cf(dims), pieces, lanes, true, true)
        };
        let one = [piece(1)];
        let m = THIN_MAX_COUNT;
        assert_eq!(path(&[1, 1000, 2], &one, 0), OnePassInvocation);
        assert_eq!(path(&[1, 10, m], &one, 0), OnePassInvocation);
        assert_eq!(path(&[2, 10, m / 2], &one, 0), OnePassInvocation);
        assert_eq!(path(&[1, 10, m + 1], &one, 0), OnePassWorkgroup);
        assert_eq!(path(&[4, 3, 9, 11], &one, 0), OnePassWorkgroup);
        let shape = [1, 1000, 2];
        assert_eq!(path(&shape, &[piece(2)], 0), SplitReduction);
        // Channel-innermost: an invocation per channel up to THIN_MAX_COUNT values, in
        // any number of chunks, else row blocks.
        assert_eq!(path(&shape, &one, 8), OnePassInvocation);
        assert_eq!(path(&shape, &[piece(4)], 8), OnePassInvocation);
        let nc = |dims: &[usize], pieces: &[Piece]| {
            choose_path(
                &TensorShape::channels_first(dims).unwrap(),
                pieces,
                8,
                true,
                true,
            )
        };
        assert_eq!(nc(&[m, 1000], &one), OnePassInvocation);
        assert_eq!(nc(&[m + 1, 1000], &one), RowBlocks);
        assert_eq!(nc(&[2, 1000], &[piece(1), piece(1)]), RowBlocks);
        assert_eq!(path(&shape, &[piece(1), piece(1)], 0), SplitReduction);
        assert_eq!(path(&shape, &[], 0), Elementwise);
        // Not allowed, or no reduction.
        assert_eq!(
            choose_path(&cf(&shape), &one, 0, true, false),
            SplitReduction
        );
        assert_eq!(choose_path(&cf(&shape), &one, 0, false, true), Elementwise);
    }
}
