// Shared-memory trees over the invocations ("rows") that share a channel, WG / rows
// channels ("lanes") per workgroup, invocation lid = row * lanes + lane: the row partial
// passes (`*_rows.wgsl`, rows = WG / p.lanes) and the passes that merge each channel's
// records (`stats_finalize`, `stats_merge`, `backward_finalize`, `backward_merge`, rows =
// `merge_rows()`). Fixed order, so deterministic. Every invocation of the workgroup must
// call them, with a uniform `lanes` (they hold barriers), and gets its lane's result.

var<workgroup> row_tile: array<vec4<f32>, WG>;

fn welford_rows(lid: u32, lanes: u32, w: Welford) -> Welford {
    row_tile[lid] = welford_pack(w);
    workgroupBarrier();
    let row = lid / lanes;
    for (var s = WG / lanes / 2u; s > 0u; s = s >> 1u) {
        if (row < s) {
            let a = welford_unpack(row_tile[lid]);
            let b = welford_unpack(row_tile[lid + s * lanes]);
            row_tile[lid] = welford_pack(welford_merge(a, b));
        }
        workgroupBarrier();
    }
    let r = welford_unpack(row_tile[lid % lanes]);
    workgroupBarrier();
    return r;
}

fn sums_rows(lid: u32, lanes: u32, v: vec4<f32>) -> vec4<f32> {
    row_tile[lid] = v;
    workgroupBarrier();
    let row = lid / lanes;
    for (var s = WG / lanes / 2u; s > 0u; s = s >> 1u) {
        if (row < s) {
            row_tile[lid] = sums_merge(row_tile[lid], row_tile[lid + s * lanes]);
        }
        workgroupBarrier();
    }
    let r = row_tile[lid % lanes];
    workgroupBarrier();
    return r;
}

// Invocations per channel of the merge passes: the slots rounded up to a power of two, at
// most p.merge_width. On a GPU (width WG) one invocation merging hundreds of records in a
// row took tens of microseconds; on a CPU adapter (width 1) the tree's barriers cost more
// than the chain (BENCHMARKS.md, "the merges as trees"). Host twin: `Plan::merge_groups`.
fn merge_rows() -> u32 {
    if (p.slots <= 1u) {
        return 1u;
    }
    return min(p.merge_width, 1u << (32u - countLeadingZeros(p.slots - 1u)));
}

// Workgroup tasks of a merge pass: blocks of WG / merge_rows() channels.
fn merge_tasks() -> u32 {
    let lanes = WG / merge_rows();
    return (p.channels + lanes - 1u) / lanes;
}

// Task g as invocation `lid` sees it: it merges records row, row + rows, ... of channel c.
fn merge_task(g: u32, lid: u32) -> RowTask {
    let rows = merge_rows();
    let lanes = WG / rows;
    return RowTask(g * lanes + lid % lanes, 0u, lid / lanes, rows);
}
