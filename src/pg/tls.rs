//! TLS for both the SQL session and the replication client, following libpq's `sslmode`.
//!
//! | sslmode | TLS | verification |
//! |---|---|---|
//! | disable | never | — |
//! | allow, prefer | if the server offers it | chain only if a root certificate file exists (libpq) |
//! | require | required | chain only if a root certificate file exists (libpq: then like verify-ca) |
//! | verify-ca | required | chain to `sslrootcert` (default `~/.postgresql/root.crt`), host name ignored |
//! | verify-full | required | chain and host name |
//!
//! `allow` tries plain text first and TLS only if the server refuses (SQL sessions; the
//! replication client treats it as `prefer`). Unix sockets never use TLS, like libpq.
//! A client certificate (`sslcert`/`sslkey`, or libpq's default files) is offered whenever TLS
//! is used and the certificate file exists; revocation lists (`sslcrl`, `sslcrldir`) apply
//! whenever the server's chain is verified.

use std::error::Error as StdError;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use super::conninfo::{ClientTls, ConnParams, SslMode, TlsVersion};
use super::error::PgError;

/// How much of the server certificate we check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// Encrypt only; accept any certificate (sslmode=require without a root certificate).
    None,
    /// The chain must lead to a trusted root; the host name is not checked (verify-ca).
    Chain,
    /// Chain and host name (verify-full).
    Full,
}

/// What to do about TLS for one connection.
#[derive(Clone)]
pub enum TlsPlan {
    /// Plain text (sslmode=disable, or a Unix socket).
    Disabled,
    /// Try TLS; use plain text if the server declines (allow, prefer).
    Optional(Arc<ClientConfig>, Verification),
    /// TLS or nothing (require, verify-ca, verify-full).
    Required(Arc<ClientConfig>, Verification),
}

impl std::fmt::Debug for TlsPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsPlan::Disabled => f.write_str("Disabled"),
            TlsPlan::Optional(_, v) => write!(f, "Optional({v:?})"),
            TlsPlan::Required(_, v) => write!(f, "Required({v:?})"),
        }
    }
}

impl TlsPlan {
    /// The rustls configuration, unless TLS is disabled.
    pub fn config(&self) -> Option<&Arc<ClientConfig>> {
        match self {
            TlsPlan::Disabled => None,
            TlsPlan::Optional(c, _) | TlsPlan::Required(c, _) => Some(c),
        }
    }
}

/// Decides TLS for `params` the way libpq does and builds the rustls configuration.
pub fn plan(params: &ConnParams) -> Result<TlsPlan, PgError> {
    let mode = params.sslmode();
    if mode == SslMode::Disable || params.is_unix_socket() {
        return Ok(TlsPlan::Disabled);
    }
    let root = params.effective_sslrootcert();
    let root_exists = root.is_some_and(|p| p.exists());
    let verification = match mode {
        SslMode::VerifyCa | SslMode::VerifyFull => {
            if !root_exists {
                let shown = root
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "~/.postgresql/root.crt".to_string());
                return Err(PgError::tls(
                    "",
                    format!("root certificate file \"{shown}\" does not exist"),
                    Some(format!(
                        "provide the CA certificate with sslrootcert=<file> (or PGSSLROOTCERT), or use sslmode=require to skip verification (sslmode={mode} needs it)"
                    )),
                ));
            }
            if mode == SslMode::VerifyFull {
                Verification::Full
            } else {
                Verification::Chain
            }
        }
        _ if root_exists => Verification::Chain,
        _ => Verification::None,
    };
    let roots = match (verification, root) {
        (Verification::None, _) | (_, None) => None,
        (_, Some(p)) => Some(p),
    };
    let config = Arc::new(client_config_with(
        verification,
        roots,
        params.client_tls(),
    )?);
    Ok(if mode.requires_tls() {
        TlsPlan::Required(config, verification)
    } else {
        TlsPlan::Optional(config, verification)
    })
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Loads PEM certificates from `path` into a root store; errors name the file.
pub fn load_roots(path: &Path) -> Result<RootCertStore, PgError> {
    let bytes = std::fs::read(path).map_err(|e| {
        PgError::tls(
            "",
            format!(
                "cannot read root certificate file \"{}\": {e}",
                path.display()
            ),
            Some("check sslrootcert / PGSSLROOTCERT and the file's permissions".into()),
        )
    })?;
    let mut reader = std::io::Cursor::new(bytes);
    let mut store = RootCertStore::empty();
    let mut found = 0usize;
    for cert in rustls_pemfile::certs(&mut reader) {
        let cert = cert.map_err(|e| {
            PgError::tls(
                "",
                format!(
                    "root certificate file \"{}\" is not valid PEM: {e}",
                    path.display()
                ),
                None,
            )
        })?;
        store.add(cert).map_err(|e| {
            PgError::tls(
                "",
                format!(
                    "root certificate file \"{}\" holds an unusable certificate: {e}",
                    path.display()
                ),
                None,
            )
        })?;
        found += 1;
    }
    if found == 0 {
        return Err(PgError::tls(
            "",
            format!(
                "no PEM certificates found in root certificate file \"{}\"",
                path.display()
            ),
            Some("the file must contain -----BEGIN CERTIFICATE----- blocks".into()),
        ));
    }
    Ok(store)
}

