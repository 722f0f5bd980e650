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

/// A validated tensor shape: rank 2 to 5, every axis at least 1, at most
/// [`MAX_ELEMENTS`] elements, dense (row-major in the order the dims are given).
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
        if let Some(axis) = dims.iter().position(|&d| d == 0) {
            return Err(BatchNormError::ZeroSizedAxis {
                axis,
                dims: dims.to_vec(),
            });
        }
        let elements = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
            .unwrap_or(u64::MAX);
        if elements > MAX_ELEMENTS {
            return Err(BatchNormError::TooManyElements {
                elements,
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

    /// Flat index of element `k` (0 <= k < per_channel) of channel `c`.
    pub fn index(&self, c: usize, k: usize) -> usize {
        let (_, inner) = self.outer_inner();
        let o = k / inner;
        (o * self.channels() + c) * inner + k % inner
    }
}
