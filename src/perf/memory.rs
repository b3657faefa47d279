//! Server memory per idle connection: `pushbench serve` runs as a child process, this process
//! opens N idle broadcast subscribers (`GET /ws?topic=T` upgraded, or `GET /sse?topic=T` with its
//! response headers received) and the server's `VmRSS` growth is divided by N.
//!
//! The connections are opened with plain tokio sockets (an HTTP/1.1 request written by hand, the
//! response read up to the end of its headers) so the client side costs little and adds no
//! crate. The server confirms it holds them all through `GET /stats` (`subscribers_open`).

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use pushbench_schema::{Bound, PerfTarget};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// The issue-6 bound: server memory per idle connection, KiB.
pub const IDLE_TARGET_KIB: f64 = 32.0;

/// Which kind of idle connection to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PerfTransport {
    /// A WebSocket broadcast subscriber, `GET /ws?topic=T`, upgrade completed.
    Ws,
    /// An SSE broadcast subscriber, `GET /sse?topic=T`, response headers received.
    Sse,
}

impl PerfTransport {
    /// `ws` or `sse`, as in target ids.
    pub fn name(self) -> &'static str {
        match self {
            PerfTransport::Ws => "ws",
            PerfTransport::Sse => "sse",
        }
    }

    fn request(self, host: SocketAddr) -> String {
        match self {
            PerfTransport::Ws => format!(
                "GET /ws?topic=idle HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ),
            PerfTransport::Sse => format!(
                "GET /sse?topic=idle HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n"
            ),
        }
    }

    fn expected_status(self) -> &'static str {
        match self {
            PerfTransport::Ws => "101",
            PerfTransport::Sse => "200",
        }
    }
}

impl fmt::Display for PerfTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What [`idle_memory`] measured.
#[derive(Debug, Clone, PartialEq)]
pub struct IdleMemory {
    /// The transport of the idle connections.
    pub transport: PerfTransport,
    /// Idle connections held (besides the warm-up one).
    pub connections: u64,
    /// Server `VmRSS` after it listened and served one warm-up connection, bytes.
    pub baseline_rss: u64,
    /// Server `VmRSS` with all connections held, bytes.
    pub loaded_rss: u64,
    /// `(loaded_rss - baseline_rss) / connections`, bytes.
    pub bytes_per_connection: f64,
}

impl IdleMemory {
    /// The figure as an issue-6 target: `memory.idle.<transport>` ≤ 32 KiB.
    pub fn target(&self) -> PerfTarget {
        idle_target(
            self.transport,
            self.connections,
            Some(self.bytes_per_connection / 1024.0),
        )
        .with_note(format!(
            "pushbench serve as a child process, 1 worker thread; VmRSS {:.1} MiB idle (after one warm-up connection), {:.1} MiB with {} subscribers",
            self.baseline_rss as f64 / 1048576.0,
            self.loaded_rss as f64 / 1048576.0,
            self.connections
        ))
    }

    /// The target of a measurement that failed: no value, the error as its note.
    pub fn unmeasured(
        transport: PerfTransport,
        connections: u64,
        error: &anyhow::Error,
    ) -> PerfTarget {
        idle_target(transport, connections, None).with_note(format!("not measured: {error:#}"))
    }
}

fn idle_target(transport: PerfTransport, connections: u64, kib: Option<f64>) -> PerfTarget {
    PerfTarget::new(
        &format!("memory.idle.{transport}"),
        &format!(
            "server memory per idle {} connection (VmRSS growth at {connections} connections / {connections})",
            transport.name().to_uppercase(),
        ),
        "KiB",
        Bound::AtMost,
        IDLE_TARGET_KIB,
        kib,
    )
}

