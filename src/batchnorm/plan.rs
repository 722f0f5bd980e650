//! The plan of a call: pieces of the tensor that fit one binding, chunks of each
//! channel for the partial passes, their records, and row blocks for channel-innermost
//! tensors; which kernels run follows from it (`path.rs`).

use super::*;

/// At most this many partials per channel, merged sequentially by one invocation.
pub(super) const MAX_CHUNKS: usize = 256;
/// Each invocation of a partial pass handles at least this many elements.
pub(super) const MIN_ELEMENTS_PER_INVOCATION: usize = 4;

/// Fewest channels per workgroup of the `*_rows` partial passes (unless C is smaller): a
/// row of 8 f32 is one 32-byte memory sector, all of it used.
pub(crate) const MIN_LANES: u32 = 8;
/// Most channels per workgroup of the `*_rows` partial passes. Wider blocks read longer runs
/// and need fewer merge steps, but leave fewer workgroups (a 64-channel tensor in blocks of
/// 64 is one block, so at most `MAX_CHUNKS` workgroups).
pub(crate) const MAX_LANES: u32 = 64;

/// Channels per workgroup of the `*_rows` partial passes, used where a channel's elements
/// are C apart (inner = 1: channels-last, and (N, C)); 0 (the per-channel passes) otherwise.
/// The widest power of two from [`MAX_LANES`] down to [`MIN_LANES`] (or C rounded up to a
/// power of two, if smaller) whose plan still has as many workgroups as the adapter wants
/// (`target` workgroups, see [`Tuning`], or all the tensor's size allows).
pub(crate) fn row_lanes(shape: &TensorShape, target: usize) -> u32 {
    if shape.outer_inner().1 != 1 {
        return 0;
    }
    let channels = shape.channels();
    let count = shape.per_channel().max(1);
    let wg = WORKGROUP_SIZE as usize;
    let wanted = target.min(shape.numel().div_ceil(wg * MIN_ELEMENTS_PER_INVOCATION));
    let widest = (channels.next_power_of_two() as u32).min(MAX_LANES);
    let mut lanes = widest;
    while lanes > MIN_LANES {
        let blocks = channels.div_ceil(lanes as usize);
        let (chunks, _) = plan_chunks(count, blocks, wg / lanes as usize, target);
        if blocks * chunks as usize >= wanted {
            break;
        }
        lanes /= 2;
    }
    lanes
}

/// How a channel's `count` elements are split for the partial passes: `chunks` runs of
/// `chunk_len`, the last possibly shorter. `units` workgroup tasks cover the channels for
/// each chunk (C for the per-channel passes, C / lanes for the row passes), and `threads`
/// invocations share one channel's chunk (the workgroup, or its rows); `chunk_len` is a
/// multiple of `threads`. Aims at `target` workgroups in all ([`Tuning`]).
pub(crate) fn plan_chunks(count: usize, units: usize, threads: usize, target: usize) -> (u32, u32) {
    plan_chunks_of(count, units, threads, target, MIN_ELEMENTS_PER_INVOCATION)
}

/// `plan_chunks` with at least `least` elements per invocation (where the tensor has them).
fn plan_chunks_of(
    count: usize,
    units: usize,
    threads: usize,
    target: usize,
    least: usize,
) -> (u32, u32) {
    let by_size = count.div_ceil(threads * least.max(1)).max(1);
    let wanted = target.div_ceil(units).max(1);
    let chunks = wanted.min(by_size).min(MAX_CHUNKS);
    let chunk_len = count.div_ceil(chunks).div_ceil(threads) * threads;
    let chunks = count.div_ceil(chunk_len);
    (chunks as u32, chunk_len as u32)
}

/// A flat element range `[base, base + len)` of the tensor, bound on its own, and how the
/// partial passes split each channel's elements within it.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Piece {
    pub(super) base: u64,
    pub(super) len: u64,
    /// Bytes per element.
    pub(super) size: u64,
    pub(super) chunks: u32,
    pub(super) chunk_len: u32,
    pub(super) slot_base: u32,
}

