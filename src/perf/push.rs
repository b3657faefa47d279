//! Push figures: each web transport's msgs/s over the tcp floor's in the same run (64 B,
//! batched; the per_message ratio stated beside it), and the driver's CPU share (client CPU
//! over server CPU per message delivered).

use pushbench_schema::{Bound, CaseResult, PerfTarget};

/// The transports whose push rate is held against the floor.
pub const WEB_TRANSPORTS: [&str; 2] = ["ws", "sse"];

/// The ratio a web transport's batched push must reach against the tcp floor.
pub const FLOOR_RATIO: f64 = 0.5;

/// The most client CPU a driver may spend per message, as a share of the server's.
pub const CPU_SHARE: f64 = 1.0;

/// The push case of `transport` under `flush`, among `cases`.
fn find<'a>(cases: &'a [CaseResult], transport: &str, flush: &str) -> Option<&'a CaseResult> {
    cases.iter().find(|c| {
        c.scenario == "push"
            && c.transport == transport
            && c.params.flush.as_deref() == Some(flush)
            && c.params.tls != Some(true)
    })
}

/// msgs/s of a case that counted every message; the reason when it cannot be used.
fn rate(case: Option<&CaseResult>, what: &str) -> Result<f64, String> {
    let case = case.ok_or_else(|| format!("no {what} case in the run"))?;
    if !case.is_ok() {
        return Err(format!(
            "the {what} case is flagged ({}; {} of {} received)",
            case.error.as_deref().unwrap_or("counting fault"),
            case.integrity.received,
            case.integrity.sent
        ));
    }
    case.metrics
        .msgs_per_s
        .ok_or_else(|| format!("the {what} case has no msgs/s"))
}

/// `transport`'s msgs/s over tcp's, both under `flush`.
fn floor_ratio(
    cases: &[CaseResult],
    transport: &str,
    flush: &str,
) -> Result<(f64, f64, f64), String> {
    let web = rate(
        find(cases, transport, flush),
        &format!("{transport} {flush}"),
    )?;
    let floor = rate(find(cases, "tcp", flush), &format!("tcp {flush}"))?;
    Ok((web / floor, web, floor))
}

