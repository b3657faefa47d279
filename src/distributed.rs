//! `serve`, `drive` and `merge`: the server and its clients in separate processes (more
//! connections than one process's open-files limit allows, or a server written in another
//! language), and the lossless combination of what each process measured.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use pushbench::RunWriter;
use pushbench_core::broadcast::unique_topic;
use pushbench_core::{BroadcastSpec, Target, TlsClient, Transport, merge_parts, open_files_limit};
use pushbench_schema::{CaseResult, RunFile};
use pushbench_server::{Access, ServerConfig, ServerTls};

#[derive(clap::Args)]
pub struct ServeArgs {
    /// HTTP address (/ws, /sse, /poll, /rpc, /broadcast), serving HTTP/1.1 and HTTP/2 (h2c with
    /// prior knowledge; h2 by ALPN with --tls); port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// Raw-TCP floor address [default: the HTTP address's IP, a free port].
    #[arg(long, value_name = "ADDR")]
    tcp_bind: Option<SocketAddr>,
    /// Worker threads of the server runtime.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Serve https and wss (and the floor over TLS) with rustls; without --cert/--key, a
    /// self-signed certificate for localhost and 127.0.0.1 is generated at start.
    #[arg(long)]
    tls: bool,
    /// PEM certificate chain to serve (leaf first) instead of a self-signed one.
    #[arg(long, value_name = "FILE", requires = "tls", requires = "key")]
    cert: Option<PathBuf>,
    /// PEM private key of --cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
    /// Require this bearer token on every HTTP request (`Authorization: Bearer T`, or
    /// `?token=T` for browsers); without it, 401.
    #[arg(
        long,
        env = "PUSHBENCH_TOKEN",
        hide_env_values = true,
        value_name = "T"
    )]
    token: Option<String>,
    /// Also let pages from this origin (e.g. https://example.com:8443) open /ws; the server's
    /// own origin and clients sending no Origin always may. Repeatable.
    #[arg(long, value_name = "URL")]
    allow_origin: Vec<String>,
    /// HTTP connections served at once; more are answered 503.
    #[arg(long, default_value_t = ServerConfig::MAX_CONNECTIONS, value_name = "N")]
    max_connections: usize,
    /// Milliseconds a request head may take to arrive before the connection is closed.
    #[arg(long, default_value_t = ServerConfig::HEADER_READ_TIMEOUT.as_millis() as u64, value_name = "MS")]
    header_timeout_ms: u64,
}

/// An origin as browsers send it: `http://` or `https://`, a host, no path.
fn is_origin(text: &str) -> bool {
    let authority = text
        .strip_prefix("http://")
        .or_else(|| text.strip_prefix("https://"));
    authority.is_some_and(|a| !a.is_empty() && !a.trim_end_matches('/').contains('/'))
}

