//! The transports pushbench compares.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A way of carrying messages between server and client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// WebSocket (`GET /ws`, RFC 6455): one frame per message, both ways.
    Ws,
    /// Server-Sent Events (`GET /sse`): events down one stream, calls up as `POST /rpc`.
    Sse,
    /// Long polling (`GET /poll` kept outstanding): replies in poll responses, calls as `POST /rpc`.
    Longpoll,
    /// The raw-TCP floor: 4-byte big-endian length prefix, then the message.
    Tcp,
}

impl Transport {
    /// Every transport, in report order.
    pub const ALL: [Transport; 4] = [
        Transport::Ws,
        Transport::Sse,
        Transport::Longpoll,
        Transport::Tcp,
    ];

    /// The stable id used in results and on the command line.
    pub fn id(self) -> &'static str {
        match self {
            Transport::Ws => "ws",
            Transport::Sse => "sse",
            Transport::Longpoll => "longpoll",
            Transport::Tcp => "tcp",
        }
    }

    /// True when binary messages travel as bytes (WS binary frames, tcp); SSE and long
    /// polling are text-only and carry them as base64.
    pub fn carries_binary(self) -> bool {
        matches!(self, Transport::Ws | Transport::Tcp)
    }

    /// True for the transports a browser can use (all but the TCP floor).
    pub fn is_web(self) -> bool {
        self != Transport::Tcp
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// A transport name that is not one of [`Transport::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown transport `{0}` (expected one of: ws, sse, longpoll, tcp)")]
pub struct UnknownTransport(pub String);

impl FromStr for Transport {
    type Err = UnknownTransport;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Transport::ALL
            .into_iter()
            .find(|t| t.id() == s)
            .ok_or_else(|| UnknownTransport(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_unknown_names_are_named() {
        for t in Transport::ALL {
            assert_eq!(t.id().parse::<Transport>(), Ok(t));
        }
        let err = "quic".parse::<Transport>().unwrap_err().to_string();
        assert!(err.contains("`quic`") && err.contains("longpoll"), "{err}");
    }
}