/// Appends `push.<t>_to_tcp.batched` for ws and sse, each noting its per_message ratio, and
/// `driver.cpu_share.<t>` (batched) from the push cases in `cases`; `client_kernel_share`, the
/// share of the client threads' CPU spent in the kernel while the batched cases ran, goes in
/// the CPU notes.
pub fn targets(cases: &[CaseResult], client_kernel_share: Option<f64>, out: &mut Vec<PerfTarget>) {
    let kernel = match client_kernel_share {
        Some(share) => format!(
            "; over the batched cases (ws, sse, tcp) the client threads spent {:.0}% of their CPU in the kernel",
            share * 100.0
        ),
        None => String::new(),
    };
    for t in WEB_TRANSPORTS {
        let id = format!("push.{t}_to_tcp.batched");
        let what = format!("push 64 B batched: {t} msgs/s over the tcp floor's (same run)");
        let per_message = match floor_ratio(cases, t, "per_message") {
            Ok((r, web, floor)) => format!(
                "per_message: {r:.2}× the tcp per_message floor ({web:.0} / {floor:.0} msgs/s)"
            ),
            Err(e) => format!("per_message: not measured ({e})"),
        };
        out.push(match floor_ratio(cases, t, "batched") {
            Ok((r, web, floor)) => {
                PerfTarget::new(&id, &what, "×", Bound::AtLeast, FLOOR_RATIO, Some(r)).with_note(
                    format!("{web:.0} / {floor:.0} msgs/s (medians); {per_message}"),
                )
            }
            Err(e) => PerfTarget::new(&id, &what, "×", Bound::AtLeast, FLOOR_RATIO, None)
                .with_note(format!("{e}; {per_message}")),
        });
    }
    for t in WEB_TRANSPORTS {
        let id = format!("driver.cpu_share.{t}");
        let what = format!("push 64 B batched, {t}: driver CPU over server CPU per message");
        let target = |v| PerfTarget::new(&id, &what, "×", Bound::AtMost, CPU_SHARE, v);
        let case = find(cases, t, "batched");
        let cpu = case.map(|c| {
            (
                c.metrics.client_cpu_s_per_million,
                c.metrics.server_cpu_s_per_million,
            )
        });
        out.push(match cpu {
            Some((Some(client), Some(server))) if server > 0.0 => target(Some(client / server))
                .with_note(format!(
                    "client {client:.3} s, server {server:.3} s of CPU per million messages{kernel}"
                )),
            Some(_) => target(None).with_note(format!(
                "the {t} batched case has no CPU figures (thread CPU time is read from /proc on Linux)"
            )),
            None => target(None).with_note(format!("no {t} batched case in the run")),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pushbench_schema::Integrity;

    fn case(transport: &str, flush: &str, rate: f64, cpu: (f64, f64)) -> CaseResult {
        let mut c = CaseResult::new("push", transport, "stream");
        c.params.flush = Some(flush.to_owned());
        c.params.payload_bytes = Some(64);
        c.metrics.msgs_per_s = Some(rate);
        c.metrics.client_cpu_s_per_million = Some(cpu.0);
        c.metrics.server_cpu_s_per_million = Some(cpu.1);
        c.integrity = Integrity {
            sent: 10,
            received: 10,
            ..Integrity::default()
        };
        c
    }

    fn by_id<'a>(targets: &'a [PerfTarget], id: &str) -> &'a PerfTarget {
        targets.iter().find(|t| t.id == id).expect(id)
    }

    #[test]
    fn ratios_are_against_the_floor_of_the_same_flush_policy() {
        let cases = vec![
            case("tcp", "batched", 1000.0, (1.0, 1.0)),
            case("ws", "batched", 600.0, (0.5, 2.0)),
            case("sse", "batched", 400.0, (3.0, 2.0)),
            case("tcp", "per_message", 200.0, (1.0, 1.0)),
            case("ws", "per_message", 100.0, (1.0, 1.0)),
        ];
        let mut out = Vec::new();
        targets(&cases, Some(0.8), &mut out);
        assert_eq!(out.len(), 4);
        let ws = by_id(&out, "push.ws_to_tcp.batched");
        assert_eq!((ws.value, ws.met), (Some(0.6), true));
        assert!(
            ws.note
                .contains("per_message: 0.50× the tcp per_message floor"),
            "{}",
            ws.note
        );
        let sse = by_id(&out, "push.sse_to_tcp.batched");
        assert_eq!((sse.value, sse.met), (Some(0.4), false));
        assert!(
            sse.note
                .contains("per_message: not measured (no sse per_message case"),
            "{}",
            sse.note
        );
        let share = by_id(&out, "driver.cpu_share.ws");
        assert_eq!((share.value, share.met), (Some(0.25), true));
        assert!(
            share.note.ends_with("spent 80% of their CPU in the kernel"),
            "{}",
            share.note
        );
        let share = by_id(&out, "driver.cpu_share.sse");
        assert_eq!((share.value, share.met), (Some(1.5), false));
    }

    #[test]
    fn a_flagged_case_gives_no_figure_and_says_why() {
        let mut lossy = case("ws", "batched", 600.0, (0.5, 2.0));
        lossy.integrity.received = 9;
        let cases = vec![case("tcp", "batched", 1000.0, (1.0, 1.0)), lossy];
        let mut out = Vec::new();
        targets(&cases, None, &mut out);
        let ws = by_id(&out, "push.ws_to_tcp.batched");
        assert_eq!((ws.value, ws.met), (None, false));
        assert!(
            ws.note.contains("ws batched case is flagged"),
            "{}",
            ws.note
        );
        assert!(ws.note.contains("9 of 10 received"), "{}", ws.note);
    }
}