/// The server's TLS identity from `serve`'s flags, and the PEM file clients can trust.
fn serve_tls(args: &ServeArgs) -> anyhow::Result<Option<(ServerTls, PathBuf, bool)>> {
    if !args.tls {
        return Ok(None);
    }
    if let (Some(cert), Some(key)) = (&args.cert, &args.key) {
        let tls = ServerTls::from_pem_files(cert, key)?;
        return Ok(Some((tls, cert.clone(), false)));
    }
    let tls = ServerTls::self_signed(Some(args.bind.ip()))?;
    let path = std::env::temp_dir().join(format!("pushbench-{}-cert.pem", std::process::id()));
    std::fs::write(&path, tls.chain_pem())
        .with_context(|| format!("cannot write the certificate to {}", path.display()))?;
    Ok(Some((tls, path, true)))
}
/// Runs the server until Ctrl-C or SIGTERM; prints one line per listener (`http ADDR` or, with --tls,
/// `https ADDR`; then `tcp ADDR`), and with --tls the certificate's file (`cert PATH`) and
/// SHA-256 fingerprint (`sha256 HEX`).
pub fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    if !args.bind.ip().is_loopback() {
        eprintln!(
            "pushbench: warning: serving on {} (not loopback): anyone who can reach it can load this machine{}",
            args.bind,
            if args.token.is_some() {
                ""
            } else {
                "; --token T makes every HTTP request need the token"
            }
        );
    }
    if let Some(origin) = args.allow_origin.iter().find(|o| !is_origin(o)) {
        anyhow::bail!("--allow-origin {origin}: expected an origin, scheme://host[:port]");
    }
    if args.token.as_deref() == Some("") {
        anyhow::bail!("--token (or PUSHBENCH_TOKEN): the token is empty");
    }
    let config = ServerConfig {
        http: args.bind,
        tcp: Some(
            args.tcp_bind
                .unwrap_or_else(|| SocketAddr::new(args.bind.ip(), 0)),
        ),
        threads: args.threads,
        header_read_timeout: Duration::from_millis(args.header_timeout_ms),
        max_connections: args.max_connections,
        access: Access {
            token: args.token.clone(),
            allowed_origins: args.allow_origin.clone(),
        },
        tls: None,
    };
    let tls = serve_tls(&args)?;
    let config = ServerConfig {
        tls: tls.as_ref().map(|(tls, _, _)| tls.clone()),
        ..config
    };
    let server = pushbench_server::spawn(config)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("{scheme} {}", server.http_addr);
    if let Some(tcp) = server.tcp_addr {
        println!("tcp {tcp}");
    }
    if let Some((tls, path, _)) = &tls {
        println!("cert {}", path.display());
        println!("sha256 {}", tls.fingerprint());
        eprintln!(
            "pushbench: try `curl --cacert {} -N https://{}/sse` (or curl -k); drive with --target https://{} --tls-ca {}",
            path.display(),
            server.http_addr,
            server.http_addr,
            path.display()
        );
    }
    eprintln!(
        "pushbench: serving (open-files limit {}); Ctrl-C stops",
        open_files_limit()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // SIGTERM (kill, a test harness) stops it as cleanly as Ctrl-C.
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            stopped = tokio::signal::ctrl_c() => stopped,
            _ = term.recv() => Ok(()),
        }
    })?;
    server.shutdown();
    if let Some((_, path, true)) = &tls {
        // The generated certificate dies with the server.
        let _ = std::fs::remove_file(path);
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub struct DriveArgs {
    /// The server's HTTP address, e.g. http://127.0.0.1:8080, or https://127.0.0.1:8443 for
    /// a server run with --tls (then give --tls-ca or --insecure).
    #[arg(long)]
    target: String,
    /// With an https target: trust the PEM certificate(s) in FILE (`pushbench serve --tls`
    /// prints where its certificate is).
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// With an https target: accept any certificate (encrypted, but the server is not
    /// authenticated).
    #[arg(long, conflicts_with = "tls_ca")]
    insecure: bool,
    /// The server's raw-TCP floor address (needed for --transport tcp).
    #[arg(long, value_name = "ADDR")]
    tcp_target: Option<SocketAddr>,
    /// Local address to connect from (127.0.0.2, 127.0.0.3, ... give each process its own
    /// ephemeral ports on loopback).
    #[arg(long, value_name = "IP")]
    source: Option<IpAddr>,
    /// Bearer token for a server started with --token.
    #[arg(
        long,
        env = "PUSHBENCH_TOKEN",
        hide_env_values = true,
        value_name = "T"
    )]
    token: Option<String>,
    /// Transport of the clients.
    #[arg(long)]
    transport: Transport,
    /// Scenario written in the result: fanout or latency.
    #[arg(long, default_value = "fanout")]
    scenario: String,
    /// Variant written in the result [default: broadcast for fanout, paced for latency].
    #[arg(long)]
    variant: Option<String>,
    /// Broadcast topic; every process of one case must use the same.
    #[arg(long, default_value = "pushbench-drive")]
    topic: String,
    /// Clients this process runs.
    #[arg(long, default_value_t = 100)]
    clients: u64,
    /// Clients over every process: the server starts broadcasting once this many joined
    /// [default: --clients].
    #[arg(long)]
    subscribers: Option<u64>,
    /// Messages broadcast.
    #[arg(long, default_value_t = 10)]
    messages: u64,
    /// Microseconds between broadcast messages.
    #[arg(long, default_value_t = 100_000)]
    interval_us: u64,
    /// Data characters per message.
    #[arg(long, default_value_t = 64)]
    payload_bytes: usize,
    /// How long a client waits for its next message, ms.
    #[arg(long, default_value_t = 20_000)]
    timeout_ms: u64,
    /// Output directory for this process's run.json.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Lower this process's open-files limit first (to check how the limit is reported).
    #[arg(long, value_name = "N")]
    max_open_files: Option<u64>,
    /// Print nothing but errors.
    #[arg(long, short)]
    quiet: bool,
}

