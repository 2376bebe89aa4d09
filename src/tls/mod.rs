//! TLS for the distribution (`-proto_dist inet_tls`; Erlang/OTP *ssl* User's Guide, "Using TLS
//! for Erlang Distribution"; `lib/ssl/src/inet_tls_dist.erl`): the `-ssl_dist_optfile` options
//! ([`optfile`]) turned into rustls configurations for both ends of a connection.
//!
//! What OTP does, and erlnode with it:
//! - the TLS handshake runs first, right after the TCP connect (EPMD is unchanged, plain TCP);
//!   then the distribution handshake runs inside TLS with 4-byte length prefixes
//!   ([`crate::handshake::message::Framing::Tls`]), then the usual 4-byte framed traffic;
//! - a client checks the server's certificate chain against `cacertfile` and its name against
//!   the host part of the node name it dials (`inet_tls_dist:do_setup/7` sets
//!   `server_name_indication` to that host, which `ssl` verifies); a server with
//!   `{verify, verify_peer}` checks the client's chain only (host names are not checked unless
//!   `net_kernel:allow/1` lists some, which erlnode does not support);
//! - `{fail_if_no_peer_cert, true}` makes a client certificate mandatory.
//!
//! Defaults where the file says nothing: a server does not ask for client certificates
//! (`verify_none`, as `ssl`), a client verifies the server (`verify_peer`, as `ssl` since OTP 26),
//! and both offer TLS 1.2 and 1.3, the highest the peer supports winning.
//!
//! Configuration is read once, at start: every problem (an unsupported option, a missing file,
//! a key that does not parse) is an error then, never at the first connection.

pub mod optfile;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

pub use optfile::{OptfileError, Side, SideOptions, SslDistOptions, TlsVersion, Verify};

/// Why TLS distribution could not be configured.
#[derive(Debug)]
pub enum TlsConfigError {
    /// The optfile could not be read.
    Read(PathBuf, std::io::Error),
    /// The optfile is not valid (syntax, shape, unsupported options).
    Optfile(OptfileError),
    /// A certificate or key file is missing or unreadable.
    Pem {
        /// The side whose option named it.
        side: Side,
        /// The file.
        file: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A required option is missing, or options contradict each other.
    Incomplete(Side, &'static str),
    /// rustls refused the combination (a key that does not match, an unusable certificate).
    Rustls(Side, rustls::Error),
}

impl fmt::Display for TlsConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsConfigError::Read(p, e) => write!(f, "cannot read {}: {e}", p.display()),
            TlsConfigError::Optfile(e) => write!(f, "ssl_dist_optfile: {e}"),
            TlsConfigError::Pem { side, file, reason } => write!(f, "{side}: {}: {reason}", file.display()),
            TlsConfigError::Incomplete(side, what) => write!(f, "{side}: {what}"),
            TlsConfigError::Rustls(side, e) => write!(f, "{side}: {e}"),
        }
    }
}

impl std::error::Error for TlsConfigError {}

/// The TLS configuration of a node's distribution: one for accepting, one for dialling.
#[derive(Clone)]
pub struct TlsDist {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

impl fmt::Debug for TlsDist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsDist").finish_non_exhaustive()
    }
}

impl TlsDist {
    /// Reads an `-ssl_dist_optfile` and the files it names.
    pub fn from_optfile(path: &Path) -> Result<TlsDist, TlsConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| TlsConfigError::Read(path.to_path_buf(), e))?;
        let opts = optfile::parse(&text).map_err(TlsConfigError::Optfile)?;
        TlsDist::from_options(&opts)
    }

    /// Builds both configurations from parsed options, reading the files they name.
    pub fn from_options(opts: &SslDistOptions) -> Result<TlsDist, TlsConfigError> {
        Ok(TlsDist { server: Arc::new(server_config(&opts.server)?), client: Arc::new(client_config(&opts.client)?) })
    }

    /// The configuration for connections this node accepts.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.server.clone()
    }

    /// The configuration for connections this node dials.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.client.clone()
    }

    /// The name a client checks the server's certificate against: the host part of the node
    /// name it dials, as `inet_tls_dist` passes it as `server_name_indication`.
    pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
        ServerName::try_from(host.to_string())
            .map_err(|e| format!("{host} cannot be checked against a certificate: {e}"))
    }
}

/// The *ring* provider: it builds with a C compiler alone (aws-lc-rs needs cmake). rustls
/// 0.23.48 deprecated it for lacking post-quantum key exchange, which no OTP release's TLS
/// distribution negotiates in any case (its groups are the classic ECDHE ones ring has).
#[allow(deprecated, reason = "ring has every group and suite OTP's ssl offers; see above")]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn versions(o: &SideOptions) -> Vec<&'static rustls::SupportedProtocolVersion> {
    let wanted = o.versions.clone().unwrap_or_else(|| vec![TlsVersion::Tls13, TlsVersion::Tls12]);
    let mut v: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    for w in wanted {
        let version = match w {
            TlsVersion::Tls12 => &rustls::version::TLS12,
            TlsVersion::Tls13 => &rustls::version::TLS13,
        };
        if !v.iter().any(|x| x.version == version.version) {
            v.push(version);
        }
    }
    v
}

