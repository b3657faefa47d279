//! Emulated networks (`run --network rtt=50ms,loss=1%,rate=10mbit`): the spec, and the
//! namespaces of `scripts/netns.sh` (client, router with the delay line, server) brought up
//! and always torn down again.
//!
//! The client and the server run in their own namespaces, so every packet between them
//! crosses the router: its delay line (`pushbench delayline`) holds each packet rtt/2 per
//! direction (TCP handshakes included), nftables drops `loss` of the packets per direction,
//! and tc tbf limits each direction to `rate`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::str::FromStr;

/// `scripts/netns.sh`, built in so that `run --network` works from any directory.
pub const SCRIPT: &str = include_str!("../scripts/netns.sh");

/// The namespace the clients run in.
pub const CLIENT_NS: &str = "pb-client";
/// The namespace the server runs in.
pub const SERVER_NS: &str = "pb-server";
/// Where scripts/netns.sh keeps the delay line's pid and log, and `network` while it is up.
pub const STATE_DIR: &str = "/run/pushbench-netns";
/// The server's address inside [`SERVER_NS`].
pub const SERVER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 77, 2, 2));

/// One emulated network: round-trip delay added, packet loss per direction, rate limit per
/// direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkSpec {
    /// Round-trip time added, µs (each direction gets half).
    pub rtt_us: u64,
    /// Packets dropped per direction, in hundredths of a percent (100 = 1 %).
    pub loss_basis_points: u32,
    /// Rate limit per direction, bits per second; `None` for unlimited.
    pub rate_bps: Option<u64>,
}

/// A `--network` value that does not parse; the message names the bad key or value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadNetwork(pub String);

impl std::error::Error for BadNetwork {}

impl fmt::Display for BadNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for NetworkSpec {
    type Err = BadNetwork;

    /// `rtt=50ms,loss=1%,rate=10mbit`; every key optional (rtt 0ms, loss 0%, rate none),
    /// none repeated.
    fn from_str(text: &str) -> Result<NetworkSpec, BadNetwork> {
        let bad = |msg: String| BadNetwork(format!("--network {text}: {msg}"));
        let mut spec = NetworkSpec {
            rtt_us: 0,
            loss_basis_points: 0,
            rate_bps: None,
        };
        let mut seen = Vec::new();
        for item in text.split(',') {
            let Some((key, value)) = item.split_once('=') else {
                return Err(bad(format!(
                    "`{item}` is not KEY=VALUE (keys: rtt, loss, rate)"
                )));
            };
            let (key, value) = (key.trim(), value.trim());
            if seen.contains(&key) {
                return Err(bad(format!("`{key}` given twice")));
            }
            seen.push(key);
            match key {
                "rtt" => {
                    spec.rtt_us = parse_duration_us(value).ok_or_else(|| {
                        bad(format!("rtt `{value}`: expected e.g. 50ms, 800us or 1s"))
                    })?;
                    if spec.rtt_us > 10_000_000 {
                        return Err(bad(format!("rtt `{value}`: at most 10s")));
                    }
                }
                "loss" => {
                    spec.loss_basis_points = parse_percent(value).ok_or_else(|| {
                        bad(format!(
                            "loss `{value}`: expected a percentage from 0% to 100% in steps of 0.01% (e.g. 1%)"
                        ))
                    })?;
                }
                "rate" => {
                    spec.rate_bps = if value == "none" {
                        None
                    } else {
                        Some(parse_rate(value).ok_or_else(|| {
                            bad(format!(
                                "rate `{value}`: expected a whole number of kbit, mbit or gbit (e.g. 10mbit), or none"
                            ))
                        })?)
                    };
                }
                _ => {
                    return Err(bad(format!("unknown key `{key}` (keys: rtt, loss, rate)")));
                }
            }
        }
        Ok(spec)
    }
}

impl fmt::Display for NetworkSpec {
    /// The normalised form recorded in `params.network`: `rtt=50ms,loss=0%,rate=none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rtt={},loss=", self.rtt())?;
        let (whole, hundredths) = (self.loss_basis_points / 100, self.loss_basis_points % 100);
        if hundredths == 0 {
            write!(f, "{whole}%")?;
        } else {
            let frac = format!("{hundredths:02}");
            write!(f, "{whole}.{}%", frac.trim_end_matches('0'))?;
        }
        write!(f, ",rate={}", self.rate())
    }
}

impl NetworkSpec {
    /// The round trip added, as `50ms` (or `500us` below a whole millisecond).
    pub fn rtt(&self) -> String {
        if self.rtt_us % 1000 == 0 {
            format!("{}ms", self.rtt_us / 1000)
        } else {
            format!("{}us", self.rtt_us)
        }
    }

    /// The rate limit as tc writes it (`10mbit`), or `none`.
    pub fn rate(&self) -> String {
        match self.rate_bps {
            None => "none".to_owned(),
            Some(b) if b % 1_000_000_000 == 0 => format!("{}gbit", b / 1_000_000_000),
            Some(b) if b % 1_000_000 == 0 => format!("{}mbit", b / 1_000_000),
            Some(b) => format!("{}kbit", b / 1000),
        }
    }

    /// The arguments of `scripts/netns.sh up` for this network.
    pub fn script_args(&self) -> Vec<String> {
        let loss = self.to_string();
        let loss = loss
            .split(',')
            .find_map(|kv| kv.strip_prefix("loss="))
            .unwrap_or("0%")
            .to_owned();
        vec![
            "--rtt".into(),
            self.rtt(),
            "--loss".into(),
            loss,
            "--rate".into(),
            self.rate(),
        ]
    }
}

