// Shared declarations for every wgpu-batchnorm kernel. The host prepends this file
// (and one of the `reduce_*.wgsl` helpers) to each kernel source, and before it a prelude
// that `src/kernels.rs` generates from its Rust constants (`wgsl_prelude`): `T`, the
// element type of the tensors (x, y, dy, dx, z, dz: f32, or f16 with `enable f16;`), `WG`,
// the threads per workgroup (every kernel's `@workgroup_size(WG)`), and the `FLAG_*` bits
// of `Params::flags`. Statistics and per-channel values are always f32.

// Per-call parameters. Twin: `Params` in `src/kernels.rs` (same fields at the same offsets,
// checked by a test that reads this struct with naga).
struct Params {
    // The whole tensor seen as (outer, channels, inner): channel-first (N, C, *S) has
    // outer = N, inner = prod(S); channels-last (N, *S, C) has outer = N * prod(S), inner = 1.
    outer: u32,
    channels: u32,
    inner: u32,
    // Elements per channel in the whole tensor: outer * inner.
    count: u32,
    // The piece of the tensor this dispatch sees: flat elements [base, base + len), bound
    // from its first element. A tensor larger than one binding is processed piece by piece;
    // otherwise the one piece is the whole tensor.
    base: u32,
    len: u32,
    // The partial passes split each channel's elements within the piece into `chunks` runs
    // of `chunk_len`, and write their partials to slots slot_base .. slot_base + chunks of
    // the channel's `slots` (all pieces together).
    chunk_len: u32,
    chunks: u32,
    slot_base: u32,
    slots: u32,
    // Channels per workgroup of the `*_rows.wgsl` partial passes (a power of two dividing
    // WG; 0 where they are not used).
    lanes: u32,
    // Always 0, but unknown when the pipeline is compiled: see `opaque`.
    zero: u32,
    eps: f32,
    // Weight of the new batch in the running statistics (both momentum conventions).
    momentum: f32,
    flags: u32,
    // Most invocations per channel of the merge passes (`merge_rows` in row_tree.wgsl): a
    // power of two from 1 to WG, by the adapter (Tuning::merge_width).
    merge_width: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

// Neither infinite nor NaN, by the exponent bits (compilers may fold `x != x` away).
fn is_finite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}

// NaN, by the bits (compilers may fold `x != x` away).
fn is_nan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

// max(v, 0) that keeps a NaN, as PyTorch's relu and clamp do (WGSL leaves `max` with a NaN
// argument unspecified; llvmpipe returns the other operand). CPU twin:
// `reference::relu`.
fn max0(v: f32) -> f32 {
    return select(max(v, 0.0), v, is_nan(v));
}

// The gradient reaching batch norm's output through the fused epilogue: zero where the
// forward's output `y` was cut by the ReLU (y <= 0), dy elsewhere, a NaN `y` included (as
// PyTorch's `threshold_backward`); dy without an epilogue. CPU twin:
// `reference::through_epilogue`.
fn through_epilogue(dy: f32, y: f32) -> f32 {
    if ((p.flags & FLAG_RELU) != 0u && y <= 0.0 && !is_nan(y)) {
        return 0.0;
    }
    return dy;
}

// s + e = a + b exactly (Knuth's TwoSum): the rounded sum s and its rounding error e.
// Six additions, no branch, no product, so that no contraction into a fused multiply-add
// can change it. (The CPU reference needs no twin: it computes in f64.)
// The sums pass through `opaque`: compilers that apply inexact algebraic rules (Mesa's
// NIR does, for SPIR-V without NoContraction, which naga does not emit) would otherwise
// fold (a + b) - a into b and the error into nonsense.
fn two_sum(a: f32, b: f32) -> vec2<f32> {
    let s = opaque(a + b);
    let bb = opaque(s - a);
    let aa = opaque(s - bb);
    return vec2<f32>(s, (a - aa) + (b - bb));
}

