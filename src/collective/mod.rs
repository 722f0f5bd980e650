//! What synchronized batch norm exchanges between devices, and how: per layer, one exchange
//! of per-channel statistics in the forward and one of per-channel sums in the backward,
//! merged in rank order so that every rank gets the same bits.
//!
//! [`Collective`] is the interface; [`ThreadGroup`] implements it for several devices in one
//! process (threads), and `MpiCollective` (cargo feature `mpi`) over MPI between processes
//! and machines.

use crate::error::{BatchNormError, Result};
use crate::stats::ChannelStats;
use crate::sums::BackwardSums;

#[cfg(feature = "mpi")]
mod mpi;
mod threads;

#[cfg(feature = "mpi")]
pub use self::mpi::MpiCollective;
pub use threads::ThreadGroup;

/// The exchanges of synchronized batch norm. Every rank calls the same methods in the same
/// order (one per layer and pass); each call returns, on every rank, the same result.
///
/// A rank that cannot contribute (its device failed, its input was refused) still takes
/// part, with `None`: every rank then gets [`BatchNormError::PeerFailed`] instead of waiting
/// for it forever.
pub trait Collective {
    /// This participant's rank, `0..world_size()`.
    fn rank(&self) -> usize;
    /// The number of participants.
    fn world_size(&self) -> usize;
    /// Every rank's per-channel statistics (`channels` of them) merged with Chan's formula
    /// in rank order (`((r0 + r1) + r2) + ...`).
    fn merge_statistics(
        &self,
        channels: usize,
        local: Option<&ChannelStats>,
    ) -> Result<ChannelStats>;
    /// Every rank's backward sums (`channels` of them) added in rank order.
    fn add_sums(&self, channels: usize, local: Option<&BackwardSums>) -> Result<BackwardSums>;
}

/// Merges gathered contributions in rank order with `merge`; the first missing one (a
/// failed rank) is the error.
pub(crate) fn fold_in_rank_order<T: Clone>(
    gathered: &[Option<T>],
    merge: impl Fn(&T, &T) -> Result<T>,
) -> Result<T> {
    let mut acc: Option<T> = None;
    for (rank, item) in gathered.iter().enumerate() {
        let item = item.as_ref().ok_or(BatchNormError::PeerFailed { rank })?;
        acc = Some(match acc {
            None => item.clone(),
            Some(a) => merge(&a, item)?,
        });
    }
    acc.ok_or_else(|| BatchNormError::Collective("a collective of no ranks".to_string()))
}