/// Builds a rustls client configuration with the given verification and root file.
pub fn client_config(
    verification: Verification,
    roots: Option<&Path>,
) -> Result<ClientConfig, PgError> {
    client_config_with(
        verification,
        roots,
        &ClientTls {
            cert_mode: super::conninfo::SslCertMode::Disable,
            ..ClientTls::default()
        },
    )
}

/// [`client_config`] with a client certificate, revocation lists and TLS version bounds.
pub fn client_config_with(
    verification: Verification,
    roots: Option<&Path>,
    client: &ClientTls,
) -> Result<ClientConfig, PgError> {
    let provider = provider();
    let verifier: Arc<dyn ServerCertVerifier> = match (verification, roots) {
        (Verification::None, _) => Arc::new(NoVerify(provider.clone())),
        (_, None) => {
            return Err(PgError::tls(
                "",
                "certificate verification needs a root certificate file",
                Some("set sslrootcert".into()),
            ))
        }
        (v, Some(path)) => {
            let store = load_roots(path)?;
            let crls = super::clientcert::crls(client)?;
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
                    .with_crls(crls)
                    .build()
                    .map_err(|e| {
                        PgError::tls("", format!("cannot build certificate verifier: {e}"), None)
                    })?;
            if v == Verification::Full {
                webpki
            } else {
                Arc::new(ChainOnly(webpki))
            }
        }
    };
    let min = client.min_version.unwrap_or(TlsVersion::V1_2);
    let max = client.max_version.unwrap_or(TlsVersion::V1_3);
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = [
        (TlsVersion::V1_2, &rustls::version::TLS12),
        (TlsVersion::V1_3, &rustls::version::TLS13),
    ]
    .into_iter()
    .filter(|(v, _)| *v >= min && *v <= max)
    .map(|(_, p)| p)
    .collect();
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| PgError::tls("", format!("cannot configure TLS: {e}"), None))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match super::clientcert::identity(client)? {
        Some(id) => builder
            .with_client_auth_cert(id.certs, id.key)
            .map_err(|e| {
                PgError::tls(
                    "",
                    format!("the client certificate and key cannot be used: {e}"),
                    Some("check that sslkey is the key of sslcert".into()),
                )
            })?,
        None => builder.with_no_client_auth(),
    };
    // PostgreSQL 17+ checks ALPN on direct TLS; older servers ignore it.
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(config)
}

/// Accepts any certificate but still checks handshake signatures (sslmode=require).
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
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
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// verify-ca: the WebPKI verifier, tolerating only a host-name mismatch.
///
/// WebPKI checks the chain (and expiry) before the name, so a name error means the chain
/// was already accepted.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Finds a rustls error in an error's source chain and explains it; `None` if there is none.
pub(crate) fn explain_handshake_error(
    target: &str,
    server_name: &str,
    err: &(dyn StdError + 'static),
) -> Option<PgError> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(explain_rustls(target, server_name, r));
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                if let Some(r) = inner.downcast_ref::<rustls::Error>() {
                    return Some(explain_rustls(target, server_name, r));
                }
            }
        }
        cur = e.source();
    }
    None
}