impl Piece {
    /// This piece of a tensor slice.
    /// Interior pieces hold whole 4-byte words (their length is a multiple of the offset
    /// alignment); the last one is rounded up to one, inside the tensor's padded slice.
    pub(super) fn of<'a>(&self, tensor: wgpu::BufferSlice<'a>) -> wgpu::BufferSlice<'a> {
        let start = tensor.offset() + self.base * self.size;
        let bytes = (self.len * self.size).div_ceil(4) * 4;
        tensor.buffer().slice(start..start + bytes)
    }
}

/// `plan_chunks`, with at most `cap` chunks (at least 1) and at least `least` elements per
/// invocation.
pub(crate) fn plan_chunks_within(
    count: usize,
    units: usize,
    threads: usize,
    cap: usize,
    target: usize,
    least: usize,
) -> (u32, u32) {
    let (chunks, chunk_len) = plan_chunks_of(count, units, threads, target, least);
    if chunks as usize <= cap.max(1) {
        return (chunks, chunk_len);
    }
    let chunk_len = count.div_ceil(cap.max(1)).div_ceil(threads) * threads;
    (count.div_ceil(chunk_len) as u32, chunk_len as u32)
}

/// The pieces of one call, and the partial slots per channel over all of them.
pub(super) struct Plan {
    pub(super) pieces: Vec<Piece>,
    /// Partial records per channel, over all pieces: `records` per chunk.
    pub(super) slots: u32,
    /// Partial records per chunk: 1 (the workgroup's invocations merged in shared memory),
    /// or one per invocation that shares the chunk (the workgroup, or its rows), where the
    /// tuning asks for them and each invocation gets enough elements
    /// ([`Tuning::invocation_records`]): a CPU adapter runs a kernel with barriers as
    /// coroutines whose locals live in memory, and the statistics took twice as long.
    pub(super) records: u32,
    /// Channels per workgroup of the row partial passes; 0: the per-channel passes.
    pub(super) lanes: u32,
    /// Whether the pieces share the partial slots, each piece's partials folded into one
    /// record per channel right after its partial pass (`stats_merge.wgsl`,
    /// `backward_merge.wgsl`): where every piece's partials together would not fit one
    /// binding (C x slots records of 16 bytes). Every piece then has `slots` chunks, those
    /// past a channel's elements empty.
    pub(super) fold: bool,
    /// Which kernels run.
    pub(super) path: KernelPath,
}

impl Plan {
    /// The plan of the per-channel kernels reading one statistics record per channel
    /// (given or merged statistics): no pieces, one slot.
    pub(super) fn one_record() -> Self {
        Self {
            pieces: Vec::new(),
            slots: 1,
            records: 1,
            lanes: 0,
            fold: false,
            path: KernelPath::Elementwise,
        }
    }

    /// Workgroups of a pass merging this plan's `slots` records per channel as a tree
    /// (`stats_finalize`, `stats_merge`, `backward_finalize`, `backward_merge`):
    /// `merge_rows()` in row_tree.wgsl (the slots rounded up to a power of two, at most
    /// `width`, [`Tuning::merge_rows_cap`]) invocations per channel.
    pub(super) fn merge_groups(&self, channels: usize, width: u32) -> usize {
        let wg = WORKGROUP_SIZE as usize;
        let rows = (self.slots.max(1) as usize)
            .next_power_of_two()
            .min(width.max(1) as usize);
        channels.div_ceil(wg / rows)
    }

    /// The partial passes' specialization for this plan's records.
    pub(super) fn specialization(&self) -> Specialization {
        Specialization::records(self.records > 1)
    }

    /// Workgroup tasks of a partial pass over `piece`: (channel, chunk) pairs, or (block of
    /// `lanes` channels, chunk) pairs for the row passes.
    pub(super) fn partial_groups(&self, channels: usize, piece: &Piece) -> usize {
        let units = if self.lanes > 0 {
            channels.div_ceil(self.lanes as usize)
        } else {
            channels
        };
        units * piece.chunks as usize
    }
}