/// `VmRSS` in bytes from the text of a `/proc/PID/status` file.
pub fn parse_vmrss(status: &str) -> anyhow::Result<u64> {
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS line in the status file")?;
    let mut words = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = words
        .next()
        .context("VmRSS line without a value")?
        .parse()
        .with_context(|| format!("VmRSS value not a number: `{line}`"))?;
    match words.next() {
        Some("kB") => Ok(value * 1024),
        other => anyhow::bail!("VmRSS unit {other:?}, expected kB: `{line}`"),
    }
}

/// The resident memory of process `pid`, bytes (`VmRSS` of `/proc/PID/status`).
pub fn read_vmrss(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    parse_vmrss(&text).with_context(|| format!("in {path}"))
}

/// Bytes per connection: `(loaded - baseline) / connections`, negative if memory shrank.
pub fn bytes_per_connection(baseline: u64, loaded: u64, connections: u64) -> anyhow::Result<f64> {
    anyhow::ensure!(connections > 0, "no connections to divide by");
    Ok((loaded as f64 - baseline as f64) / connections as f64)
}

/// A `pushbench serve` child process, killed when dropped.
pub(crate) struct ServerChild {
    pub(crate) child: Child,
    pub(crate) pid: u32,
    pub(crate) http: SocketAddr,
}

impl ServerChild {
    /// Starts `exe serve` on a free loopback port with `threads` runtime worker threads.
    pub(crate) async fn start(exe: &Path, threads: usize) -> anyhow::Result<Self> {
        let mut child = Command::new(exe)
            .args(["serve", "--bind", "127.0.0.1:0", "--threads"])
            .arg(threads.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {} serve", exe.display()))?;
        let pid = child.id().context("the server exited at once")?;
        let stdout = child.stdout.take().context("no stdout from the server")?;
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .context("the server printed no address within 20 s")??
            .context("the server exited before printing its address")?;
        let http = first
            .strip_prefix("http ")
            .with_context(|| format!("unexpected first line from the server: `{first}`"))?
            .parse()
            .with_context(|| format!("bad address in `{first}`"))?;
        // Keep reading its stdout so the pipe never fills.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(ServerChild { child, pid, http })
    }
}

/// Opens one idle subscriber and returns its socket once the response headers are in.
async fn open_idle(transport: PerfTransport, server: SocketAddr) -> anyhow::Result<TcpStream> {
    let mut stream = TcpStream::connect(server).await?;
    stream
        .write_all(transport.request(server).as_bytes())
        .await?;
    let head = read_head(&mut stream).await?;
    let status = head.split_whitespace().nth(1).unwrap_or("");
    anyhow::ensure!(
        status == transport.expected_status(),
        "{transport} subscriber answered `{}`",
        head.lines().next().unwrap_or("")
    );
    Ok(stream)
}

/// Reads up to and including the blank line ending a response head (a few bytes past it may be
/// consumed too: an idle subscriber's later bytes do not matter here).
async fn read_head(stream: &mut TcpStream) -> anyhow::Result<String> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    loop {
        let n = stream.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "connection closed before the response head ended");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(String::from_utf8_lossy(&buf[..end]).into_owned());
        }
        anyhow::ensure!(buf.len() < 16 * 1024, "response head over 16 KiB");
    }
}

