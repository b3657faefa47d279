//! What TLS costs: the cases a run measured both plain and over TLS (`params.tls`), set side
//! by side. When a run has both, the other sections show the plain cases only, so each of their
//! tables compares transports under the same conditions.

use std::borrow::Cow;
use std::fmt::Write;

use pushbench_schema::{CaseResult, RunFile};

use crate::markdown::{opt, status};
use crate::study::TRANSPORT_ORDER;

/// Whether a case ran over TLS.
pub(crate) fn is_tls(case: &CaseResult) -> bool {
    case.params.tls == Some(true)
}

/// The cases the scenario sections show: all of them, unless the run has both plain and TLS
/// cases, then the plain ones (the TLS ones appear in "What TLS costs" and "All cases").
pub(crate) fn main_cases(file: &RunFile) -> Cow<'_, RunFile> {
    let tls = file.cases.iter().filter(|c| is_tls(c)).count();
    if tls == 0 || tls == file.cases.len() {
        return Cow::Borrowed(file);
    }
    let mut plain = file.clone();
    plain.cases.retain(|c| !is_tls(c));
    Cow::Owned(plain)
}

/// A TLS case and the plain case with the same scenario, transport, variant and parameters.
pub(crate) struct Pair<'a> {
    /// Without TLS.
    pub plain: &'a CaseResult,
    /// Over TLS.
    pub tls: &'a CaseResult,
}

fn same_case(a: &CaseResult, b: &CaseResult) -> bool {
    let (p, q) = (&a.params, &b.params);
    a.scenario == b.scenario
        && a.transport == b.transport
        && a.variant == b.variant
        && (p.n, p.block_size, p.clients, &p.flush, p.payload_bytes)
            == (q.n, q.block_size, q.clients, &q.flush, q.payload_bytes)
}

/// Every TLS case with its plain twin, in transport order, then run order.
pub(crate) fn pairs(file: &RunFile) -> Vec<Pair<'_>> {
    let mut pairs: Vec<Pair<'_>> = file
        .cases
        .iter()
        .filter(|c| is_tls(c))
        .filter_map(|tls| {
            let plain = file
                .cases
                .iter()
                .find(|c| !is_tls(c) && same_case(c, tls))?;
            Some(Pair { plain, tls })
        })
        .collect();
    let rank = |t: &str| TRANSPORT_ORDER.iter().position(|o| *o == t);
    pairs.sort_by_key(|p| (p.tls.scenario != "study", rank(&p.tls.transport)));
    pairs
}

/// Messages (calls or pushed messages) per second.
fn rate(c: &CaseResult) -> Option<f64> {
    c.metrics.calls_per_s.or(c.metrics.msgs_per_s)
}

/// Bytes on the wire, both directions, per message of one run.
fn wire_per_message(c: &CaseResult) -> Option<f64> {
    let n = c.params.n.filter(|&n| n > 0)? as f64;
    let m = &c.metrics;
    Some((m.wire_bytes_up? + m.wire_bytes_down?) as f64 / n)
}

/// What tells the case apart within its scenario.
fn case_label(c: &CaseResult) -> String {
    let n = opt(c.params.n, |n| n.to_string());
    match &c.params.flush {
        Some(flush) => format!("n={n}, {flush}"),
        None => format!("n={n}, {}", c.variant),
    }
}

/// TLS throughput as a fraction of plain.
fn throughput_ratio(p: &Pair<'_>) -> Option<f64> {
    let (plain, tls) = (rate(p.plain)?, rate(p.tls)?);
    (plain > 0.0).then(|| tls / plain)
}

/// The "What TLS costs" section; nothing when the run has no TLS case.
pub(crate) fn section(md: &mut String, file: &RunFile) {
    let tls_cases = file.cases.iter().filter(|c| is_tls(c)).count();
    if tls_cases == 0 {
        return;
    }
    md.push_str(
        "## What TLS costs\n\n\
         The same cases run plain and over TLS 1.3 (rustls with the *ring* provider; https, wss, and the tcp floor \
         inside TLS) in this run, against twin in-process servers that differ only in TLS. The certificate is \
         self-signed and generated at start; the drivers trust exactly it. Wire bytes are counted on the TCP \
         socket, below TLS, so they include the handshake, record headers and authentication tags. A throughput \
         ratio below 1 is what encryption costs; study cases include the TLS handshake in their clock (connect \
         included), push cases start their clock after connecting.\n\n",
    );
    let pairs = pairs(file);
    if pairs.is_empty() {
        let _ = writeln!(
            md,
            "This run measured {tls_cases} case(s) over TLS only, with no plain twin to compare against \
             (`pushbench run --tls=both` measures both).\n"
        );
        return;
    }
    md.push_str(
        "| scenario | case | transport | runs plain / TLS | calls or msgs/s plain | TLS | TLS ÷ plain | elapsed ms plain / TLS | wire B per message plain / TLS | connect ms plain / TLS | status TLS |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for p in &pairs {
        let (a, b) = (p.plain, p.tls);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} / {} | {} | {} | {} | {} / {} | {} / {} | {} / {} | {} |",
            b.scenario,
            case_label(b),
            b.transport,
            a.params.repeats.unwrap_or(1),
            b.params.repeats.unwrap_or(1),
            opt(rate(a), |v| format!("{v:.0}")),
            opt(rate(b), |v| format!("{v:.0}")),
            opt(throughput_ratio(p), |r| format!("{r:.2}×")),
            opt(a.metrics.elapsed_ms, |v| format!("{v:.1}")),
            opt(b.metrics.elapsed_ms, |v| format!("{v:.1}")),
            opt(wire_per_message(a), |v| format!("{v:.0}")),
            opt(wire_per_message(b), |v| format!("{v:.0}")),
            opt(a.metrics.connect_ms, |v| format!("{v:.2}")),
            opt(b.metrics.connect_ms, |v| format!("{v:.2}")),
            status(b)
        );
    }
    md.push_str(
        "\nTLS ÷ plain is the TLS case's calls or messages per second divided by the plain case's. Plain and \
         TLS cases may have run a different number of times (see *runs*); each figure is its median run.\n\n",
    );
}

