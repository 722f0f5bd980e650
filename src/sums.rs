//! The per-channel sums of a backward's reduce part, as a synchronized batch norm exchanges
//! them between devices: `sum(dy)` and `sum(dy * (x - mean))` of each device's batch, added
//! in a fixed order into the sums over the whole batch that
//! [`BatchNorm::backward_apply`](crate::BatchNorm::backward_apply) takes.

use crate::error::{BatchNormError, Result};

/// Per-channel `sum(dy)` and `sum(dy * (x - mean))`, in f64.
///
/// On the GPU the same sums are C records of 4 f32, each sum in two floats as the kernels
/// accumulate it: `(sum_dy hi, sum_dy_xmu hi, sum_dy lo, sum_dy_xmu lo)`, the sum being
/// `hi + lo`; [`BackwardSums::from_gpu`] and [`BackwardSums::to_gpu`] convert.
#[derive(Clone, Debug, PartialEq)]
pub struct BackwardSums {
    /// `sum(dy)` per channel (PyTorch's `sum_dy`).
    pub sum_dy: Vec<f64>,
    /// `sum(dy * (x - mean))` per channel (PyTorch's `sum_dy_xmu`).
    pub sum_dy_xmu: Vec<f64>,
}

impl BackwardSums {
    /// Zero sums for `channels` channels (a device with an empty batch contributes these).
    pub fn zeros(channels: usize) -> Self {
        Self {
            sum_dy: vec![0.0; channels],
            sum_dy_xmu: vec![0.0; channels],
        }
    }

    /// Reads GPU records (4 f32 per channel, see the type's documentation).
    pub fn from_gpu(records: &[f32]) -> Result<Self> {
        if !records.len().is_multiple_of(4) {
            return Err(BatchNormError::HostLength {
                name: "backward sums records",
                expected: records.len() / 4 * 4,
                got: records.len(),
            });
        }
        let r = records.chunks_exact(4);
        let two = |hi: f32, lo: f32| f64::from(hi) + f64::from(lo);
        Ok(Self {
            sum_dy: r.clone().map(|q| two(q[0], q[2])).collect(),
            sum_dy_xmu: r.map(|q| two(q[1], q[3])).collect(),
        })
    }

    /// The GPU records: each sum rounded to f32 (hi) and its remainder rounded to f32 (lo).
    pub fn to_gpu(&self) -> Vec<f32> {
        let split = |v: f64| {
            let hi = v as f32;
            (hi, (v - f64::from(hi)) as f32)
        };
        self.sum_dy
            .iter()
            .zip(&self.sum_dy_xmu)
            .flat_map(|(&a, &b)| {
                let ((a_hi, a_lo), (b_hi, b_lo)) = (split(a), split(b));
                [a_hi, b_hi, a_lo, b_lo]
            })
            .collect()
    }

    /// The sums of both, channel by channel (`self` first: add devices in rank order so that
    /// every device gets the same bits).
    pub fn add(&self, other: &Self) -> Result<Self> {
        if other.sum_dy.len() != self.sum_dy.len() {
            return Err(BatchNormError::ChannelMismatch {
                expected: self.sum_dy.len(),
                got: other.sum_dy.len(),
            });
        }
        let add = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x + y).collect();
        Ok(Self {
            sum_dy: add(&self.sum_dy, &other.sum_dy),
            sum_dy_xmu: add(&self.sum_dy_xmu, &other.sum_dy_xmu),
        })
    }
}
