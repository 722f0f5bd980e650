//! The figures as JSON.

use crate::Row;
use crate::options::Options;
use std::time::{SystemTime, UNIX_EPOCH};

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Hinnant's algorithm).
fn civil_date(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| match c {
            '"' => vec!['\\', '"'],
            '\\' => vec!['\\', '\\'],
            c if (c as u32) < 0x20 => format!("\\u{:04x}", c as u32).chars().collect(),
            c => vec![c],
        })
        .collect()
}

/// The figures as JSON, in the form `benches/pytorch_bn.py` writes too.
pub(crate) fn to_json(
    info: &wgpu::AdapterInfo,
    commit: &str,
    opts: &Options,
    protocol: &str,
    rows: &[Row],
) -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_date((secs / 86_400) as i64);
    let mut out = String::from("{\n");
    out += "  \"impl\": \"wgpu-batchnorm\",\n";
    out += &format!(
        "  \"device\": \"{}\",\n  \"driver\": \"{} {}\",\n  \"backend\": \"{:?}\",\n",
        escape(&info.name),
        escape(&info.driver),
        escape(&info.driver_info),
        info.backend
    );
    out += &format!("  \"date\": \"{y:04}-{m:02}-{d:02}\",\n  \"commit\": \"{commit}\",\n");
    out += &format!(
        "  \"reps\": {},\n  \"warmup\": {},\n  \"protocol\": \"{}\",\n  \"results\": [\n",
        opts.reps, opts.warmup, protocol
    );
    for (i, r) in rows.iter().enumerate() {
        let dispatches: Vec<String> = r
            .dispatches
            .iter()
            .map(|d| {
                format!(
                    "{{\"kernel\": \"{}\", \"workgroups\": [{}, {}], \"ms\": {:.6}}}",
                    d.dispatch.kernel, d.dispatch.workgroups.0, d.dispatch.workgroups.1, d.ms
                )
            })
            .collect();
        let dispatches = match dispatches.is_empty() {
            true => String::new(),
            false => format!(", \"dispatches\": [{}]", dispatches.join(", ")),
        };
        out += &format!(
            "    {{\"shape\": {:?}, \"layout\": \"{}\", \"pass\": \"{}\", \"bytes\": {}, \"ms\": {:.6}, \"gbps\": {:.2}, \"stream_ms\": {:.6}, \"stream_pct\": {:.2}{}}}{}\n",
            r.dims,
            r.layout,
            r.pass,
            r.bytes,
            r.ms,
            r.gbps(),
            r.stream_ms,
            100.0 * r.of_stream(),
            dispatches,
            if i + 1 < rows.len() { "," } else { "" }
        );
    }
    out += "  ]\n}\n";
    out
}
