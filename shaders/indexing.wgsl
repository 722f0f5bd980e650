// Where an invocation's elements lie: flat indices of a channel's elements, walks over them
// without a division per element, and the workgroup tasks of the row and merge passes and
// of the vec4 elementwise passes. Appended to common.wgsl (`COMMON` in src/kernels.rs).

// Flat index (in the whole tensor) of element `k` (0 <= k < count) of channel `c`.
fn elem_index(c: u32, k: u32) -> u32 {
    let o = k / p.inner;
    let i = k - o * p.inner;
    return (o * p.channels + c) * p.inner + i;
}

// The smallest k whose element of channel `c` lies at flat index `e` or later. The flat
// index grows with k, so channel c's elements within [a, b) are k in
// [first_k_at(c, a), first_k_at(c, b)).
fn first_k_at(c: u32, e: u32) -> u32 {
    let row = p.channels * p.inner;
    let o = e / row;
    let rem = e - o * row;
    let cc = rem / p.inner;
    if (cc < c) {
        return o * p.inner;
    }
    if (cc == c) {
        return o * p.inner + (rem - cc * p.inner);
    }
    return (o + 1u) * p.inner;
}

// Elements k, k + step, k + 2 step, ... of one channel, walked without a division per
// element (elem_index divides k by inner): k = o * inner + i, advanced by step =
// step_o * inner + step_i with one carry.
struct Walk {
    o: u32,
    i: u32,
    step_o: u32,
    step_i: u32,
}

fn walk_from(k: u32, step: u32) -> Walk {
    let o = k / p.inner;
    let so = step / p.inner;
    return Walk(o, k - o * p.inner, so, step - so * p.inner);
}

fn walk_next(w: Walk) -> Walk {
    var r = w;
    r.o = r.o + r.step_o;
    r.i = r.i + r.step_i;
    if (r.i >= p.inner) {
        r.i = r.i - p.inner;
        r.o = r.o + 1u;
    }
    return r;
}

// elem_index(c, k) of the walk's current element k.
fn walk_index(w: Walk, c: u32) -> u32 {
    return (w.o * p.channels + c) * p.inner + w.i;
}

// The walk's next four indices, the walk moved past them: for loops that put four loads
// in flight before using them.
fn walk_take4(w: ptr<function, Walk>, c: u32) -> vec4<u32> {
    let i0 = walk_index(*w, c);
    *w = walk_next(*w);
    let i1 = walk_index(*w, c);
    *w = walk_next(*w);
    let i2 = walk_index(*w, c);
    *w = walk_next(*w);
    let i3 = walk_index(*w, c);
    *w = walk_next(*w);
    return vec4<u32>(i0, i1, i2, i3);
}

// Flat indices f, f + step, ... (in the whole tensor) and their channels c = (f / inner) % C,
// walked without a division per element: i = f % inner.
struct FlatWalk {
    i: u32,
    c: u32,
    step_i: u32,
    step_c: u32,
}

fn flat_walk_from(f: u32, step: u32) -> FlatWalk {
    let q = f / p.inner;
    let sq = step / p.inner;
    return FlatWalk(f - q * p.inner, q % p.channels, step - sq * p.inner, sq % p.channels);
}

fn flat_walk_next(w: FlatWalk) -> FlatWalk {
    var r = w;
    r.i = r.i + r.step_i;
    var c = r.c + r.step_c;
    if (r.i >= p.inner) {
        r.i = r.i - p.inner;
        c = c + 1u;
    }
    // c < 2C here: one wrap suffices.
    if (c >= p.channels) {
        c = c - p.channels;
    }
    r.c = c;
    return r;
}

// One workgroup task of the row partial passes (`*_rows.wgsl`), as invocation `lid` sees
// it: task g is (block of p.lanes channels, chunk); the invocation reads channel c of the
// block at rows row, row + rows, ... of the chunk. The merge passes' tasks have the same
// form (`merge_task` in row_tree.wgsl).
struct RowTask {
    c: u32,
    chunk: u32,
    row: u32,
    rows: u32,
}

// Tasks of a row partial pass: blocks of p.lanes channels times chunks.
fn row_tasks() -> u32 {
    return ((p.channels + p.lanes - 1u) / p.lanes) * p.chunks;
}

// Tasks are numbered chunk-major: the blocks of one chunk, which read the same rows (a
// block of 8 channels reads 32 bytes of each row of 256), are neighbouring workgroups and
// run at the same time, so a row's memory lines are fetched once for all its blocks
// rather than once per block (block-major, the order before, ran a row's blocks a whole
// pass apart; BENCHMARKS.md, "Vector passes").
fn row_task(g: u32, lid: u32) -> RowTask {
    let blocks = (p.channels + p.lanes - 1u) / p.lanes;
    let chunk = g / blocks;
    let c = (g - chunk * blocks) * p.lanes + lid % p.lanes;
    return RowTask(c, chunk, lid / p.lanes, WG / p.lanes);
}

// The loop of the vec4 elementwise passes (`*_vec4.wgsl`) over the bound piece's vec4s,
// for `threads` invocations: the stride, the largest multiple of one sample's vec4s
// (C * inner / 4) within `threads`, so that every vec4 an invocation visits holds the same
// channel (inner a multiple of 4) or the same four channels (inner = 1), whose
// coefficients it reads once (`vec4_channel`); 0 where `threads` is less than one sample,
// and the invocations walk the channels instead (`flat_walk_*`). Invocations from the
// stride on visit none. The host dispatches whole samples where the tensor has enough of
// them, and at least one for inner = 1, whose vec4s span four channels and cannot walk
// (`vec4_groups` in src/batchnorm/vector.rs).
fn vec4_sample_stride(threads: u32) -> u32 {
    if (p.inner == 1u) {
        let quads = p.channels / 4u;
        return threads / quads * quads;
    }
    // In whole planes first: C * inner / 4 may not fit in a u32, the result does.
    let plane = p.inner / 4u;
    let samples = threads / plane / p.channels;
    return samples * p.channels * plane;
}

// The channel of invocation t's vec4s (the first of their four for inner = 1), where
// `vec4_sample_stride` is not 0.
fn vec4_channel(t: u32) -> u32 {
    if (p.inner == 1u) {
        return (p.base / 4u + t) % (p.channels / 4u) * 4u;
    }
    return (p.base / 4u + t) / (p.inner / 4u) % p.channels;
}

// Workgroup index over a 2D dispatch (x fastest), so grids may exceed 65535 workgroups.
fn linear_workgroup(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y * nwg.x + wid.x;
}
