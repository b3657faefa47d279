//! "Performance targets": the targets a `cargo bench --bench perf` run checked (`targets` in
//! run.json), each with the figure it measured, its bound and whether it was met. Absent from
//! runs without targets.

use std::fmt::Write;

use pushbench_schema::{PerfTarget, RunFile};

/// Appends the section when `file` has targets.
pub(crate) fn section(md: &mut String, file: &RunFile) {
    if file.targets.is_empty() {
        return;
    }
    let met = file.targets.iter().filter(|t| t.met).count();
    let _ = writeln!(
        md,
        "## Performance targets\n\n\
         {met} of {} targets met. Each figure was measured by this run (ratios between cases of \
         the same run); ✗ marks a target not met, or a figure the run could not measure (the note \
         says why).\n",
        file.targets.len()
    );
    md.push_str("| id | what | measured | target | met | note |\n|---|---|---:|---|:---:|---|\n");
    for t in &file.targets {
        let _ = writeln!(
            md,
            "| `{}` | {} | {} | {} | {} | {} |",
            t.id,
            cell(&t.description),
            measured(t),
            t.bound_text(),
            if t.met { "✓" } else { "✗" },
            cell(&t.note)
        );
    }
    md.push('\n');
}

/// The measured value with its unit, three significant figures; `not measured` without one.
fn measured(t: &PerfTarget) -> String {
    match t.value {
        Some(v) if v.abs() >= 100.0 => format!("{v:.0} {}", t.unit),
        Some(v) if v.abs() >= 10.0 => format!("{v:.1} {}", t.unit),
        Some(v) => format!("{v:.2} {}", t.unit),
        None => "not measured".to_owned(),
    }
}

/// Text safe inside a table cell: pipes escaped, line breaks as spaces.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use pushbench_schema::{Bound, RunInfo};

    #[test]
    fn lists_every_target_with_a_cross_for_the_unmet_one() {
        let mut file = RunFile::new(RunInfo::default());
        file.targets = vec![
            PerfTarget::new(
                "push.ws_to_tcp.batched",
                "WS msgs/s over the tcp floor's",
                "×",
                Bound::AtLeast,
                0.5,
                Some(0.8123),
            )
            .with_note("per_message: 0.31×"),
            PerfTarget::new(
                "sse_parser.gb_per_s",
                "SSE parser | 64 B events",
                "GB/s",
                Bound::AtLeast,
                1.0,
                Some(0.42),
            ),
            PerfTarget::new("mem", "memory", "KiB", Bound::AtMost, 32.0, None).with_note("not run"),
        ];
        let mut md = String::new();
        section(&mut md, &file);
        assert!(md.contains("## Performance targets"), "{md}");
        assert!(md.contains("1 of 3 targets met"), "{md}");
        assert!(
            md.contains(
                "| `push.ws_to_tcp.batched` | WS msgs/s over the tcp floor's | 0.81 × | ≥ 0.5 × | ✓ | per_message: 0.31× |"
            ),
            "{md}"
        );
        assert!(
            md.contains(
                "| `sse_parser.gb_per_s` | SSE parser \\| 64 B events | 0.42 GB/s | ≥ 1 GB/s | ✗ |  |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| `mem` | memory | not measured | ≤ 32 KiB | ✗ | not run |"),
            "{md}"
        );
    }

    #[test]
    fn absent_without_targets() {
        let mut md = String::new();
        section(&mut md, &RunFile::new(RunInfo::default()));
        assert_eq!(md, "");
    }
}
