//! TLS for the server: the identity it presents ([`ServerTls`]: a self-signed certificate made
//! at start, or PEM files), and [`TlsListener`], an [`axum::serve::Listener`] that accepts TCP,
//! runs each handshake on its own task (one slow handshake never holds up the others) and
//! yields the finished TLS streams. The HTTP app and the raw-TCP floor both serve through it.

use std::fmt::{self, Write as _};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::Listener;
use pushbench_core::tls::{ALPN_H2, ALPN_HTTP1, provider, read_certificates};
use pushbench_core::{TlsClient, TlsError};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a client may take to finish its handshake before the server drops it.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Finished handshakes waiting for the server to take them.
const READY_QUEUE: usize = 256;
/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;
/// What a plain-HTTP request to a TLS port gets back, so the client's error says why.
const PLAIN_HTTP_ANSWER: &str =
    "this port speaks TLS: use https:// or wss:// (the server runs with --tls)\n";

/// The certificate chain and key the server presents, ready for rustls.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<rustls::ServerConfig>,
    chain: Vec<CertificateDer<'static>>,
    self_signed: bool,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("fingerprint", &self.fingerprint())
            .field("self_signed", &self.self_signed)
            .finish_non_exhaustive()
    }
}

impl PartialEq for ServerTls {
    fn eq(&self, other: &Self) -> bool {
        self.chain == other.chain
    }
}

impl Eq for ServerTls {}

impl ServerTls {
    /// A fresh self-signed certificate (ECDSA P-256) for `localhost`, `127.0.0.1`, `::1` and
    /// `ip` when given (the address served on, if it is none of those).
    pub fn self_signed(ip: Option<IpAddr>) -> Result<ServerTls, TlsError> {
        let mut names = vec!["localhost".to_owned(), "127.0.0.1".into(), "::1".into()];
        if let Some(ip) = ip.filter(|ip| !ip.is_unspecified() && !ip.is_loopback()) {
            names.push(ip.to_string());
        }
        let generated = rcgen::generate_simple_self_signed(names)
            .map_err(|e| TlsError::Generate(e.to_string()))?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            generated.signing_key.serialize_der(),
        ));
        let mut tls = ServerTls::new(vec![generated.cert.der().clone()], key)?;
        tls.self_signed = true;
        Ok(tls)
    }

    /// The chain of the PEM file `cert` (leaf first) and the private key of the PEM file `key`
    /// (`--cert FILE --key FILE`).
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<ServerTls, TlsError> {
        let chain = read_certificates(cert)?;
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Pem {
            what: "private key",
            path: key.to_owned(),
            reason: e.to_string(),
        })?;
        ServerTls::new(chain, key)
    }

    fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<ServerTls, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain.clone(), key)?;
        // HTTP/2 first, as browsers prefer it; WebSocket upgrades need HTTP/1.1, which clients
        // that offer only `http/1.1` (every pushbench driver but HTTP/2 SSE) still get.
        config.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP1.to_vec()];
        Ok(ServerTls {
            config: Arc::new(config),
            chain,
            self_signed: false,
        })
    }

    /// Whether the certificate was generated at start.
    pub fn is_self_signed(&self) -> bool {
        self.self_signed
    }

    /// The certificate chain, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The chain as PEM, for a file clients can trust (`drive --tls-ca FILE`, `curl --cacert`).
    pub fn chain_pem(&self) -> String {
        let mut pem = String::new();
        for cert in &self.chain {
            pem.push_str("-----BEGIN CERTIFICATE-----\n");
            let encoded =
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, cert.as_ref());
            for line in encoded.as_bytes().chunks(64) {
                pem.push_str(&String::from_utf8_lossy(line));
                pem.push('\n');
            }
            pem.push_str("-----END CERTIFICATE-----\n");
        }
        pem
    }

    /// SHA-256 of the leaf certificate, as colon-separated hex (what browsers show).
    pub fn fingerprint(&self) -> String {
        let Some(leaf) = self.chain.first() else {
            return String::new();
        };
        let digest = ring::digest::digest(&ring::digest::SHA256, leaf.as_ref());
        let mut out = String::with_capacity(95);
        for (i, byte) in digest.as_ref().iter().enumerate() {
            if i > 0 {
                out.push(':');
            }
            let _ = write!(out, "{byte:02X}");
        }
        out
    }

    /// A driver setting that trusts this chain.
    pub fn client(&self) -> Result<TlsClient, TlsError> {
        TlsClient::trusting(&self.chain)
    }

    fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.clone())
    }
}