// `v` unchanged, through an operation the compiler cannot see through: p.zero is 0 at run
// time but unknown when the pipeline is compiled.
fn opaque(v: f32) -> f32 {
    return bitcast<f32>(bitcast<u32>(v) | p.zero);
}

// Running (count, mean, biased variance) of Welford's algorithm, the mean in two floats:
// mean + c, c the part below mean's last bit. One f32 mean gains a rounding at its own
// size on every update and merge; on data whose mean is small against its spread these
// add up to 1e-5 of the mean, where the two floats keep it to the final rounding (the
// hardening issue, item 6). The variance M2 / n is kept rather
// than M2, the sum of squared deviations: M2 overflows f32 for data whose variance is
// finite (std 1e18 over a thousand values), the variance only when it is not finite
// itself. Every update and merge is written so that no intermediate exceeds the result
// (the differences are scaled by a weight before they are squared).
struct Welford {
    n: f32,
    mean: f32,
    v: f32,
    c: f32,
    // The variance's part below v's last bit, within one invocation: the shared-memory
    // format (`welford_pack`) rounds it into v, so that a tree's merges round v once each.
    vc: f32,
}

fn welford_empty() -> Welford {
    return Welford(0.0, 0.0, 0.0, 0.0, 0.0);
}

// Adds one value: mean' = mean + (x - mean) / n' in two floats, M2' = M2 + (x - mean)
// (x - mean'), divided by n'. The difference x - mean is taken exactly (two_sum) and its
// small part divided apart from the large: rounding it at x's size would lose, for every
// value alike, the bits of the mean below x's last bit, an error that does not average
// out (the mean is nearly constant) and that alone is 1e-6 of a small mean.
fn welford_push(w: Welford, x: f32) -> Welford {
    let n = w.n + 1.0;
    let d = two_sum(x, -w.mean);
    let t = d.x / n;
    let tl = (d.y - w.c) / n;
    let m = two_sum(w.mean, t);
    let c = w.c + (m.y + tl);
    let v = two_sum(w.v, t * ((x - m.x) - c) - (w.v + w.vc) / n);
    return Welford(n, m.x, v.x, c, w.vc + v.y);
}

// The Welford state as the vec4 of the reductions' shared memory, and back.
fn welford_pack(w: Welford) -> vec4<f32> {
    return vec4<f32>(w.n, w.mean, w.v + w.vc, w.c);
}

fn welford_unpack(q: vec4<f32>) -> Welford {
    return Welford(q.x, q.y, q.z, q.w, 0.0);
}

// A statistics record (count, mean of x - shift, variance, shift), the format of the
// partial passes' output and of the public per-channel statistics, as a Welford state
// whose two-float mean is the record's mean exactly. CPU twin: `ChannelStats::from_gpu`.
fn record_welford(q: vec4<f32>) -> Welford {
    let m = two_sum(q.w, q.y);
    return Welford(q.x, m.x, q.z, m.y, 0.0);
}

// The record of `w`: its mean in two floats as the shift (the mean rounded to f32) and
// the mean of x - shift (what remains).
fn welford_record(w: Welford) -> vec4<f32> {
    let m = two_sum(w.mean, w.c);
    return vec4<f32>(w.n, m.y, w.v + w.vc, m.x);
}

// Statistics merged from records, in order (Chan); empty records (count 0, or a NaN
// count) are skipped.
fn merged_push(m: Welford, q: vec4<f32>) -> Welford {
    if (!(q.x > 0.0)) {
        return m;
    }
    return welford_merge(m, record_welford(q));
}

// One channel's forward results from its merged statistics `w` (of x, the mean in two
// floats), gamma `g` and beta `b`: the saved mean and invstd, the coefficients
// chan[c] = (shift, scale, bias, 0) of y = (x - shift) * scale + bias, shift the f32 mean,
// and chan[C + c] = (mean, biased variance, count, 0) for `running_update.wgsl`. Shared by
// `stats_finalize.wgsl` and `forward_fused.wgsl`, so that both compute the same bits.
struct ForwardChannel {
    mean: f32,
    invstd: f32,
    coeffs: vec4<f32>,
    stats: vec4<f32>,
}