/// A `--target` URL: its address, whether it is https, and its host as written.
pub(crate) fn parse_target(text: &str) -> anyhow::Result<(SocketAddr, bool, String)> {
    let (https, rest) = match text.strip_prefix("https://") {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix("http://").unwrap_or(text)),
    };
    let authority = rest.trim_end_matches('/');
    if authority.contains('/') {
        anyhow::bail!("--target {text}: expected http://HOST:PORT or https://HOST:PORT (no path)");
    }
    let addr = authority
        .to_socket_addrs()
        .with_context(|| format!("--target {text}: not HOST:PORT"))?
        .next()
        .with_context(|| format!("--target {text}: resolves to no address"))?;
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host)
        .trim_matches(|c| c == '[' || c == ']');
    Ok((addr, https, host.to_owned()))
}

/// The drivers' TLS setting for `drive`'s flags; an error when https lacks a trust choice or
/// TLS flags come without https.
fn drive_tls(args: &DriveArgs, https: bool, host: &str) -> anyhow::Result<Option<TlsClient>> {
    let client = match (&args.tls_ca, args.insecure) {
        (Some(ca), _) => TlsClient::from_ca_file(ca)?,
        (None, true) => TlsClient::insecure()?,
        (None, false) if https => anyhow::bail!(
            "--target {}: https needs --tls-ca FILE (the certificate `pushbench serve --tls` printed) or --insecure",
            args.target
        ),
        (None, false) => return Ok(None),
    };
    if !https {
        anyhow::bail!(
            "--tls-ca/--insecure need an https:// --target (got {})",
            args.target
        );
    }
    let client = if host.parse::<IpAddr>().is_ok() {
        client
    } else {
        client.with_server_name(host)?
    };
    Ok(Some(client))
}

/// A `HOST:PORT` flag value as the address it names; `flag` names the flag in errors.
pub(crate) fn parse_addr(flag: &str, text: &str) -> anyhow::Result<SocketAddr> {
    text.to_socket_addrs()
        .with_context(|| format!("{flag} {text}: expected HOST:PORT"))?
        .next()
        .with_context(|| format!("{flag} {text}: resolves to no address"))
}

/// Runs this process's clients of one broadcast case and writes its part of the result.
pub fn drive(args: DriveArgs) -> anyhow::Result<ExitCode> {
    if let Some(limit) = args.max_open_files {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let hard = getrlimit(Resource::Nofile).maximum;
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(limit),
                maximum: hard,
            },
        )
        .context("--max-open-files")?;
    }
    let (addr, https, host) = parse_target(&args.target)?;
    let mut target = Target::new(addr, args.tcp_target);
    target.source = args.source;
    target.token = args.token.clone();
    target.tls = drive_tls(&args, https, &host)?;
    let variant = args.variant.clone().unwrap_or_else(|| {
        if args.scenario == "latency" {
            "paced".into()
        } else {
            "broadcast".into()
        }
    });
    let spec = BroadcastSpec {
        scenario: args.scenario.clone(),
        variant,
        topic: args.topic.clone(),
        clients: args.clients,
        subscribers: args.subscribers.unwrap_or(args.clients),
        n: args.messages,
        interval_us: args.interval_us,
        payload: args.payload_bytes,
        timeout_ms: args.timeout_ms,
        ..BroadcastSpec::default()
    };
    let drivers = pushbench::drivers();
    let driver = drivers
        .get(args.transport)
        .with_context(|| format!("no driver for {}", args.transport))?;
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from("results").join(unique_topic(&format!("drive-{}", args.transport)))
    });
    let config = serde_json::json!({
        "scenario": "drive",
        "target": args.target,
        "tcp_target": args.tcp_target.map(|a| a.to_string()),
        "source": args.source.map(|a| a.to_string()),
        "tls": target.tls.is_some(),
        "transport": args.transport,
        "topic": args.topic,
        "clients": spec.clients,
        "subscribers": spec.subscribers,
        "messages": spec.n,
        "interval_us": spec.interval_us,
        "payload_bytes": spec.payload,
        "clock": "CLOCK_MONOTONIC of the host",
    });
    let mut writer = RunWriter::create(&out, config)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let measured = runtime.block_on(pushbench_core::run_broadcast_case(driver, &target, &spec));
    let mut case = measured.case;
    if target.tls.is_some() {
        case.params.tls = Some(true);
    }
    let error = case.error.clone();
    writer.push(case)?;
    let file = writer.finish()?;
    if !args.quiet {
        print!("{}", pushbench::summary_table(&file));
        println!("wrote {}/run.json", out.display());
    }
    match error {
        Some(e) => {
            eprintln!("pushbench drive: {e}");
            Ok(ExitCode::FAILURE)
        }
        None => Ok(ExitCode::SUCCESS),
    }
}