fn server_config(o: &SideOptions) -> Result<ServerConfig, TlsConfigError> {
    let side = Side::Server;
    let certfile = o.certfile.as_ref().ok_or(TlsConfigError::Incomplete(side, "certfile is required"))?;
    let chain = certs(side, certfile)?;
    let key = key(side, o.keyfile.as_ref().unwrap_or(certfile))?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&versions(o))
        .map_err(|e| TlsConfigError::Rustls(side, e))?;
    let fail_if_no_peer_cert = o.fail_if_no_peer_cert.unwrap_or(false);
    let builder = match o.verify.unwrap_or(Verify::None) {
        Verify::None if fail_if_no_peer_cert => {
            return Err(TlsConfigError::Incomplete(side, "fail_if_no_peer_cert needs {verify, verify_peer}"));
        }
        Verify::None => builder.with_no_client_auth(),
        Verify::Peer => {
            let roots = roots(side, o)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
            let verifier = if fail_if_no_peer_cert { verifier } else { verifier.allow_unauthenticated() };
            let verifier =
                verifier.build().map_err(|e| TlsConfigError::Rustls(side, rustls::Error::General(e.to_string())))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    builder.with_single_cert(chain, key).map_err(|e| TlsConfigError::Rustls(side, e))
}

fn client_config(o: &SideOptions) -> Result<ClientConfig, TlsConfigError> {
    let side = Side::Client;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&versions(o))
        .map_err(|e| TlsConfigError::Rustls(side, e))?;
    let builder = match o.verify.unwrap_or(Verify::Peer) {
        Verify::Peer => builder.with_root_certificates(roots(side, o)?),
        Verify::None => builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyServer(provider()))),
    };
    match &o.certfile {
        Some(certfile) => {
            let chain = certs(side, certfile)?;
            let key = key(side, o.keyfile.as_ref().unwrap_or(certfile))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| TlsConfigError::Rustls(side, e))
        }
        None if o.keyfile.is_some() => Err(TlsConfigError::Incomplete(side, "keyfile without certfile")),
        None => Ok(builder.with_no_client_auth()),
    }
}

fn roots(side: Side, o: &SideOptions) -> Result<RootCertStore, TlsConfigError> {
    let file = o.cacertfile.as_ref().ok_or(TlsConfigError::Incomplete(side, "verify_peer needs cacertfile"))?;
    let mut store = RootCertStore::empty();
    for c in certs(side, file)? {
        store.add(c).map_err(|e| TlsConfigError::Pem { side, file: file.clone(), reason: e.to_string() })?;
    }
    Ok(store)
}

fn certs(side: Side, file: &Path) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let pem = |reason: String| TlsConfigError::Pem { side, file: file.to_path_buf(), reason };
    let certs = CertificateDer::pem_file_iter(file)
        .map_err(|e| pem(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem("no PEM certificate in it".into()));
    }
    Ok(certs)
}

fn key(side: Side, file: &Path) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    PrivateKeyDer::from_pem_file(file).map_err(|e| TlsConfigError::Pem {
        side,
        file: file.to_path_buf(),
        reason: format!("no usable private key: {e}"),
    })
}

/// `{verify, verify_none}` on a client: any server certificate is accepted, but the handshake's
/// signatures are still checked, so the peer must hold the key of the certificate it shows.
#[derive(Debug)]
struct AnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServer {
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        TlsDist::from_options(&optfile::parse(text).unwrap()).unwrap_err().to_string()
    }

    #[test]
    fn incomplete_configurations_are_refused_at_start() {
        // checked before any file is read
        assert_eq!(err("[]."), "server: certfile is required");
        let server = "{server, [{certfile, \"/nonexistent/node.pem\"}]}";
        let missing = err(&format!("[{server}]."));
        assert!(missing.starts_with("server: /nonexistent/node.pem: "), "{missing}");
        // a client verifies by default, so it needs a CA
        assert_eq!(
            client_config(&SideOptions::default()).unwrap_err().to_string(),
            "client: verify_peer needs cacertfile"
        );
        let keyless =
            SideOptions { verify: Some(Verify::None), keyfile: Some(PathBuf::from("/k")), ..SideOptions::default() };
        assert_eq!(client_config(&keyless).unwrap_err().to_string(), "client: keyfile without certfile");
        let no_verify = SideOptions { verify: Some(Verify::None), ..SideOptions::default() };
        assert!(client_config(&no_verify).is_ok());
    }

    #[test]
    fn versions_are_offered_as_asked() {
        let o = |v: Option<Vec<TlsVersion>>| SideOptions { versions: v, ..SideOptions::default() };
        let got = |v| versions(&o(v)).iter().map(|x| x.version).collect::<Vec<_>>();
        use rustls::ProtocolVersion::{TLSv1_2, TLSv1_3};
        assert_eq!(got(None), vec![TLSv1_3, TLSv1_2]);
        assert_eq!(got(Some(vec![TlsVersion::Tls12])), vec![TLSv1_2]);
        assert_eq!(got(Some(vec![TlsVersion::Tls13, TlsVersion::Tls13])), vec![TLSv1_3]);
    }
}
