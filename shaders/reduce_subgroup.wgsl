// Workgroup reductions with subgroup operations (`Features::SUBGROUP`): a butterfly of
// shuffles within each subgroup, then one short sequential merge of the per-subgroup
// results in fixed order. Merges are the two-float ones of common.wgsl (`welford_merge`,
// `sums_merge`), which `subgroupAdd` cannot give.
// Twin: `reduce_workgroup.wgsl` (same functions and signatures). The result is valid in
// invocation 0. Call from uniform control flow with all WG invocations present.
// Assumes subgroups of a 1D workgroup are contiguous, equally sized runs of
// local_invocation_index, which holds on every driver wgpu targets.

var<workgroup> red: array<vec4<f32>, WG>;

// Lowest invocation of this subgroup, and the subgroup's slot in `red`.
fn subgroup_slot(lid: u32) -> vec2<u32> {
    let size = subgroupAdd(1u);
    let first = subgroupMin(lid);
    return vec2<u32>(first, first / size);
}

// The butterfly: at each step an invocation merges its value with that of the invocation
// `m` away, the lower invocation's value first, so that the subgroup's lowest invocation
// ends with a fixed tree of merges whatever the driver schedules. `sums` picks the merge.
fn subgroup_butterfly(lid: u32, v: vec4<f32>, sums: bool) -> vec4<f32> {
    let size = subgroupAdd(1u);
    var r = v;
    for (var m = 1u; m < size; m = m << 1u) {
        let o = subgroupShuffleXor(r, m);
        var lo = r;
        var hi = o;
        if ((lid & m) != 0u) {
            lo = o;
            hi = r;
        }
        if (sums) {
            r = sums_merge(lo, hi);
        } else {
            r = welford_pack(welford_merge(welford_unpack(lo), welford_unpack(hi)));
        }
    }
    return r;
}

// Each subgroup's result into red, then invocation 0 merges them in order.
fn reduce_subgroups(lid: u32, v: vec4<f32>, sums: bool) -> vec4<f32> {
    let s = subgroup_butterfly(lid, v, sums);
    let slot = subgroup_slot(lid);
    let groups = WG / subgroupAdd(1u);
    if (lid == slot.x) {
        red[slot.y] = s;
    }
    workgroupBarrier();
    var r = vec4<f32>(0.0);
    if (lid == 0u) {
        for (var g = 0u; g < groups; g = g + 1u) {
            if (sums) {
                r = sums_merge(r, red[g]);
            } else {
                r = welford_pack(welford_merge(welford_unpack(r), welford_unpack(red[g])));
            }
        }
    }
    workgroupBarrier();
    return r;
}

fn reduce_welford(lid: u32, w: Welford) -> Welford {
    return welford_unpack(reduce_subgroups(lid, welford_pack(w), false));
}

fn reduce_sums(lid: u32, v: vec4<f32>) -> vec4<f32> {
    return reduce_subgroups(lid, v, true);
}