#[derive(clap::Args)]
pub struct MergeArgs {
    /// Run directories (or run.json files) to combine.
    #[arg(required = true, num_args = 1..)]
    dirs: Vec<PathBuf>,
    /// Where to write the merged run.json and cases.csv.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// What makes cases parts of the same case: everything but the client and process counts
/// (the server and the network measured included: cases of different servers or emulated
/// networks never merge, nor a browser's with the Rust client's).
fn merge_key(case: &CaseResult) -> String {
    let p = &case.params;
    format!(
        "{:?}/{:?}/{}/{}/{}/{:?}/{:?}/{:?}/{:?}/{:?}/{:?}/{:?}/{:?}",
        p.server,
        p.network,
        case.scenario,
        case.transport,
        case.variant,
        p.n,
        p.block_size,
        p.flush,
        p.payload_bytes,
        p.rate,
        p.interval_us,
        p.tls,
        p.client
            .as_deref()
            .filter(|&c| c != pushbench::browser::RUST_CLIENT)
    )
}

/// Merges the cases of several runs: cases with the same scenario, transport, variant and
/// parameters (client counts aside) become one, with counts summed and histograms merged.
pub fn merge(args: MergeArgs) -> anyhow::Result<ExitCode> {
    let files = args
        .dirs
        .iter()
        .map(|d| RunFile::read(d).map_err(anyhow::Error::from))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // A case merges with the same case of *other* files (the parts driver processes wrote),
    // never with a case of its own file: one run's fanout cases at 100 and 1000 clients share
    // a key but are different cases.
    let mut groups: Vec<(String, Vec<usize>, Vec<CaseResult>)> = Vec::new();
    for (index, file) in files.iter().enumerate() {
        for case in &file.cases {
            let key = merge_key(case);
            match groups
                .iter_mut()
                .find(|(k, from, _)| *k == key && !from.contains(&index))
            {
                Some((_, from, parts)) => {
                    from.push(index);
                    parts.push(case.clone());
                }
                None => groups.push((key, vec![index], vec![case.clone()])),
            }
        }
    }
    let mut info = files[0].run.clone();
    info.id = format!("merged-{}", info.id);
    info.started_at = files
        .iter()
        .map(|f| f.run.started_at.clone())
        .min()
        .unwrap_or_default();
    info.finished_at = files
        .iter()
        .map(|f| f.run.finished_at.clone())
        .max()
        .unwrap_or_default();
    info.complete = files.iter().all(|f| f.run.complete);
    let sources: Vec<serde_json::Value> = args
        .dirs
        .iter()
        .zip(&files)
        .map(|(dir, f)| {
            serde_json::json!({"dir": dir.display().to_string(), "run_id": f.run.id, "config": f.run.config})
        })
        .collect();
    info.config = serde_json::json!({"scenario": "merge", "merged_from": sources});
    let mut merged = RunFile::new(info);
    for (key, _, parts) in &groups {
        if let [only] = parts.as_slice() {
            // Nothing to combine: kept as measured (merge_parts would recompute its figures).
            merged.cases.push(only.clone());
            continue;
        }
        let measurement = merge_parts(parts).map_err(|e| anyhow::anyhow!("{key}: {e}"))?;
        merged.cases.push(measurement.case);
    }
    merged.write(&args.out)?;
    print!("{}", pushbench::summary_table(&merged));
    println!(
        "merged {} run(s), {} case(s) into {}",
        files.len(),
        merged.cases.len(),
        args.out.display()
    );
    Ok(crate::flagged_exit(&merged))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_browser_case_never_merges_with_the_rust_clients() {
        let mut rust = CaseResult::new("study", "ws", "sequential");
        rust.params.n = Some(100);
        let mut named = rust.clone();
        named.params.client = Some("rust".into());
        let mut browser = rust.clone();
        browser.params.client = Some("browser".into());
        assert_eq!(merge_key(&rust), merge_key(&named), "absent means rust");
        assert_ne!(merge_key(&rust), merge_key(&browser));
    }
}
