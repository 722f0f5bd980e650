// Workgroup reductions with subgroup operations (`Features::SUBGROUP`), then one short
// sequential merge of the per-subgroup results in fixed order.
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

fn reduce_welford(lid: u32, w: Welford) -> Welford {
    // Merge within the subgroup against the subgroup mean (a two-pass merge, stable).
    let n = subgroupAdd(w.n);
    var mean = 0.0;
    if (n > 0.0) {
        mean = subgroupAdd(w.n * w.mean) / n;
    }
    // v = sum of f (v_i + d_i^2) with weights f = n_i / n (0 for an empty subgroup),
    // each difference scaled before it is squared so that nothing overflows before v does.
    let d = w.mean - mean;
    let f = select(0.0, w.n / n, n > 0.0);
    let v = subgroupAdd(f * w.v + (f * d) * d);
    let slot = subgroup_slot(lid);
    let groups = WG / subgroupAdd(1u);
    if (lid == slot.x) {
        red[slot.y] = vec4<f32>(n, mean, v, 0.0);
    }
    workgroupBarrier();
    var r = welford_empty();
    if (lid == 0u) {
        for (var g = 0u; g < groups; g = g + 1u) {
            let q = red[g];
            r = welford_merge(r, Welford(q.x, q.y, q.z));
        }
    }
    workgroupBarrier();
    return r;
}

fn reduce_sum2(lid: u32, v: vec2<f32>) -> vec2<f32> {
    let s = subgroupAdd(v);
    let slot = subgroup_slot(lid);
    let groups = WG / subgroupAdd(1u);
    if (lid == slot.x) {
        red[slot.y] = vec4<f32>(s, 0.0, 0.0);
    }
    workgroupBarrier();
    var r = vec2<f32>(0.0);
    if (lid == 0u) {
        for (var g = 0u; g < groups; g = g + 1u) {
            r = r + red[g].xy;
        }
    }
    workgroupBarrier();
    return r;
}
