//! TLS for the drivers (https, wss, and the raw-TCP floor over TLS): a [`TlsClient`] setting
//! on the [`Target`], and [`connect_stream`], which every driver uses to open a connection.
//! Bytes are counted on the TCP socket *below* TLS, so record headers, handshakes and
//! authentication tags show in the wire columns.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::driver::{DriverError, Target, connect_tcp};
use crate::wire::{CountingStream, WireCounter};

/// The ALPN protocol of HTTP/1.1, which every pushbench driver offers but HTTP/2 SSE.
pub const ALPN_HTTP1: &[u8] = b"http/1.1";
/// The ALPN protocol of HTTP/2 over TLS, which the server offers first and the HTTP/2 SSE
/// driver alone.
pub const ALPN_H2: &[u8] = b"h2";

/// Why a TLS setting could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("cannot read {what} from {path}: {reason}")]
    Pem {
        /// What the file should hold (`certificate`, `private key`).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        reason: String,
    },
    /// A PEM file held no certificate.
    #[error("{path} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The certificate could not be generated.
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(String),
    /// rustls refused the configuration (a certificate or key it cannot use).
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The crypto provider of every pushbench TLS configuration: *ring* (no process-wide default
/// is installed, so nothing depends on which provider another crate enabled).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads every certificate of a PEM file, in order (a chain: leaf first).
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Pem {
            what: "certificate",
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// How the drivers speak TLS to a target: whom they trust, and the name they expect.
#[derive(Clone)]
pub struct TlsClient {
    config: Arc<ClientConfig>,
    server_name: Option<ServerName<'static>>,
    trust: &'static str,
}

impl fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClient")
            .field("trust", &self.trust)
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl PartialEq for TlsClient {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.config, &other.config) && self.server_name == other.server_name
    }
}

impl Eq for TlsClient {}

impl TlsClient {
    /// Trusts exactly `certificates` (e.g. the run's self-signed certificate) as roots.
    pub fn trusting(certificates: &[CertificateDer<'static>]) -> Result<TlsClient, TlsError> {
        let mut roots = RootCertStore::empty();
        for cert in certificates {
            roots.add(cert.clone())?;
        }
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(TlsClient::from_config(config, "certificate"))
    }

    /// Trusts the certificates of a PEM file (`--tls-ca FILE`).
    pub fn from_ca_file(path: &Path) -> Result<TlsClient, TlsError> {
        TlsClient::trusting(&read_certificates(path)?)
    }

    /// Accepts any certificate (`--insecure`): the connection is encrypted but the server is
    /// not authenticated. Handshake signatures are still checked, so the cost is the same.
    pub fn insecure() -> Result<TlsClient, TlsError> {
        let provider = provider();
        let verifier = AnyCertificate {
            algorithms: provider.signature_verification_algorithms,
        };
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        Ok(TlsClient::from_config(config, "any certificate (insecure)"))
    }

    fn from_config(mut config: ClientConfig, trust: &'static str) -> TlsClient {
        config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
        TlsClient {
            config: Arc::new(config),
            server_name: None,
            trust,
        }
    }

    /// The same trust, offering only `h2` by ALPN (for HTTP/2 connections).
    pub fn for_h2(&self) -> TlsClient {
        let mut config = (*self.config).clone();
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        TlsClient {
            config: Arc::new(config),
            server_name: self.server_name.clone(),
            trust: self.trust,
        }
    }

    /// Expects the server's certificate to name `name` (a DNS name or an IP address) instead
    /// of the IP address dialled.
    pub fn with_server_name(mut self, name: &str) -> Result<TlsClient, TlsError> {
        let name = ServerName::try_from(name.to_owned()).map_err(|e| {
            TlsError::Config(rustls::Error::General(format!(
                "`{name}` is not a DNS name or IP address: {e}"
            )))
        })?;
        self.server_name = Some(name);
        Ok(self)
    }

    /// Runs the client handshake over `stream`, dialled at `addr`.
    pub async fn handshake<S>(
        &self,
        addr: SocketAddr,
        stream: S,
    ) -> Result<TlsStream<S>, DriverError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let name = self
            .server_name
            .clone()
            .unwrap_or_else(|| ServerName::IpAddress(addr.ip().into()));
        TlsConnector::from(self.config.clone())
            .connect(name, stream)
            .await
            .map_err(|e| DriverError::Tls {
                addr,
                reason: tls_reason(&e),
            })
    }
}

/// The message of a failed handshake, with a hint when the peer does not speak TLS at all.
fn tls_reason(e: &io::Error) -> String {
    let text = e.to_string();
    let plain = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|inner| matches!(inner, rustls::Error::InvalidMessage(_)))
        || text.contains("corrupt message");
    if plain {
        format!(
            "{text} (the server did not answer in TLS: is it serving TLS, e.g. `pushbench serve --tls`?)"
        )
    } else {
        text
    }
}

/// Accepts any certificate, still verifying that the server holds its key.
#[derive(Debug)]
struct AnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A driver's connection: plain TCP, or TLS over TCP. Either way the bytes are counted on the
/// TCP socket.
#[derive(Debug)]
pub enum ClientStream {
    /// Plain TCP.
    Plain(CountingStream<TcpStream>),
    /// TLS over the counted TCP socket.
    Tls(Box<TlsStream<CountingStream<TcpStream>>>),
}

/// Opens a connection to `addr` (TCP_NODELAY on, from the target's source address), counted by
/// `counter`, and runs the TLS handshake when the target has a [`TlsClient`].
pub async fn connect_stream(
    addr: SocketAddr,
    target: &Target,
    counter: &WireCounter,
) -> Result<ClientStream, DriverError> {
    let tcp = counter.wrap(connect_tcp(addr, target.source).await?);
    match &target.tls {
        None => Ok(ClientStream::Plain(tcp)),
        Some(tls) => Ok(ClientStream::Tls(Box::new(tls.handshake(addr, tcp).await?))),
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ClientStream::Plain(s) => s.is_write_vectored(),
            ClientStream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
