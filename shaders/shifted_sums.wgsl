// Per-invocation statistics of the training forward's partial passes without a division
// per value (`stats_partial.wgsl`, `stats_partial_rows.wgsl`): the count and the sums of
// d = x - k and of d^2, each in two floats, with k the invocation's first value. Turned
// into a Welford state once, after the loop (`shifted_welford`); invocations and
// workgroups then merge as before (Chan). `welford_push` costs three divisions and three
// two-float sums per value, which left the statistics compute-bound on a GPU.
//
// Numerics, against the per-value Welford update they replace:
// - the difference x - k is taken exactly (two_sum), its small part summed apart, so that
//   no bits of k below x's last bit are lost alike for every value (see `welford_push`);
// - the mean is k + S1 / n in two floats, the division's residual taken exactly (one
//   Dekker product per invocation), where Welford rounds a quotient per value;
// - the variance is S2 / n - (S1 / n)^2, which cancels by a factor 1 + (mean - k)^2 / var.
//   k is one of the values summed, so (mean - k)^2 <= (n - 1) var (Samuelson's
//   inequality): for the few dozen values of an invocation on a GPU the loss is a few
//   bits at worst, about none for a typical k;
// - d^2 overflows f32 where the variance need not (std 1e18), and a NaN or infinite value
//   makes the sums meaningless: where the sums are not finite, the kernel redoes the
//   invocation's values with `welford_push`, whose results (PyTorch's NaN and Inf
//   included) are those of the kernels before.
// CPU twin: `reference::batch_stats` (in f64; the tests bound the difference).

struct Shifted {
    k: f32,
    n: f32,
    // S1 = s1 + e1 and S2 = s2 + e2, e the parts below s's last bit.
    s1: f32,
    e1: f32,
    s2: f32,
    e2: f32,
}

fn shifted_empty(k: f32) -> Shifted {
    return Shifted(k, 0.0, 0.0, 0.0, 0.0, 0.0);
}

fn shifted_push(s: Shifted, x: f32) -> Shifted {
    let d = two_sum(x, -s.k);
    let a = two_sum(s.s1, d.x);
    let b = two_sum(s.s2, d.x * d.x);
    return Shifted(s.k, s.n + 1.0, a.x, s.e1 + (a.y + d.y), b.x, s.e2 + b.y);
}

// Four values at once: S1 as four `shifted_push` calls do it, bit for bit (each difference
// taken exactly, each added with its rounding kept), but the four squares summed in plain
// f32 before one compensated sum into S2. Squares are never negative, so the block sum's
// rounding is relative to S2's own terms and cannot be amplified by cancellation, as a
// plain sum of differences would be where the mean is small against the spread. A quarter
// less arithmetic per value: the statistics took 4-8% less time on an H200 (BENCHMARKS.md,
// "squares in blocks of four").
fn shifted_push4(s: Shifted, v: vec4<f32>) -> Shifted {
    let d0 = two_sum(v.x, -s.k);
    let d1 = two_sum(v.y, -s.k);
    let d2 = two_sum(v.z, -s.k);
    let d3 = two_sum(v.w, -s.k);
    let a0 = two_sum(s.s1, d0.x);
    let a1 = two_sum(a0.x, d1.x);
    let a2 = two_sum(a1.x, d2.x);
    let a3 = two_sum(a2.x, d3.x);
    let e1 = s.e1 + (a0.y + d0.y) + (a1.y + d1.y) + (a2.y + d2.y) + (a3.y + d3.y);
    let q = (d0.x * d0.x + d1.x * d1.x) + (d2.x * d2.x + d3.x * d3.x);
    let b = two_sum(s.s2, q);
    return Shifted(s.k, s.n + 4.0, a3.x, e1, b.x, s.e2 + b.y);
}

// Whether the sums hold the statistics (else the invocation redoes its values with
// `welford_push`).
fn shifted_finite(s: Shifted) -> bool {
    return is_finite(s.s1) && is_finite(s.e1) && is_finite(s.s2) && is_finite(s.e2);
}

// a = hi + lo exactly, hi with the upper 12 bits of a's significand (Veltkamp).
fn split(a: f32) -> vec2<f32> {
    let t = opaque(4097.0 * a);
    let hi = opaque(t - opaque(t - a));
    return vec2<f32>(hi, a - hi);
}

// p + e = a * b exactly (Dekker): every product of the halves is exact in f32, so a
// compiler's fused multiply-add cannot change them.
fn two_prod(a: f32, b: f32) -> vec2<f32> {
    let p = a * b;
    let x = split(a);
    let y = split(b);
    let e = ((opaque(x.x * y.x) - p) + x.x * y.y + x.y * y.x) + x.y * y.y;
    return vec2<f32>(p, e);
}

// The Welford state of the values summed.
fn shifted_welford(s: Shifted) -> Welford {
    if (s.n == 0.0) {
        return welford_empty();
    }
    // q + ql = S1 / n: q the rounded quotient, ql from the exact residual S1 - q n.
    let q = s.s1 / s.n;
    let qn = two_prod(q, s.n);
    let ql = (((s.s1 - qn.x) - qn.y) + s.e1) / s.n;
    let m = two_sum(s.k, q);
    let v = max((s.s2 + s.e2) / s.n - q * (q + 2.0 * ql), 0.0);
    return Welford(s.n, m.x, v, m.y + ql, 0.0);
}