/// `GET /stats` of the server: its `subscribers_open` count.
pub async fn subscribers_open(server: SocketAddr) -> anyhow::Result<u64> {
    let mut stream = TcpStream::connect(server).await?;
    let request = format!("GET /stats HTTP/1.1\r\nHost: {server}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .context("GET /stats: no response body")?;
    let json: serde_json::Value =
        serde_json::from_str(body.trim()).with_context(|| format!("GET /stats: `{body}`"))?;
    json["subscribers_open"]
        .as_u64()
        .context("GET /stats: no subscribers_open")
}

/// Waits until the server reports `want` open subscribers (at most `limit`).
async fn wait_subscribers(server: SocketAddr, want: u64, limit: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let open = subscribers_open(server).await?;
        if open == want {
            return Ok(());
        }
        anyhow::ensure!(
            start.elapsed() < limit,
            "the server holds {open} subscribers, expected {want}, after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads the server's RSS until two readings 300 ms apart agree within 1 % (at most 5 s): the
/// allocator may still be settling just after the last connection.
async fn stable_rss(pid: u32) -> anyhow::Result<u64> {
    let mut last = read_vmrss(pid)?;
    for _ in 0..16 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = read_vmrss(pid)?;
        if now.abs_diff(last) * 100 <= last {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}

/// Starts `exe serve` (the pushbench binary) as a child, holds `connections` idle `transport`
/// subscribers on it and measures its memory per connection. Opens 256 connections at a time.
pub async fn idle_memory(
    exe: &Path,
    transport: PerfTransport,
    connections: u64,
) -> anyhow::Result<IdleMemory> {
    anyhow::ensure!(connections > 0, "--connections: expected at least 1");
    let server = ServerChild::start(exe, 1).await?;
    let addr = server.http;
    // Warm-up: one connection pays the first-use costs (allocator arenas, the topic).
    let _warm = open_idle(transport, addr)
        .await
        .context("warm-up connection")?;
    wait_subscribers(addr, 1, Duration::from_secs(10)).await?;
    let baseline_rss = stable_rss(server.pid).await?;
    let mut held = Vec::with_capacity(connections as usize);
    while (held.len() as u64) < connections {
        let batch = (connections - held.len() as u64).min(256);
        let opened =
            futures_util::future::try_join_all((0..batch).map(|_| open_idle(transport, addr)))
                .await
                .with_context(|| {
                    format!("opening connection {} of {connections}", held.len() + 1)
                })?;
        held.extend(opened);
    }
    wait_subscribers(addr, connections + 1, Duration::from_secs(30)).await?;
    let loaded_rss = stable_rss(server.pid).await?;
    let bytes_per_connection = bytes_per_connection(baseline_rss, loaded_rss, connections)?;
    drop(held);
    drop(server.child);
    Ok(IdleMemory {
        transport,
        connections,
        baseline_rss,
        loaded_rss,
        bytes_per_connection,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmrss_is_read_in_bytes() {
        let status =
            "Name:\tpushbench\nVmPeak:\t  9000 kB\nVmRSS:\t    7364 kB\nRssAnon:\t 100 kB\n";
        assert_eq!(parse_vmrss(status).unwrap(), 7364 * 1024);
    }

    #[test]
    fn vmrss_errors_name_what_is_wrong() {
        let missing = parse_vmrss("Name:\tx\n").unwrap_err().to_string();
        assert!(missing.contains("no VmRSS"), "{missing}");
        let unit = format!("{:#}", parse_vmrss("VmRSS:\t 12 MB\n").unwrap_err());
        assert!(unit.contains("expected kB"), "{unit}");
        let number = format!("{:#}", parse_vmrss("VmRSS:\t x kB\n").unwrap_err());
        assert!(number.contains("not a number"), "{number}");
    }

    #[test]
    fn own_vmrss_is_plausible() {
        let rss = read_vmrss(std::process::id()).unwrap();
        assert!(rss > 1024 * 1024 && rss < 64 << 30, "{rss}");
    }

    #[test]
    fn per_connection_arithmetic() {
        assert_eq!(bytes_per_connection(1000, 33_768, 2).unwrap(), 16_384.0);
        assert_eq!(bytes_per_connection(2000, 1000, 10).unwrap(), -100.0);
        assert!(bytes_per_connection(1, 2, 0).is_err());
    }

    #[test]
    fn target_is_in_kib_against_32() {
        let m = IdleMemory {
            transport: PerfTransport::Sse,
            connections: 10_000,
            baseline_rss: 8 << 20,
            loaded_rss: (8 << 20) + 10_000 * 20 * 1024,
            bytes_per_connection: 20.0 * 1024.0,
        };
        let t = m.target();
        assert_eq!(t.id, "memory.idle.sse");
        assert_eq!(t.value, Some(20.0));
        assert!(t.met);
    }
}
