//! [`Collective`] for several devices in one process: one [`ThreadGroup`] member per thread,
//! exchanging through shared memory.

use super::{Collective, fold_in_rank_order};
use crate::error::{BatchNormError, Result};
use crate::stats::ChannelStats;
use crate::sums::BackwardSums;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// One contribution of a round: statistics or sums, or `None` for a failed rank.
#[derive(Clone)]
enum Item {
    Stats(Option<ChannelStats>),
    Sums(Option<BackwardSums>),
}

struct Round {
    /// Rounds completed so far.
    done: u64,
    /// This round's contributions by rank.
    slots: Vec<Option<Item>>,
    /// The last completed round's contributions.
    last: Arc<Vec<Item>>,
}

struct Shared {
    world: usize,
    timeout: Duration,
    round: Mutex<Round>,
    arrived: Condvar,
}

/// A member of an in-process group of `world` participants, each used by one thread (with
/// its own device or its own share of one). Create the group with [`ThreadGroup::new`] and
/// move one member into each thread.
///
/// A member that does not arrive within the group's timeout (its thread panicked or
/// stopped calling) makes the others return [`BatchNormError::Collective`] instead of
/// waiting forever.
pub struct ThreadGroup {
    rank: usize,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ThreadGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ThreadGroup(rank {} of {})",
            self.rank, self.shared.world
        )
    }
}

impl ThreadGroup {
    /// The `world` members of a new group, rank 0 first, waiting at most 60 s for each
    /// other.
    pub fn new(world: usize) -> Vec<ThreadGroup> {
        Self::with_timeout(world, Duration::from_secs(60))
    }

    /// As [`new`](Self::new), waiting at most `timeout` for the other members in each
    /// exchange.
    pub fn with_timeout(world: usize, timeout: Duration) -> Vec<ThreadGroup> {
        let shared = Arc::new(Shared {
            world,
            timeout,
            round: Mutex::new(Round {
                done: 0,
                slots: vec![None; world],
                last: Arc::new(Vec::new()),
            }),
            arrived: Condvar::new(),
        });
        (0..world)
            .map(|rank| ThreadGroup {
                rank,
                shared: shared.clone(),
            })
            .collect()
    }

    /// Deposits this member's item and returns every member's, by rank, once all arrived.
    fn all_gather(&self, item: Item) -> Result<Arc<Vec<Item>>> {
        let s = &self.shared;
        let mut round = s.round.lock().map_err(|_| poisoned())?;
        if round.slots[self.rank].is_some() {
            return Err(BatchNormError::Collective(format!(
                "rank {} entered an exchange twice before the others arrived",
                self.rank
            )));
        }
        round.slots[self.rank] = Some(item);
        let this_round = round.done;
        if round.slots.iter().all(Option::is_some) {
            let items = round
                .slots
                .iter_mut()
                .map(|i| i.take().expect("all arrived"));
            round.last = Arc::new(items.collect());
            round.done += 1;
            s.arrived.notify_all();
            return Ok(round.last.clone());
        }
        let deadline = Instant::now() + s.timeout;
        while round.done == this_round {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let missing: Vec<usize> =
                    (0..s.world).filter(|&r| round.slots[r].is_none()).collect();
                // Take this member's item back, so that the group is not left half-filled.
                round.slots[self.rank] = None;
                return Err(BatchNormError::Collective(format!(
                    "ranks {missing:?} did not arrive within {:?}",
                    s.timeout
                )));
            }
            round = s
                .arrived
                .wait_timeout(round, left)
                .map_err(|_| poisoned())?
                .0;
        }
        Ok(round.last.clone())
    }
}

/// The error of a lock that a panicking member left poisoned.
fn poisoned() -> BatchNormError {
    BatchNormError::Collective("a member panicked during an exchange".to_string())
}

impl Collective for ThreadGroup {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.shared.world
    }

    fn merge_statistics(
        &self,
        _channels: usize,
        local: Option<&ChannelStats>,
    ) -> Result<ChannelStats> {
        let items = self.all_gather(Item::Stats(local.cloned()))?;
        let gathered: Vec<Option<ChannelStats>> = items
            .iter()
            .map(|i| match i {
                Item::Stats(s) => s.clone(),
                Item::Sums(_) => None,
            })
            .collect();
        fold_in_rank_order(&gathered, |a, b| a.merge(b))
    }

    fn add_sums(&self, _channels: usize, local: Option<&BackwardSums>) -> Result<BackwardSums> {
        let items = self.all_gather(Item::Sums(local.cloned()))?;
        let gathered: Vec<Option<BackwardSums>> = items
            .iter()
            .map(|i| match i {
                Item::Sums(s) => s.clone(),
                Item::Stats(_) => None,
            })
            .collect();
        fold_in_rank_order(&gathered, |a, b| a.add(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(count: f64, mean: f64, m2: f64) -> ChannelStats {
        ChannelStats {
            count: vec![count, 0.0],
            mean: vec![mean, 0.0],
            m2: vec![m2, 0.0],
        }
    }

    #[test]
    fn every_member_gets_the_rank_order_merge() {
        let inputs = [
            stats(3.0, 1.0, 2.0),
            stats(0.0, 0.0, 0.0),
            stats(5.0, -0.3, 7.5),
        ];
        let want = inputs[0]
            .merge(&inputs[1])
            .unwrap()
            .merge(&inputs[2])
            .unwrap();
        let results: Vec<ChannelStats> = std::thread::scope(|s| {
            let handles: Vec<_> = ThreadGroup::new(3)
                .into_iter()
                .zip(&inputs)
                .map(|(m, i)| s.spawn(move || m.merge_statistics(2, Some(i)).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for r in results {
            assert_eq!(r, want);
        }
    }

    #[test]
    fn a_member_that_does_not_arrive_is_an_error_not_a_hang() {
        let mut members = ThreadGroup::with_timeout(2, Duration::from_millis(200));
        let late = members.pop().unwrap();
        let err = members[0]
            .add_sums(2, Some(&BackwardSums::zeros(2)))
            .unwrap_err();
        assert!(
            matches!(&err, BatchNormError::Collective(m) if m.contains("[1]")),
            "{err}"
        );
        // The group is usable again once everyone arrives.
        let sums = std::thread::scope(|s| {
            let a = s.spawn(|| members[0].add_sums(2, Some(&BackwardSums::zeros(2))));
            let b = s.spawn(|| late.add_sums(2, Some(&BackwardSums::zeros(2))));
            (a.join().unwrap(), b.join().unwrap())
        });
        assert_eq!(sums.0.unwrap(), BackwardSums::zeros(2));
        assert_eq!(sums.1.unwrap(), BackwardSums::zeros(2));
    }

    #[test]
    fn a_failed_member_fails_every_member() {
        let results: Vec<Result<BackwardSums>> = std::thread::scope(|s| {
            let handles: Vec<_> = ThreadGroup::new(3)
                .into_iter()
                .map(|m| {
                    s.spawn(move || {
                        let sums = BackwardSums::zeros(1);
                        m.add_sums(1, (m.rank() != 2).then_some(&sums))
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for r in results {
            assert!(matches!(r, Err(BatchNormError::PeerFailed { rank: 2 })));
        }
    }
}