/// The comparison table's "Encryption" cell for `transport`: what TLS did to its study time and
/// its push throughput in this run.
pub(crate) fn encryption_cell(file: &RunFile, transport: &str) -> Option<String> {
    let pairs = pairs(file);
    let mine = |scenario: &str| {
        pairs
            .iter()
            .filter(|p| p.tls.transport == transport && p.tls.scenario == scenario)
            .collect::<Vec<_>>()
    };
    let mut parts = Vec::new();
    let study = mine("study");
    // The published study's form: sequential, the largest N measured both ways.
    let study = study
        .iter()
        .filter(|p| p.tls.variant == "sequential")
        .max_by_key(|p| p.tls.params.n);
    if let Some(p) = study {
        parts.push(format!(
            "study n={}: {} calls/s",
            opt(p.tls.params.n, |n| n.to_string()),
            opt(throughput_ratio(p), |r| format!("{r:.2}×"))
        ));
    }
    for p in mine("push") {
        parts.push(format!(
            "push {}: {} msgs/s",
            p.tls.params.flush.as_deref().unwrap_or("—"),
            opt(throughput_ratio(p), |r| format!("{r:.2}×"))
        ));
    }
    if let Some(p) = study {
        if let (Some(a), Some(b)) = (wire_per_message(p.plain), wire_per_message(p.tls)) {
            parts.push(format!("+{:.0} wire B per call", b - a));
        }
    }
    if parts.is_empty() {
        return None;
    }
    let flagged = pairs
        .iter()
        .any(|p| p.tls.transport == transport && !p.tls.is_ok());
    let text = parts.join("; ");
    Some(if flagged {
        format!("{text} (FLAGGED)")
    } else {
        text
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pushbench_schema::RunInfo;

    fn case(transport: &str, tls: bool, calls_per_s: f64, wire: u64) -> CaseResult {
        let mut c = CaseResult::new("study", transport, "sequential");
        c.params.n = Some(100);
        c.params.tls = tls.then_some(true);
        c.metrics.calls_per_s = Some(calls_per_s);
        c.metrics.elapsed_ms = Some(100_000.0 / calls_per_s);
        c.metrics.wire_bytes_up = Some(wire);
        c.metrics.wire_bytes_down = Some(wire);
        c.integrity.sent = 100;
        c.integrity.received = 100;
        c
    }

    fn run(cases: Vec<CaseResult>) -> RunFile {
        let mut file = RunFile::new(RunInfo::default());
        file.cases = cases;
        file
    }

    #[test]
    fn pairs_tls_cases_with_their_plain_twins_and_reports_the_ratio() {
        let file = run(vec![
            case("ws", false, 1000.0, 10_000),
            case("sse", false, 800.0, 12_000),
            case("ws", true, 500.0, 15_000),
        ]);
        let pairs = pairs(&file);
        assert_eq!(pairs.len(), 1);
        assert_eq!(pairs[0].plain.params.tls, None);
        assert_eq!(throughput_ratio(&pairs[0]), Some(0.5));
        let mut md = String::new();
        section(&mut md, &file);
        assert!(md.contains("## What TLS costs"), "{md}");
        assert!(
            md.contains("| study | n=100, sequential | ws | 1 / 1 | 1000 | 500 | 0.50× |"),
            "{md}"
        );
        // Wire bytes per call: 200 plain, 300 over TLS.
        assert!(md.contains("| 200 / 300 |"), "{md}");
        assert_eq!(
            encryption_cell(&file, "ws").as_deref(),
            Some("study n=100: 0.50× calls/s; +100 wire B per call")
        );
        assert_eq!(encryption_cell(&file, "sse"), None);
        // The scenario sections see the plain cases only.
        assert_eq!(main_cases(&file).cases.len(), 2);
    }

    #[test]
    fn a_tls_only_run_keeps_its_cases_in_the_sections_and_says_nothing_to_compare() {
        let file = run(vec![case("ws", true, 500.0, 15_000)]);
        assert_eq!(main_cases(&file).cases.len(), 1);
        let mut md = String::new();
        section(&mut md, &file);
        assert!(md.contains("no plain twin"), "{md}");
        let mut none = String::new();
        section(&mut none, &run(vec![case("ws", false, 500.0, 15_000)]));
        assert!(none.is_empty());
    }
}