fn forward_channel(w: Welford, g: f32, b: f32) -> ForwardChannel {
    // The variance is a weighted sum of non-negative terms; the clamp only guards rounding
    // and keeps NaN.
    let var_b = max0(w.v + w.vc);
    let invstd = 1.0 / sqrt(var_b + p.eps);
    // The mean in two floats: hi, the f32 mean, is the shift of y's coefficients, and lo
    // goes into the bias.
    let m = two_sum(w.mean, w.c);
    let scale = g * invstd;
    return ForwardChannel(
        m.x,
        invstd,
        vec4<f32>(m.x, scale, b - m.y * scale, 0.0),
        vec4<f32>(m.x, var_b, w.n, 0.0),
    );
}

// One channel's backward results from its sums `s` = (sum dy, sum dy * (x - mean)) and
// `st` = chan[C + c] = (mean, invstd, gamma, 0): dgamma = sum dy * xhat, dbeta = sum dy
// (zero for an empty batch), and chan[c] = (mean, a, k, m) of
//   batch statistics: dx = a * (dy - k * (x - mean) - m), with a = gamma * invstd,
//     k = invstd * dgamma / M, m = dbeta / M
//   running statistics (eval): dx = a * dy, with a = gamma * invstd_running
// Each coefficient is of the size of its own factors: a * invstd * dgamma / M, a single
// coefficient of (x - mean), is invstd^2 small and falls below f32's normal range for data
// of std 1e18, where GPUs that flush denormals (NVIDIA) lose it.
// Shared by `backward_finalize.wgsl`, `backward_fused.wgsl` and `backward_thin.wgsl`.
struct BackwardChannel {
    dgamma: f32,
    dbeta: f32,
    coeffs: vec4<f32>,
}

// The values to store in dgamma[c] and dbeta[c], which hold `held`: this call's
// gradients, or with FLAG_ACCUMULATE_GRADS their sum with the held ones (PyTorch's .grad).
fn grads_out(f: BackwardChannel, held: vec2<f32>) -> vec2<f32> {
    let g = vec2<f32>(f.dgamma, f.dbeta);
    if ((p.flags & FLAG_ACCUMULATE_GRADS) != 0u) {
        return held + g;
    }
    return g;
}

fn backward_channel(s: vec2<f32>, st: vec4<f32>) -> BackwardChannel {
    let mean = st.x;
    let invstd = st.y;
    let a = st.z * invstd;
    // An empty batch has zero gradients (the statistics it read are not defined).
    let empty = p.count == 0u;
    let sum_dy = select(s.x, 0.0, empty);
    let sum_dy_xhat = select(s.y * invstd, 0.0, empty);
    var q = vec4<f32>(mean, a, 0.0, 0.0);
    if ((p.flags & FLAG_BATCH_STATS) != 0u) {
        let inv_m = 1.0 / f32(p.count);
        q = vec4<f32>(mean, a, invstd * (sum_dy_xhat * inv_m), sum_dy * inv_m);
    }
    return BackwardChannel(sum_dy_xhat, sum_dy, q);
}

// y of one element from its x value `xv` and chan[c] = `q` = (shift, scale, bias, 0), then
// the fused epilogue with the residual's value `zv` (read by the caller with FLAG_RESIDUAL
// only). Shared by `normalize.wgsl` and `forward_fused.wgsl`.
fn normalized(xv: f32, q: vec4<f32>, zv: f32) -> f32 {
    var v = (xv - q.x) * q.y + q.z;
    if ((p.flags & FLAG_RESIDUAL) != 0u) {
        v = v + zv;
    }
    if ((p.flags & FLAG_RELU) != 0u) {
        v = max0(v);
    }
    return v;
}