impl BatchNorm {
    /// Splits the tensor into pieces that each fit one binding (flat element ranges whose
    /// offsets keep the storage offset alignment), and, when `reduce`, each channel's
    /// elements within each piece into chunks for the partial passes.
    pub(super) fn plan(&self, shape: &TensorShape, reduce: bool) -> Result<Plan> {
        let numel = shape.numel() as u64;
        let size = self.config.dtype.size();
        let align = u64::from(self.limits.min_storage_buffer_offset_alignment).max(4) / size;
        let max_len = self.limits.max_storage_buffer_binding_size / size / align * align;
        if numel > 0 && max_len == 0 {
            return Err(BatchNormError::UnsupportedDevice(format!(
                "max_storage_buffer_binding_size {} is below min_storage_buffer_offset_alignment {}",
                self.limits.max_storage_buffer_binding_size,
                self.limits.min_storage_buffer_offset_alignment
            )));
        }
        let target = self.tuning.target_workgroups;
        let lanes = if reduce { row_lanes(shape, target) } else { 0 };
        let (units, threads) = if lanes > 0 {
            let lanes = lanes as usize;
            (
                shape.channels().div_ceil(lanes),
                WORKGROUP_SIZE as usize / lanes,
            )
        } else {
            (shape.channels(), WORKGROUP_SIZE as usize)
        };
        // Partial records per channel that one binding holds.
        let budget = (self.limits.max_storage_buffer_binding_size / 16)
            .min(self.limits.max_buffer_size / 16)
            / (shape.channels().max(1) as u64);
        // A record per invocation where each gets `least` elements of its channel and one
        // binding holds a chunk's records.
        let least = self.tuning.invocation_records;
        let records = if reduce
            && least > 0
            && shape.per_channel() >= threads * least
            && threads as u64 <= budget
        {
            threads
        } else {
            1
        };
        let least = if records > 1 {
            least
        } else {
            MIN_ELEMENTS_PER_INVOCATION
        };
        let cap = usize::try_from(budget / records as u64).unwrap_or(usize::MAX);
        let mut pieces = Vec::new();
        let mut slots = 0u32;
        let mut base = 0u64;
        while base < numel {
            let len = max_len.min(numel - base);
            let (chunks, chunk_len) = if reduce {
                // Longest run of one channel's elements in the piece.
                let longest = if len == numel {
                    shape.per_channel()
                } else {
                    (0..shape.channels())
                        .map(|c| {
                            shape.first_k_at(c, (base + len) as usize)
                                - shape.first_k_at(c, base as usize)
                        })
                        .max()
                        .unwrap_or(0)
                };
                plan_chunks_within(longest.max(1), units, threads, cap, target, least)
            } else {
                (0, 0)
            };
            pieces.push(Piece {
                base,
                len,
                size,
                chunks,
                chunk_len,
                slot_base: slots,
            });
            slots += chunks * records as u32;
            base += len;
        }
        let fold = u64::from(slots) > budget;
        if fold {
            // One set of slots for all pieces, each piece's chunks padded to it.
            let chunks = pieces.iter().map(|p| p.chunks).max().unwrap_or(0);
            slots = chunks * records as u32;
            for piece in &mut pieces {
                piece.chunks = chunks;
                piece.slot_base = 0;
            }
        }
        // The one-pass kernels merge their workgroup in shared memory.
        let one_pass = self.one_pass && self.set.pipelines.forward_fused.is_some() && records == 1;
        let path = choose_path(shape, &pieces, lanes, reduce, one_pass);
        Ok(Plan {
            pieces,
            slots,
            records: records as u32,
            lanes,
            fold,
            path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `merge_rows()` in row_tree.wgsl, as the grid of the merge passes sees it: the slots
    /// rounded up to a power of two, at most the tuning's width, invocations per channel.
    #[test]
    fn merge_groups_give_each_channel_its_rows() {
        let plan = |slots| Plan {
            slots,
            ..Plan::one_record()
        };
        assert_eq!(plan(1).merge_groups(1000, 256), 4);
        assert_eq!(plan(3).merge_groups(1000, 256), 16);
        assert_eq!(plan(256).merge_groups(1000, 256), 1000);
        assert_eq!(plan(1000).merge_groups(7, 256), 7);
        // A CPU adapter's width: one invocation per channel, whatever the slots.
        assert_eq!(plan(256).merge_groups(1000, 1), 4);
        assert_eq!(plan(256).merge_groups(1000, 16), 63);
    }

    const GPU: usize = Tuning::GPU.target_workgroups;

    #[test]
    fn chunk_plans_cover_every_element_once() {
        let wg = WORKGROUP_SIZE as usize;
        for &(count, units, threads) in &[
            (1, 1, wg),
            (2, 3, wg),
            (255, 1, wg),
            (257, 2, wg),
            (1 << 20, 3, wg),
            (49, 2048, wg),
            (12544, 64, wg),
            (1_000_003, 1, wg),
            (1, 1, 4),
            (4096, 64, 4),
            (802_816, 1, 4),
            (12_544, 32, 4),
            (5, 1, 64),
        ] {
            let (chunks, len) = plan_chunks(count, units, threads, GPU);
            let (chunks, len) = (chunks as usize, len as usize);
            assert!(
                (1..=MAX_CHUNKS).contains(&chunks),
                "{count} {units}: {chunks}"
            );
            assert_eq!(len % threads, 0);
            assert!(chunks * len >= count, "{count}: {chunks} x {len}");
            assert!((chunks - 1) * len < count, "{count}: empty last chunk");
        }
        // A long channel is split across many workgroups.
        assert!(plan_chunks(1 << 20, 1, wg, GPU).0 > 100);
        // Channels-last with 64 channels: eight blocks of 8 lanes (32 rows), 2048 workgroups.
        assert_eq!(8 * plan_chunks(401_408, 8, 32, GPU).0, 2048);
        // A CPU adapter's plan: an eighth of the workgroups.
        assert_eq!(
            8 * plan_chunks(401_408, 8, 32, Tuning::CPU.target_workgroups).0,
            256
        );
    }

    #[test]
    fn row_blocks_are_as_wide_as_filling_the_gpu_allows() {
        let lanes = |dims: &[usize]| row_lanes(&TensorShape::channels_last(dims).unwrap(), GPU);
        // 64 channels: blocks of 64 would leave at most 256 workgroups.
        assert_eq!(lanes(&[32, 112, 112, 64]), MIN_LANES);
        // 2048 channels: 32 blocks of 64 times 64 chunks fill the GPU.
        assert_eq!(lanes(&[256, 7, 7, 2048]), MAX_LANES);
        // Fewer channels than the narrowest block: one block of C rounded up.
        assert_eq!(lanes(&[100, 3]), 4);
        // Small tensors: as many workgroups as their size allows with any width.
        assert_eq!(lanes(&[2048, 512]), MAX_LANES);
        // Channel-first with spatial axes: the per-channel passes.
        let nchw = TensorShape::channels_first(&[2, 3, 4, 5]).unwrap();
        assert_eq!(row_lanes(&nchw, GPU), 0);
        let nc = TensorShape::channels_first(&[4096, 4096]).unwrap();
        assert_eq!(row_lanes(&nc, GPU), MAX_LANES);
        // On a CPU adapter, 64 channels-last channels take blocks of 64 (256 workgroups).
        let cpu = Tuning::CPU.target_workgroups;
        assert_eq!(
            row_lanes(
                &TensorShape::channels_last(&[32, 112, 112, 64]).unwrap(),
                cpu
            ),
            MAX_LANES
        );
    }
}
