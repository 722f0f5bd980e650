//! Every loop of every kernel ends, checked on the WGSL text without a GPU: the promise
//! that lets the pipelines turn off wgpu's loop bounding (`pipelines::RUNTIME_CHECKS`).
//!
//! wgpu adds a counter to every loop unless told that no loop is infinite (a compiler may
//! treat an infinite loop as unreachable); on an H200 that counter cost up to 13% of a
//! backward pass (BENCHMARKS.md, "wgpu's loop bounding"). The kernels' loops are all
//! `for` loops of a few forms, and this test holds them to those forms:
//! - counting up, `v < bound` (or `v + a < bound`, `v + 4u <= bound`) with `v = v + step`,
//!   `step` one of [`POSITIVE_STEPS`], each at least 1 for any parameters the host
//!   writes (why, beside each);
//! - halving down, `s > 0u` with `s = s >> 1u`;
//! - doubling up from 1, `m < size` with `m = m << 1u`, `size` a subgroup's size (at
//!   most 128).
//!
//! Counting up cannot wrap around either: every bound is a count of elements, channels,
//! tasks or records of a binding of at most 2^32 bytes, so below 2^31, and every step is
//! at most the grid's invocations (fewer than a pass's elements plus a workgroup).

use super::*;

/// The steps of the counting loops, each at least 1.
const POSITIVE_STEPS: &[&str] = &[
    "1u",
    "4u",
    // The workgroup size, 256.
    "WG",
    "4u * WG",
    // num_workgroups: every dispatch has at least one workgroup on each axis.
    "nwg.x * nwg.y",
    // Grid invocations, nwg.x * nwg.y * WG; in the vec4 passes (`vec4_sample_stride`) a
    // multiple of a sample's vec4s that the kernel returns before looping with where it
    // is 0 (`t >= stride`) or replaces by `threads` (the whole-sample grid).
    "stride",
    "threads",
    // Invocations per channel of a row task: WG / p.lanes with p.lanes from 1 to 64
    // (`row_lanes` in src/batchnorm/plan.rs), or `merge_rows()`, at least 1
    // (`Tuning::merge_rows_cap` clamps the width to 1..=WG).
    "rows",
    "t.rows",
    "4u * rows",
];

/// `source` without its `//` comments, line for line.
fn code_of(source: &str) -> String {
    let lines: Vec<&str> = source
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect();
    lines.join("\n")
}

/// The `for (init; condition; update)` headers of `code` (comments stripped).
fn for_headers(code: &str) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    for line in code.lines() {
        let Some(start) = line.find("for (") else {
            continue;
        };
        let header = &line[start + "for (".len()..];
        let header = header.rsplit_once(')').map_or(header, |(h, _)| h);
        let parts: Vec<&str> = header.split(';').map(str::trim).collect();
        assert_eq!(parts.len(), 3, "a `for` header on one line: {line}");
        found.push((parts[0].into(), parts[1].into(), parts[2].into()));
    }
    found
}

/// Why the loop `(init, condition, update)` ends, or None.
fn ends(init: &str, condition: &str, update: &str) -> Option<&'static str> {
    let (var, rhs) = update.split_once(" = ")?;
    if rhs == format!("{var} >> 1u") && condition == format!("{var} > 0u") {
        return Some("halves to 0");
    }
    if rhs == format!("{var} << 1u")
        && init == format!("var {var} = 1u")
        && condition == format!("{var} < size")
    {
        return Some("doubles past the subgroup size");
    }
    let step = rhs.strip_prefix(&format!("{var} + "))?;
    let counts_up = condition.starts_with(&format!("{var} < "))
        || condition.starts_with(&format!("{var} + "))
            && (condition.contains(" < ") || condition.contains(" <= "));
    (POSITIVE_STEPS.contains(&step) && counts_up).then_some("counts up by at least 1")
}

#[test]
fn every_kernel_loop_ends() {
    let mut loops = 0;
    for spec in ALL_KERNELS {
        for subgroups in [false, true] {
            let code = code_of(&module_source(&spec, subgroups, false));
            for (init, condition, update) in for_headers(&code) {
                assert!(
                    ends(&init, &condition, &update).is_some(),
                    "{} (subgroups {subgroups}): no reason this loop ends: \
                     for ({init}; {condition}; {update})",
                    spec.name
                );
                loops += 1;
            }
            for word in ["loop {", "while "] {
                assert!(
                    !code.contains(word),
                    "{}: a `{word}` loop; only `for` loops of the forms above are checked",
                    spec.name
                );
            }
        }
    }
    assert!(loops > 50, "found only {loops} loops: the scan missed them");
}

/// The checker refuses the loops it must: a step that may be 0, a loop counting down,
/// a shift without its bound.
#[test]
fn loop_checker_refuses_loops_that_may_not_end() {
    assert!(ends("var i = 0u", "i < p.len", "i = i + p.lanes").is_none());
    assert!(ends("var i = p.len", "i > 0u", "i = i - 1u").is_none());
    assert!(ends("var s = 8u", "s < 64u", "s = s >> 1u").is_none());
    assert!(ends("var m = 0u", "m < size", "m = m << 1u").is_none());
    assert!(ends("var i = 0u", "j < p.len", "i = i + WG").is_none());
    assert!(ends("var i = 0u", "i < p.len", "i = i + WG").is_some());
    assert!(ends("", "k + 3u * WG < end", "k = k + 4u * WG").is_some());
}