// dx of one element from the gradient `g` reaching batch norm's output, its x value `xv`
// and chan[c] = `q` = (mean, a, k, m) of `backward_channel`. With running statistics (eval)
// dx = a * g does not read x, so a NaN in x stays out of dx as in PyTorch. Shared by
// `backward_dx.wgsl`, `backward_fused.wgsl` and `backward_thin.wgsl`.
fn dx_value(g: f32, xv: f32, q: vec4<f32>) -> f32 {
    if ((p.flags & FLAG_BATCH_STATS) == 0u) {
        return q.y * g;
    }
    return q.y * (g - q.z * (xv - q.x) - q.w);
}

// Invocation 0's `v`, for every invocation of the workgroup, through red[0] (declared by
// the reduction helpers). Call from uniform control flow with all WG invocations present.
fn broadcast_first(lid: u32, v: vec4<f32>) -> vec4<f32> {
    if (lid == 0u) {
        red[0] = v;
    }
    workgroupBarrier();
    let r = red[0];
    // Every invocation has its copy before anything reuses red.
    workgroupBarrier();
    return r;
}

// Chan's merge of two partial results; `a` is taken as the earlier part. The means are
// merged in two floats: the difference of the high parts exactly, its small part and
// the low parts' difference weighted apart from it, and d * f added to a's mean with
// its rounding error kept.
fn welford_merge(a: Welford, b: Welford) -> Welford {
    if (b.n == 0.0) {
        return a;
    }
    if (a.n == 0.0) {
        return b;
    }
    // M2 = M2a + M2b + d^2 na nb / n, divided by n: with weights fa = na / n, fb = nb / n,
    // v = fa va + fb vb + (fb d)(fa d) = va + ((vb - va) fb + (fb d)(fa d)), the increment
    // form, which rounds once at the size of v (the other roundings are of the increment).
    let n = a.n + b.n;
    let dd = two_sum(b.mean, -a.mean);
    let dl = dd.y + (b.c - a.c);
    let d = dd.x + dl;
    let f = b.n / n;
    let fa = a.n / n;
    let m = two_sum(a.mean, dd.x * f);
    let c = a.c + (m.y + dl * f);
    let dv = (b.v - a.v) + (b.vc - a.vc);
    let v = two_sum(a.v, dv * f + (d * f) * (d * fa));
    return Welford(n, m.x, v.x, c, a.vc + v.y);
}

// Two sums in two floats each, (hi1, hi2, lo1, lo2): the backward's (sum dy,
// sum dy * (x - mean)). Adding a pair keeps each rounding error in lo.
fn sums_add(s: vec4<f32>, v: vec2<f32>) -> vec4<f32> {
    let a = two_sum(s.x, v.x);
    let b = two_sum(s.y, v.y);
    return vec4<f32>(a.x, b.x, s.z + a.y, s.w + b.y);
}

// Four elements of the backward sums, in order: (dy, x, y) of each, y read only with a
// fused ReLU. The same sums as four `sums_add` of the partial passes' tail loops.
fn backward_sums_add4(s: vec4<f32>, dy: vec4<f32>, x: vec4<f32>, y: vec4<f32>, mean: f32) -> vec4<f32> {
    var r = s;
    for (var j = 0u; j < 4u; j = j + 1u) {
        let g = through_epilogue(dy[j], y[j]);
        r = sums_add(r, vec2<f32>(g, g * (x[j] - mean)));
    }
    return r;
}

// The sum of two such pairs of two-float sums.
fn sums_merge(s: vec4<f32>, t: vec4<f32>) -> vec4<f32> {
    let r = sums_add(s, t.xy);
    return vec4<f32>(r.xy, r.zw + t.zw);
}

// The two sums, each rounded once to f32.
fn sums_value(s: vec4<f32>) -> vec2<f32> {
    return s.xy + s.zw;
}
