//! [`Collective`] over MPI (cargo feature `mpi`, with rsmpi): one all-reduce per exchange,
//! whose operation is the merge itself, declared non-commutative so that MPI applies it in
//! rank order. The message is one 24-byte record per channel whatever the number of ranks
//! (PyTorch's SyncBatchNorm all-gathers `world x (2C + 1)` values instead).
//!
//! What MPI allows on failure: a rank whose device or input fails still takes part (its
//! records carry a failure mark that the merge propagates), so every rank returns
//! [`BatchNormError::PeerFailed`]. A rank that dies or stops calling cannot be detected by
//! MPI's collectives: under the default error handler (`MPI_ERRORS_ARE_FATAL`) `mpirun`
//! aborts the whole job when a process exits early; one that hangs leaves the others waiting
//! in the all-reduce (MPI has no timeout on collectives before the fault-tolerance
//! extensions, which Open MPI does not enable by default).

use super::Collective;
use crate::error::{BatchNormError, Result};
use crate::stats::ChannelStats;
use crate::sums::BackwardSums;
use ::mpi::collective::UserOperation;
use ::mpi::traits::*;

/// One channel's record: statistics `(count, mean, M2)` or sums `(sum_dy, sum_dy_xmu, 0)`.
/// A failed rank sends `-(rank + 1)` as the count (statistics) or in the third field
/// (sums), which the merge passes on.
#[derive(Clone, Copy, Debug, Default, Equivalence)]
#[repr(C)]
struct Record {
    a: f64,
    b: f64,
    c: f64,
}

/// The failure mark of a record, if any: the failed rank.
fn failed(mark: f64) -> Option<usize> {
    (mark < 0.0).then(|| (-mark) as usize - 1)
}

/// Chan's merge of `a` (the lower ranks) and `b`, or the lower ranks' failure mark.
fn merge_stats(a: &Record, b: &Record) -> Record {
    if failed(a.a).is_some() {
        return *a;
    }
    if failed(b.a).is_some() || a.a == 0.0 {
        return *b;
    }
    if b.a == 0.0 {
        return *a;
    }
    let n = a.a + b.a;
    let d = b.b - a.b;
    Record {
        a: n,
        b: a.b + d * b.a / n,
        c: a.c + b.c + d * d * a.a * b.a / n,
    }
}

/// The sums of `a` (the lower ranks) and `b`, or the lower ranks' failure mark.
fn add_sums(a: &Record, b: &Record) -> Record {
    if failed(a.c).is_some() {
        return *a;
    }
    if failed(b.c).is_some() {
        return *b;
    }
    Record {
        a: a.a + b.a,
        b: a.b + b.b,
        c: 0.0,
    }
}

/// A rank's side of synchronized batch norm over an MPI communicator (all of its ranks
/// take part). Every rank's layer must have the same number of channels: MPI requires the
/// same message size on every rank.
///
/// ```no_run
/// # #[cfg(feature = "mpi")] {
/// let universe = mpi::initialize().expect("MPI");
/// let collective = wgpu_batchnorm::MpiCollective::new(universe.world());
/// // SyncBatchNormLayer::new(layer, collective)
/// # }
/// ```
pub struct MpiCollective<C: Communicator> {
    comm: C,
}

impl<C: Communicator> std::fmt::Debug for MpiCollective<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "MpiCollective(rank {} of {})",
            self.rank(),
            self.world_size()
        )
    }
}

impl<C: Communicator> MpiCollective<C> {
    /// The collective of `comm`'s ranks.
    pub fn new(comm: C) -> Self {
        Self { comm }
    }

    /// The communicator.
    pub fn communicator(&self) -> &C {
        &self.comm
    }

    /// One all-reduce of `records` with `merge` applied in rank order.
    fn all_reduce(&self, records: &[Record], merge: fn(&Record, &Record) -> Record) -> Vec<Record> {
        let mut out = vec![Record::default(); records.len()];
        let op = UserOperation::new(false, move |invec, inoutvec| {
            let lower: &[Record] = invec.downcast().expect("records");
            let higher: &mut [Record] = inoutvec.downcast().expect("records");
            for (l, h) in lower.iter().zip(higher.iter_mut()) {
                *h = merge(l, h);
            }
        });
        self.comm.all_reduce_into(records, &mut out[..], &op);
        out
    }
}

impl<C: Communicator> Collective for MpiCollective<C> {
    fn rank(&self) -> usize {
        self.comm.rank() as usize
    }

    fn world_size(&self) -> usize {
        self.comm.size() as usize
    }

    fn merge_statistics(
        &self,
        channels: usize,
        local: Option<&ChannelStats>,
    ) -> Result<ChannelStats> {
        let mark = -(self.rank() as f64 + 1.0);
        let records: Vec<Record> = match local {
            Some(s) => (0..s.count.len())
                .map(|c| Record {
                    a: s.count[c],
                    b: s.mean[c],
                    c: s.m2[c],
                })
                .collect(),
            None => vec![
                Record {
                    a: mark,
                    b: 0.0,
                    c: 0.0
                };
                channels
            ],
        };
        let merged = self.all_reduce(&records, merge_stats);
        if let Some(rank) = merged.first().and_then(|r| failed(r.a)) {
            return Err(BatchNormError::PeerFailed { rank });
        }
        Ok(ChannelStats {
            count: merged.iter().map(|r| r.a).collect(),
            mean: merged.iter().map(|r| r.b).collect(),
            m2: merged.iter().map(|r| r.c).collect(),
        })
    }

    fn add_sums(&self, channels: usize, local: Option<&BackwardSums>) -> Result<BackwardSums> {
        let mark = -(self.rank() as f64 + 1.0);
        let records: Vec<Record> = match local {
            Some(s) => s
                .sum_dy
                .iter()
                .zip(&s.sum_dy_xmu)
                .map(|(&a, &b)| Record { a, b, c: 0.0 })
                .collect(),
            None => vec![
                Record {
                    a: 0.0,
                    b: 0.0,
                    c: mark
                };
                channels
            ],
        };
        let merged = self.all_reduce(&records, add_sums);
        if let Some(rank) = merged.first().and_then(|r| failed(r.c)) {
            return Err(BatchNormError::PeerFailed { rank });
        }
        Ok(BackwardSums {
            sum_dy: merged.iter().map(|r| r.a).collect(),
            sum_dy_xmu: merged.iter().map(|r| r.b).collect(),
        })
    }
}
