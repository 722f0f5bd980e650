//! Tensor shapes and layouts.

use crate::error::{BatchNormError, Result};

/// Where the channel axis sits in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// `(N, C, *spatial)`, PyTorch's default (NCHW for images): BatchNorm1d/2d/3d inputs
    /// `(N, C)`, `(N, C, L)`, `(N, C, H, W)`, `(N, C, D, H, W)`.
    ChannelsFirst,
    /// `(N, *spatial, C)` (NHWC for images), PyTorch's `channels_last` memory format,
    /// TensorFlow's default: `(N, C)`, `(N, L, C)`, `(N, H, W, C)`, `(N, D, H, W, C)`.
    ChannelsLast,
}

impl Layout {
    fn name(self) -> &'static str {
        match self {
            Layout::ChannelsFirst => "channels-first (N, C, *spatial)",
            Layout::ChannelsLast => "channels-last (N, *spatial, C)",
        }
    }
}

/// Largest element count the kernels index (32-bit indices with headroom for the
/// grid-stride loop).
pub const MAX_ELEMENTS: u64 = (1 << 31) - 1;

/// A validated tensor shape: rank 2 to 5, at least one channel, at most [`MAX_ELEMENTS`]
/// elements, dense (row-major in the order the dims are given). The batch and spatial axes
/// may be 0: an empty batch, which PyTorch accepts too; its non-zero axes must still
/// multiply to at most [`MAX_ELEMENTS`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorShape {
    dims: Vec<usize>,
    layout: Layout,
}

impl TensorShape {
    /// A shape in the given layout. `dims` lists the axes in memory order, outermost first:
    /// `[N, C, H, W]` for channels-first, `[N, H, W, C]` for channels-last.
    pub fn new(dims: &[usize], layout: Layout) -> Result<Self> {
        if !(2..=5).contains(&dims.len()) {
            return Err(BatchNormError::InvalidRank {
                layout: layout.name(),
                min: 2,
                max: 5,
                got: dims.len(),
                dims: dims.to_vec(),
            });
        }
        let channel_axis = match layout {
            Layout::ChannelsFirst => 1,
            Layout::ChannelsLast => dims.len() - 1,
        };
        if dims[channel_axis] == 0 {
            return Err(BatchNormError::ZeroSizedAxis {
                axis: channel_axis,
                dims: dims.to_vec(),
            });
        }
        // Every product of axes below (numel, outer, inner, per_channel) is at most the
        // product of the non-zero axes, so bounding it bounds them all, empty tensors too.
        let extent = dims
            .iter()
            .filter(|&&d| d != 0)
            .try_fold(1u64, |acc, &d| acc.checked_mul(u64::try_from(d).ok()?));
        if extent.is_none_or(|e| e > MAX_ELEMENTS) {
            return Err(BatchNormError::TooManyElements {
                dims: dims.to_vec(),
                elements: extent,
                empty: dims.contains(&0),
                max: MAX_ELEMENTS,
            });
        }
        Ok(Self {
            dims: dims.to_vec(),
            layout,
        })
    }

    /// Channel-first shape `(N, C, *spatial)`.
    pub fn channels_first(dims: &[usize]) -> Result<Self> {
        Self::new(dims, Layout::ChannelsFirst)
    }

    /// Channels-last shape `(N, *spatial, C)`.
    pub fn channels_last(dims: &[usize]) -> Result<Self> {
        Self::new(dims, Layout::ChannelsLast)
    }

    /// The axes in memory order.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// The layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Number of channels C.
    pub fn channels(&self) -> usize {
        match self.layout {
            Layout::ChannelsFirst => self.dims[1],
            Layout::ChannelsLast => self.dims[self.dims.len() - 1],
        }
    }

    /// Total number of elements.
    pub fn numel(&self) -> usize {
        self.dims.iter().product()
    }

    /// Elements per channel, `N * prod(spatial)`: the M that statistics average over.
    pub fn per_channel(&self) -> usize {
        self.numel() / self.channels()
    }

    /// The tensor seen as `(outer, C, inner)` in memory: element `(o, c, i)` is at flat index
    /// `(o * C + c) * inner + i`.
    pub fn outer_inner(&self) -> (usize, usize) {
        match self.layout {
            Layout::ChannelsFirst => (self.dims[0], self.dims[2..].iter().product()),
            Layout::ChannelsLast => (self.numel() / self.channels(), 1),
        }
    }

    /// The smallest `k` whose element of channel `c` lies at flat index `e` or later. The
    /// flat index grows with `k`, so channel `c`'s elements within flat indices `[a, b)` are
    /// `k` in `[first_k_at(c, a), first_k_at(c, b))`. Twin: `first_k_at` in
    /// `shaders/indexing.wgsl`.
    pub fn first_k_at(&self, c: usize, e: usize) -> usize {
        let (_, inner) = self.outer_inner();
        let row = self.channels() * inner;
        let (o, rem) = (e / row, e % row);
        let cc = rem / inner;
        match cc.cmp(&c) {
            std::cmp::Ordering::Less => o * inner,
            std::cmp::Ordering::Equal => o * inner + rem % inner,
            std::cmp::Ordering::Greater => (o + 1) * inner,
        }
    }

    /// Flat index of element `k` (0 <= k < per_channel) of channel `c`.
    pub fn index(&self, c: usize, k: usize) -> usize {
        let (_, inner) = self.outer_inner();
        let o = k / inner;
        (o * self.channels() + c) * inner + k % inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `first_k_at` against a brute-force count, for every channel and cut point.
    #[test]
    fn first_k_at_matches_brute_force() {
        for (dims, layout) in [
            (&[3, 4, 5][..], Layout::ChannelsFirst),
            (&[2, 3, 2, 3], Layout::ChannelsFirst),
            (&[4, 3], Layout::ChannelsFirst),
            (&[2, 5, 3], Layout::ChannelsLast),
        ] {
            let shape = TensorShape::new(dims, layout).unwrap();
            for c in 0..shape.channels() {
                for e in 0..=shape.numel() {
                    let brute = (0..shape.per_channel())
                        .find(|&k| shape.index(c, k) >= e)
                        .unwrap_or(shape.per_channel());
                    assert_eq!(shape.first_k_at(c, e), brute, "{dims:?} c {c} e {e}");
                }
            }
        }
    }
}