fn parse_duration_us(text: &str) -> Option<u64> {
    let (number, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1e6)
    } else {
        return None;
    };
    let value: f64 = number.parse().ok()?;
    (value.is_finite() && value >= 0.0 && !number.starts_with('+'))
        .then(|| (value * scale).round() as u64)
}

fn parse_percent(text: &str) -> Option<u32> {
    let value: f64 = text.strip_suffix('%')?.parse().ok()?;
    let basis = value * 100.0;
    ((0.0..=10_000.0).contains(&basis) && (basis - basis.round()).abs() < 1e-6)
        .then(|| basis.round() as u32)
}

fn parse_rate(text: &str) -> Option<u64> {
    let (number, scale) = [
        ("kbit", 1_000),
        ("mbit", 1_000_000),
        ("gbit", 1_000_000_000),
    ]
    .into_iter()
    .find_map(|(unit, scale)| text.strip_suffix(unit).map(|n| (n, scale)))?;
    let value: u64 = number.parse().ok()?;
    (value > 0).then_some(value * scale)
}

/// What `run --network` needs from this machine, checked before anything is set up: root,
/// iproute2's `ip`, bash and /dev/net/tun. The error says what is missing and how to get it.
pub fn check_host() -> Result<(), String> {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        });
    if uid.as_deref() != Some("0") {
        return Err("--network needs root: it creates network namespaces, veth pairs and a TUN device (run as root or with sudo)".into());
    }
    for (tool, hint) in [
        ("ip", "iproute2: scripts/install-netns.sh installs it"),
        ("bash", "bash"),
    ] {
        let found = Command::new(tool)
            .arg(if tool == "ip" { "-V" } else { "--version" })
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return Err(format!("--network needs `{tool}` ({hint})"));
        }
    }
    if !Path::new("/dev/net/tun").exists() {
        return Err(
            "--network needs /dev/net/tun (the tun kernel module) for the delay line".into(),
        );
    }
    Ok(())
}

/// Runs the built-in `scripts/netns.sh` with `args`; its messages go to this stderr.
pub fn script(args: &[String]) -> Result<(), String> {
    let status = Command::new("bash")
        .arg("-c")
        .arg(SCRIPT)
        .arg("netns.sh")
        .args(args)
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run bash for scripts/netns.sh: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "scripts/netns.sh {} failed ({status})",
            args.join(" ")
        ))
    }
}

/// The namespaces of one emulated network, up while this lives; dropping it runs
/// `scripts/netns.sh down` (on errors and interruptions too).
#[derive(Debug)]
pub struct Netns {
    spec: NetworkSpec,
}

impl Netns {
    /// Brings the namespaces up for `spec`, with `exe delayline` as the delay line.
    pub fn up(spec: NetworkSpec, exe: &Path) -> Result<Netns, String> {
        let mut args = vec!["up".to_owned()];
        args.extend(spec.script_args());
        args.push("--bin".into());
        args.push(exe.display().to_string());
        // Down first if `up` fails half-way: the script tears down itself, this is belt and braces.
        let netns = Netns { spec };
        script(&args)?;
        Ok(netns)
    }

    /// The network these namespaces emulate.
    pub fn spec(&self) -> NetworkSpec {
        self.spec
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = script(&["down".to_owned()]) {
            eprintln!("pushbench: {e}; remove the namespaces with `scripts/netns.sh down`");
        }
    }
}

/// `exe` run inside network namespace `ns` (`ip netns exec NS EXE`).
pub fn in_namespace(ns: &str, exe: &Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new("ip");
    command.args(["netns", "exec", ns]).arg(exe);
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<NetworkSpec, String> {
        text.parse::<NetworkSpec>().map_err(|e| e.to_string())
    }

    #[test]
    fn parses_every_key_and_normalises() {
        let spec = parse("rtt=50ms,loss=1%,rate=10mbit").unwrap();
        assert_eq!(
            spec,
            NetworkSpec {
                rtt_us: 50_000,
                loss_basis_points: 100,
                rate_bps: Some(10_000_000)
            }
        );
        assert_eq!(spec.to_string(), "rtt=50ms,loss=1%,rate=10mbit");
        assert_eq!(
            parse("rtt=50ms").unwrap().to_string(),
            "rtt=50ms,loss=0%,rate=none"
        );
        assert_eq!(
            parse("loss=0.5%,rtt=0.25s").unwrap().to_string(),
            "rtt=250ms,loss=0.5%,rate=none"
        );
        assert_eq!(
            parse("rtt=800us").unwrap().to_string(),
            "rtt=800us,loss=0%,rate=none"
        );
        assert_eq!(parse("rate=1500kbit").unwrap().rate_bps, Some(1_500_000));
        assert_eq!(parse("rate=none,rtt=0ms").unwrap().rate_bps, None);
        assert_eq!(
            parse("rtt=25ms,loss=2.25%").unwrap().script_args(),
            ["--rtt", "25ms", "--loss", "2.25%", "--rate", "none"]
        );
    }

    #[test]
    fn bad_input_names_the_key_or_value() {
        for (text, expected) in [
            ("rtt=50", "rtt `50`"),
            ("rtt=-5ms", "rtt `-5ms`"),
            ("rtt=20s", "at most 10s"),
            ("loss=1", "loss `1`"),
            ("loss=101%", "loss `101%`"),
            ("loss=0.001%", "loss `0.001%`"),
            ("rate=10mbps", "rate `10mbps`"),
            ("rate=0mbit", "rate `0mbit`"),
            ("delay=5ms", "unknown key `delay`"),
            ("rtt=5ms,rtt=6ms", "`rtt` given twice"),
            ("rtt50ms", "`rtt50ms` is not KEY=VALUE"),
            ("", "`` is not KEY=VALUE"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
            assert!(err.starts_with(&format!("--network {text}:")), "{err}");
        }
    }
}
