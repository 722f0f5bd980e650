// Workgroup reductions through shared memory, for adapters without subgroup operations.
// Twin: `reduce_subgroup.wgsl` (same functions and signatures). The result is valid in
// invocation 0. Call from uniform control flow with all WG invocations present.

var<workgroup> red: array<vec4<f32>, WG>;

fn reduce_welford(lid: u32, w: Welford) -> Welford {
    red[lid] = vec4<f32>(w.n, w.mean, w.v, 0.0);
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            let a = red[lid];
            let b = red[lid + s];
            let m = welford_merge(Welford(a.x, a.y, a.z), Welford(b.x, b.y, b.z));
            red[lid] = vec4<f32>(m.n, m.mean, m.v, 0.0);
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return Welford(r.x, r.y, r.z);
}

fn reduce_sum2(lid: u32, v: vec2<f32>) -> vec2<f32> {
    red[lid] = vec4<f32>(v, 0.0, 0.0);
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            red[lid] = red[lid] + red[lid + s];
        }
        workgroupBarrier();
    }
    let r = red[0].xy;
    workgroupBarrier();
    return r;
}
