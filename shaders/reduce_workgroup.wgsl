// Workgroup reductions through shared memory, for adapters without subgroup operations.
// Twin: `reduce_subgroup.wgsl` (same functions and signatures). The result is valid in
// invocation 0. Call from uniform control flow with all WG invocations present.

var<workgroup> red: array<vec4<f32>, WG>;

fn reduce_welford(lid: u32, w: Welford) -> Welford {
    red[lid] = welford_pack(w);
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            let m = welford_merge(welford_unpack(red[lid]), welford_unpack(red[lid + s]));
            red[lid] = welford_pack(m);
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return welford_unpack(r);
}

// Two-float sums (`sums_add` in common.wgsl) of the workgroup.
fn reduce_sums(lid: u32, v: vec4<f32>) -> vec4<f32> {
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            red[lid] = sums_merge(red[lid], red[lid + s]);
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}
