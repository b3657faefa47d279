//! The figures of `cargo bench --bench perf` (issue 6): each figure group turns what a run
//! measured into [`PerfTarget`]s, a value checked against its bound, which the bench writes to
//! `RunFile::targets` and the report lists under "Performance targets".
//!
//! One module per figure group; each exposes a function that appends its targets to a
//! `&mut Vec<PerfTarget>`, so the bench gathers them in one list.

pub mod push;

pub use pushbench_schema::{Bound, PerfTarget};

/// A terminal table of the targets: id | figure | target | met.
pub fn targets_table(targets: &[PerfTarget]) -> String {
    let width = targets.iter().map(|t| t.id.len()).max().unwrap_or(2).max(2);
    let mut out = format!(
        "{:<width$}  {:>14}  {:<12}  met\n",
        "id", "figure", "target"
    );
    for t in targets {
        let value = match t.value {
            Some(v) => format!("{v:.3} {}", t.unit),
            None => "not measured".to_owned(),
        };
        out.push_str(&format!(
            "{:<width$}  {:>14}  {:<12}  {}\n",
            t.id,
            value,
            t.bound_text(),
            if t.met { "yes" } else { "NO" }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_a_row_per_target_saying_whether_it_was_met() {
        let table = targets_table(&[
            PerfTarget::new("a.long_id", "x", "×", Bound::AtLeast, 0.5, Some(0.75)),
            PerfTarget::new("b", "y", "GB/s", Bound::AtLeast, 1.0, None),
        ]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert!(
            lines[1].starts_with("a.long_id") && lines[1].contains("0.750 ×"),
            "{table}"
        );
        assert!(lines[1].ends_with("yes"), "{table}");
        assert!(
            lines[2].contains("not measured") && lines[2].ends_with("NO"),
            "{table}"
        );
    }
}