fn explain_rustls(target: &str, server_name: &str, e: &rustls::Error) -> PgError {
    use CertificateError as C;
    let (message, hint) = match e {
        rustls::Error::InvalidCertificate(C::NotValidForName) => (
            format!("server certificate is not valid for host name \"{server_name}\""),
            Some("connect with a host name the certificate names (host=<name> hostaddr=<ip>), or use sslmode=verify-ca to check only the chain".to_string()),
        ),
        rustls::Error::InvalidCertificate(C::NotValidForNameContext { presented, .. }) => (
            format!(
                "server certificate is not valid for host name \"{server_name}\" (it names {})",
                presented.join(", ")
            ),
            Some("connect with a host name the certificate names (host=<name> hostaddr=<ip>), or use sslmode=verify-ca to check only the chain".to_string()),
        ),
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => (
            "server certificate was not issued by a CA in sslrootcert".to_string(),
            Some("set sslrootcert to the CA certificate that signed the server's certificate".to_string()),
        ),
        rustls::Error::InvalidCertificate(C::BadSignature) => (
            "server certificate's signature does not verify against the CA in sslrootcert (a different CA with the same name?)".to_string(),
            Some("set sslrootcert to the CA certificate that signed the server's certificate".to_string()),
        ),
        rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => (
            "server certificate has expired".to_string(),
            Some("renew the server certificate".to_string()),
        ),
        rustls::Error::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => (
            "server certificate is not valid yet (check the clocks)".to_string(),
            None,
        ),
        rustls::Error::InvalidCertificate(C::Revoked) => (
            "server certificate has been revoked (it is listed in sslcrl / sslcrldir)".to_string(),
            Some("the server needs a new certificate; do not connect to it until then".to_string()),
        ),
        rustls::Error::InvalidCertificate(C::UnknownRevocationStatus) => (
            "no certificate revocation list in sslcrl / sslcrldir was issued by the server certificate's CA".to_string(),
            Some("add the CA's CRL to sslcrl or sslcrldir".to_string()),
        ),
        rustls::Error::InvalidCertificate(other) => (format!("server certificate rejected: {other:?}"), None),
        other => (format!("TLS handshake failed: {other}"), None),
    };
    PgError::tls(target, message, hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(s: &str, home: &str) -> ConnParams {
        let home = home.to_string();
        ConnParams::parse(s, &move |k: &str| (k == "HOME").then(|| home.clone())).unwrap()
    }

    #[test]
    fn plans_follow_libpq() {
        let home = "/nonexistent-home";
        assert!(matches!(
            plan(&params("host=h user=u sslmode=disable", home)).unwrap(),
            TlsPlan::Disabled
        ));
        assert!(matches!(
            plan(&params("host=/tmp user=u sslmode=require", home)).unwrap(),
            TlsPlan::Disabled
        ));
        assert!(matches!(
            plan(&params("host=h user=u", home)).unwrap(),
            TlsPlan::Optional(_, Verification::None)
        ));
        assert!(matches!(
            plan(&params("host=h user=u sslmode=require", home)).unwrap(),
            TlsPlan::Required(_, Verification::None)
        ));
        let e = plan(&params("host=h user=u sslmode=verify-full", home)).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("/nonexistent-home/.postgresql/root.crt"),
            "{msg}"
        );
        assert!(msg.contains("does not exist"), "{msg}");
        let e = plan(&params(
            "host=h user=u sslmode=verify-ca sslrootcert=/no/such/ca.pem",
            home,
        ))
        .unwrap_err();
        assert!(e.to_string().contains("/no/such/ca.pem"), "{e}");
    }

    #[test]
    fn bad_root_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("ca.pem");
        std::fs::write(&f, "not a certificate\n").unwrap();
        let e = load_roots(&f).unwrap_err();
        assert!(e.to_string().contains("ca.pem"), "{e}");
        assert!(e.to_string().contains("no PEM certificates"), "{e}");
        // require + an (invalid) root file present = verify-ca, which fails to load
        let s = format!("host=h user=u sslmode=require sslrootcert={}", f.display());
        assert!(plan(&params(&s, "/nonexistent")).is_err());
    }
}
