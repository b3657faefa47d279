//! The study's cases, looked up by call count, variant and transport.

use pushbench_schema::{CaseResult, RunFile};

/// Transports in report order; `tcp` is the floor.
pub(crate) const TRANSPORT_ORDER: [&str; 4] = ["ws", "sse", "longpoll", "tcp"];
/// The web transports the published study compared.
pub(crate) const WEB: [&str; 3] = ["ws", "sse", "longpoll"];

/// The cases of one scenario, in run order.
pub(crate) fn scenario_cases<'a>(file: &'a RunFile, scenario: &str) -> Vec<&'a CaseResult> {
    file.cases
        .iter()
        .filter(|c| c.scenario == scenario)
        .collect()
}

/// The `push` cases of a run, in run order.
pub(crate) fn push_cases(file: &RunFile) -> Vec<&CaseResult> {
    scenario_cases(file, "push")
}

/// The distinct client counts of `cases`, ascending.
pub(crate) fn client_counts(cases: &[&CaseResult]) -> Vec<u64> {
    let mut counts: Vec<u64> = cases.iter().filter_map(|c| c.params.clients).collect();
    counts.sort_unstable();
    counts.dedup();
    counts
}

/// A push case's throughput as a fraction of the tcp floor's under the same flush policy.
pub(crate) fn push_ratio_to_floor(cases: &[&CaseResult], case: &CaseResult) -> Option<f64> {
    let floor = cases.iter().find(|c| {
        c.transport == "tcp"
            && c.params.flush == case.params.flush
            && c.params.tls == case.params.tls
            && c.is_ok()
    })?;
    let (value, floor) = (case.metrics.msgs_per_s?, floor.metrics.msgs_per_s?);
    (floor > 0.0).then(|| value / floor)
}

/// Read access to a run's `study` cases.
pub(crate) struct StudyView<'a> {
    cases: Vec<&'a CaseResult>,
}

impl<'a> StudyView<'a> {
    pub(crate) fn new(file: &'a RunFile) -> Self {
        StudyView {
            cases: file
                .cases
                .iter()
                .filter(|c| c.scenario == "study")
                .collect(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.cases.is_empty()
    }

    /// The case for `n` calls, `variant` and `transport`.
    pub(crate) fn case(&self, n: u64, variant: &str, transport: &str) -> Option<&'a CaseResult> {
        self.cases
            .iter()
            .copied()
            .find(|c| c.params.n == Some(n) && c.variant == variant && c.transport == transport)
    }

    /// The call counts present, ascending.
    pub(crate) fn ns(&self) -> Vec<u64> {
        let mut ns: Vec<u64> = self.cases.iter().filter_map(|c| c.params.n).collect();
        ns.sort_unstable();
        ns.dedup();
        ns
    }

    /// `elapsed / floor elapsed` for the same `n`, against the sequential tcp case.
    pub(crate) fn ratio_to_floor(&self, case: &CaseResult) -> Option<f64> {
        if case.scenario != "study" {
            return None;
        }
        // The floor measured the same way: plain, or over TLS.
        let n = case.params.n?;
        let floor = self.cases.iter().copied().find(|c| {
            c.params.n == Some(n)
                && c.variant == "sequential"
                && c.transport == "tcp"
                && c.params.tls == case.params.tls
        })?;
        if !floor.is_ok() {
            return None;
        }
        let (value, floor) = (case.metrics.elapsed_ms?, floor.metrics.elapsed_ms?);
        (floor > 0.0).then(|| value / floor)
    }
}