/// A TCP listener that yields TLS streams; handshakes run on their own tasks.
#[derive(Debug)]
pub struct TlsListener {
    local_addr: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    accepting: JoinHandle<()>,
}

impl TlsListener {
    /// Starts accepting on `listener` (call inside the server's runtime). Every accepted
    /// socket gets TCP_NODELAY, as every pushbench socket does.
    pub fn new(listener: TcpListener, tls: &ServerTls) -> io::Result<TlsListener> {
        let local_addr = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(READY_QUEUE);
        let acceptor = tls.acceptor();
        let accepting = tokio::spawn(accept_loop(listener, acceptor, tx));
        Ok(TlsListener {
            local_addr,
            ready,
            accepting,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

async fn accept_loop(
    mut listener: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        // axum's own TcpListener impl retries accept errors (and waits out EMFILE).
        let (stream, addr) = Listener::accept(&mut listener).await;
        let _ = stream.set_nodelay(true);
        let (acceptor, ready) = (acceptor.clone(), ready.clone());
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(stream, &acceptor));
            if let Ok(Some(tls)) = handshake.await {
                let _ = ready.send((tls, addr)).await;
            }
        });
    }
}

/// Runs the server handshake. A client speaking plain HTTP gets a 400 that says this port
/// speaks TLS; anything else that is not a TLS handshake is closed.
async fn handshake(mut stream: TcpStream, acceptor: &TlsAcceptor) -> Option<TlsStream<TcpStream>> {
    let mut first = [0u8; 1];
    let n = stream.peek(&mut first).await.ok()?;
    if n == 0 {
        return None;
    }
    if first[0] != TLS_HANDSHAKE_RECORD {
        if first[0].is_ascii_uppercase() {
            // Read the request head first: closing with it unread would reset the connection
            // and the client might never see the answer.
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let answer = format!(
                "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{PLAIN_HTTP_ANSWER}",
                PLAIN_HTTP_ANSWER.len()
            );
            let _ = stream.write_all(answer.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
        return None;
    }
    acceptor.accept(stream).await.ok()
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept loop only ends with the listener: nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn pem_files_load_into_the_same_chain_and_a_missing_key_is_named() {
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let dir = std::env::temp_dir().join(format!("pushbench-tls-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, generated.cert.pem()).unwrap();
        std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();

        let tls = ServerTls::from_pem_files(&cert, &key).unwrap();
        assert!(!tls.is_self_signed());
        assert_eq!(tls.chain(), [generated.cert.der().clone()]);
        // chain_pem writes what read_certificates reads back.
        let again = dir.join("again.pem");
        std::fs::write(&again, tls.chain_pem()).unwrap();
        assert_eq!(read_certificates(&again).unwrap(), tls.chain());
        // 32 bytes as colon-separated upper-case hex.
        let fingerprint = tls.fingerprint();
        assert_eq!(fingerprint.len(), 95, "{fingerprint}");
        assert!(
            fingerprint
                .chars()
                .all(|c| c == ':' || c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
        );

        let err = ServerTls::from_pem_files(&cert, &dir.join("missing.pem"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("private key") && err.contains("missing.pem"),
            "{err}"
        );
        // A certificate file given as the key holds no key.
        let err = ServerTls::from_pem_files(&cert, &cert)
            .unwrap_err()
            .to_string();
        assert!(err.contains("private key"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn self_signed_certificates_differ_and_name_the_served_address() {
        let a = ServerTls::self_signed(Some("10.1.2.3".parse().unwrap())).unwrap();
        let b = ServerTls::self_signed(None).unwrap();
        assert!(a.is_self_signed());
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_ne!(a, b);
        // The certificate holds the served IP as a subject alternative name (4 raw bytes).
        let der = a.chain()[0].as_ref();
        assert!(der.windows(4).any(|w| w == [10, 1, 2, 3]));
    }
}
