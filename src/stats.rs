//! Mergeable per-channel statistics: (count, mean, M2) that a statistics-only pass produces,
//! that merge across micro-batches or devices with Chan's formula (on the GPU with
//! [`BatchNorm::merge_statistics`](crate::BatchNorm::merge_statistics), here on the host),
//! and that [`BatchNorm::forward_with_statistics`](crate::BatchNorm::forward_with_statistics)
//! normalizes with. They are the basis of synchronized batch norm and of exact population
//! statistics over many batches.

use crate::error::{BatchNormError, Result};
use crate::shape::TensorShape;

/// Per-channel count, mean and M2 (sum of squared deviations from the mean), in f64.
///
/// On the GPU the same statistics are C records of 4 f32: `(count, mean - shift, variance,
/// shift)`, with the biased variance `M2 / count` (which, unlike M2, cannot overflow f32
/// while the variance is finite) and `shift` the mean rounded to f32, so that
/// `shift + (mean - shift)` carries the mean in two floats; [`ChannelStats::from_gpu`] and
/// [`ChannelStats::to_gpu`] convert.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelStats {
    /// Values per channel.
    pub count: Vec<f64>,
    /// Mean per channel.
    pub mean: Vec<f64>,
    /// Sum of squared deviations from the mean, per channel.
    pub m2: Vec<f64>,
}

impl ChannelStats {
    /// Exact statistics of a host tensor (two passes in f64).
    pub fn of(shape: &TensorShape, x: &[f32]) -> Self {
        let n = shape.per_channel();
        let (mut count, mut mean, mut m2) = (Vec::new(), Vec::new(), Vec::new());
        for c in 0..shape.channels() {
            let values = (0..n).map(|k| f64::from(x[shape.index(c, k)]));
            let m = if n == 0 {
                0.0
            } else {
                values.clone().sum::<f64>() / n as f64
            };
            count.push(n as f64);
            mean.push(m);
            m2.push(values.map(|v| (v - m) * (v - m)).sum());
        }
        Self { count, mean, m2 }
    }

    /// Reads GPU records `(count, mean - shift, variance, shift)`, 4 f32 per channel.
    pub fn from_gpu(records: &[f32]) -> Result<Self> {
        if !records.len().is_multiple_of(4) {
            return Err(BatchNormError::HostLength {
                name: "statistics records",
                expected: records.len() / 4 * 4,
                got: records.len(),
            });
        }
        let r = records.chunks_exact(4);
        Ok(Self {
            count: r.clone().map(|q| f64::from(q[0])).collect(),
            mean: r
                .clone()
                .map(|q| f64::from(q[3]) + f64::from(q[1]))
                .collect(),
            m2: r.map(|q| f64::from(q[0]) * f64::from(q[2])).collect(),
        })
    }

    /// GPU records `(count, mean - shift, variance, shift)` with `shift` the mean rounded to
    /// f32 (variance 0 for an empty channel).
    pub fn to_gpu(&self) -> Vec<f32> {
        (0..self.count.len())
            .flat_map(|c| {
                let shift = self.mean[c] as f32;
                let rel = (self.mean[c] - f64::from(shift)) as f32;
                let var = if self.count[c] > 0.0 {
                    self.m2[c] / self.count[c]
                } else {
                    0.0
                };
                [self.count[c] as f32, rel, var as f32, shift]
            })
            .collect()
    }

    /// Chan's merge, channel by channel: the statistics of both sets of values together.
    pub fn merge(&self, other: &Self) -> Result<Self> {
        if other.count.len() != self.count.len() {
            return Err(BatchNormError::ChannelMismatch {
                expected: self.count.len(),
                got: other.count.len(),
            });
        }
        let mut out = self.clone();
        for c in 0..self.count.len() {
            let (na, nb) = (self.count[c], other.count[c]);
            if nb == 0.0 {
                continue;
            }
            if na == 0.0 {
                out.count[c] = nb;
                out.mean[c] = other.mean[c];
                out.m2[c] = other.m2[c];
                continue;
            }
            let n = na + nb;
            let d = other.mean[c] - self.mean[c];
            out.count[c] = n;
            out.mean[c] = self.mean[c] + d * nb / n;
            out.m2[c] = self.m2[c] + other.m2[c] + d * d * na * nb / n;
        }
        Ok(out)
    }

    /// Biased variance `M2 / count` per channel, as normalization uses.
    pub fn variance(&self) -> Vec<f64> {
        self.m2
            .iter()
            .zip(&self.count)
            .map(|(m2, n)| m2 / n)
            .collect()
    }

    /// Unbiased variance `M2 / (count - 1)` per channel: with statistics merged over many
    /// batches, the exact population estimate (unlike an average of per-batch variances).
    pub fn unbiased_variance(&self) -> Vec<f64> {
        self.m2
            .iter()
            .zip(&self.count)
            .map(|(m2, n)| m2 / (n - 1.0))
            .collect()
    }
}
