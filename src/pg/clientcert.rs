//! Client certificates and revocation lists for TLS, found and checked the way libpq does.
//!
//! `sslcert` (default `~/.postgresql/postgresql.crt`) is sent only when the file exists; its key
//! (`sslkey`, default `~/.postgresql/postgresql.key`) must then exist and be private (libpq's
//! rule and wording). An encrypted PKCS#8 key (`BEGIN ENCRYPTED PRIVATE KEY`) is decrypted with
//! `sslpassword`; rustls-pemfile cannot decrypt, so the `pkcs8` crate does it.

use std::path::Path;

use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, PrivatePkcs8KeyDer,
};

use super::conninfo::{ClientTls, SslCertMode};
use super::error::PgError;

/// A client certificate chain and its private key, ready for rustls.
pub struct Identity {
    /// The certificate chain, leaf first.
    pub certs: Vec<CertificateDer<'static>>,
    /// The private key.
    pub key: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("certs", &self.certs.len())
            .finish_non_exhaustive()
    }
}

fn tls_err(message: String, hint: Option<&str>) -> PgError {
    PgError::tls("", message, hint.map(str::to_string))
}

/// The client identity to present, or `None` when there is no certificate to send.
pub fn identity(t: &ClientTls) -> Result<Option<Identity>, PgError> {
    if t.cert_mode == SslCertMode::Disable {
        return Ok(None);
    }
    let cert_path = match &t.cert {
        Some(p) if p.exists() => p.clone(),
        other => {
            if t.cert_mode == SslCertMode::Require {
                let shown = other
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "~/.postgresql/postgresql.crt".into());
                return Err(tls_err(
                    format!("sslcertmode=require, but the client certificate file \"{shown}\" does not exist"),
                    Some("set sslcert (or PGSSLCERT) to the client certificate and sslkey to its key"),
                ));
            }
            // libpq: no certificate file, no certificate (the server may still ask for one).
            return Ok(None);
        }
    };
    let pem = std::fs::read(&cert_path).map_err(|e| {
        tls_err(
            format!(
                "could not open certificate file \"{}\": {e}",
                cert_path.display()
            ),
            Some("check sslcert / PGSSLCERT and the file's permissions"),
        )
    })?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<_, _>>()
        .map_err(|e| {
            tls_err(
                format!(
                    "could not read certificate file \"{}\": {e}",
                    cert_path.display()
                ),
                None,
            )
        })?;
    if certs.is_empty() {
        return Err(tls_err(
            format!(
                "no PEM certificate found in certificate file \"{}\"",
                cert_path.display()
            ),
            Some("the file must contain -----BEGIN CERTIFICATE----- blocks"),
        ));
    }
    let key_path = t.key.clone().unwrap_or_default();
    let key = load_key(&key_path, t.key_password.as_deref())?;
    Ok(Some(Identity { certs, key }))
}

/// Reads and (if need be) decrypts a private key file after libpq's permission check.
pub fn load_key(path: &Path, password: Option<&str>) -> Result<PrivateKeyDer<'static>, PgError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|e| {
        tls_err(
            format!(
                "certificate present, but not private key file \"{}\": {e}",
                path.display()
            ),
            Some("set sslkey (or PGSSLKEY) to the client certificate's key"),
        )
    })?;
    if !meta.is_file() {
        return Err(tls_err(
            format!(
                "private key file \"{}\" is not a regular file",
                path.display()
            ),
            None,
        ));
    }
    // libpq's rule (fe-secure-openssl.c): private to the user, or group-readable when root owns it.
    let mode = meta.mode();
    let bad = if meta.uid() == 0 {
        mode & 0o037 != 0
    } else {
        mode & 0o077 != 0
    };
    if bad {
        return Err(tls_err(
            format!(
                "private key file \"{}\" has group or world access; file must have permissions u=rw (0600) or less if owned by the current user, or permissions u=rw,g=r (0640) or less if owned by root",
                path.display()
            ),
            Some("chmod 600 the key file"),
        ));
    }
    let text = std::fs::read(path).map_err(|e| {
        tls_err(
            format!(
                "could not read private key file \"{}\": {e}",
                path.display()
            ),
            None,
        )
    })?;
    let s = String::from_utf8_lossy(&text);
    if s.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        let Some(pw) = password.filter(|p| !p.is_empty()) else {
            return Err(tls_err(
                format!(
                    "private key file \"{}\" is encrypted and no sslpassword was given",
                    path.display()
                ),
                Some("add sslpassword=... to the connection string (the tool never prompts)"),
            ));
        };
        return decrypt_pkcs8(&s, pw).map_err(|why| {
            tls_err(
                format!(
                    "could not decrypt private key file \"{}\": {why}",
                    path.display()
                ),
                Some("check sslpassword"),
            )
        });
    }
    if s.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(tls_err(
            format!(
                "private key file \"{}\" is encrypted in the legacy OpenSSL format, which this tool cannot read",
                path.display()
            ),
            Some("convert it to encrypted PKCS#8: openssl pkcs8 -topk8 -v2 aes-256-cbc -in OLD.key -out NEW.key (then chmod 600 NEW.key)"),
        ));
    }
    match rustls_pemfile::private_key(&mut &text[..]) {
        Ok(Some(k)) => Ok(k),
        Ok(None) => Err(tls_err(
            format!("no private key found in \"{}\"", path.display()),
            Some("the file must hold a PEM private key (PKCS#1, SEC1 or PKCS#8)"),
        )),
        Err(e) => Err(tls_err(
            format!(
                "could not read private key file \"{}\": {e}",
                path.display()
            ),
            None,
        )),
    }
}

/// Decrypts a PEM `ENCRYPTED PRIVATE KEY` (PKCS#8 with PBES2: PBKDF2 or scrypt, AES-CBC).
fn decrypt_pkcs8(pem: &str, password: &str) -> Result<PrivateKeyDer<'static>, String> {
    let begin = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
    let end = "-----END ENCRYPTED PRIVATE KEY-----";
    let from = pem.find(begin).ok_or("no PEM block")?;
    let to = pem[from..].find(end).ok_or("unterminated PEM block")? + from + end.len();
    let (_, doc) = pkcs8::der::Document::from_pem(&pem[from..to]).map_err(|e| e.to_string())?;
    let info =
        pkcs8::EncryptedPrivateKeyInfo::try_from(doc.as_bytes()).map_err(|e| e.to_string())?;
    let plain = info
        .decrypt(password)
        .map_err(|_| "wrong sslpassword, or an unsupported encryption".to_string())?;
    Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        plain.as_bytes().to_vec(),
    )))
}

/// The certificate revocation lists to check the server's chain against: `sslcrl` (PEM or
/// DER; libpq's default `~/.postgresql/root.crl` only if it exists) and every file of
/// `sslcrldir`.
pub fn crls(t: &ClientTls) -> Result<Vec<CertificateRevocationListDer<'static>>, PgError> {
    let mut out = Vec::new();
    if let Some(p) = &t.crl {
        if p.exists() {
            out.extend(read_crls(p)?);
        } else if t.crl_given {
            return Err(tls_err(
                format!("certificate revocation list file \"{}\" does not exist", p.display()),
                Some("fix sslcrl / PGSSLCRL (the tool will not check a server against a list it cannot read)"),
            ));
        }
    }
    if let Some(d) = &t.crl_dir {
        let rd = std::fs::read_dir(d).map_err(|e| {
            tls_err(
                format!(
                    "cannot read certificate revocation list directory \"{}\": {e}",
                    d.display()
                ),
                Some("fix sslcrldir / PGSSLCRLDIR"),
            )
        })?;
        let mut files: Vec<_> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for f in files {
            out.extend(read_crls(&f)?);
        }
    }
    Ok(out)
}

fn read_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, PgError> {
    let bytes = std::fs::read(path).map_err(|e| {
        tls_err(
            format!(
                "cannot read certificate revocation list \"{}\": {e}",
                path.display()
            ),
            None,
        )
    })?;
    if bytes.starts_with(b"-----")
        || String::from_utf8_lossy(&bytes).contains("-----BEGIN X509 CRL-----")
    {
        let v: Vec<_> = rustls_pemfile::crls(&mut &bytes[..])
            .collect::<Result<_, _>>()
            .map_err(|e| {
                tls_err(
                    format!(
                        "certificate revocation list \"{}\" is not valid PEM: {e}",
                        path.display()
                    ),
                    None,
                )
            })?;
        if v.is_empty() {
            return Err(tls_err(
                format!("no CRL found in \"{}\"", path.display()),
                Some("the file must contain -----BEGIN X509 CRL----- blocks (or be DER)"),
            ));
        }
        Ok(v)
    } else {
        Ok(vec![CertificateRevocationListDer::from(bytes)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn key_permissions_like_libpq() {
        let dir = tempfile::tempdir().unwrap();
        let k = dir.path().join("k.key");
        std::fs::write(&k, "not a key").unwrap();
        std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load_key(&k, None).unwrap_err().to_string();
        // root owns files made by tests run as root: 0640 is allowed then, 0644 never
        assert!(e.contains("has group or world access"), "{e}");
        std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = load_key(&k, None).unwrap_err().to_string();
        assert!(e.contains("no private key found"), "{e}");
        // root-owned: group-readable is fine (libpq), group-writable is not
        use std::os::unix::fs::MetadataExt;
        if std::fs::metadata(&k).unwrap().uid() == 0 {
            std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o740)).unwrap();
            let e = load_key(&k, None).unwrap_err().to_string();
            assert!(
                e.contains("no private key found"),
                "0740 passes the check: {e}"
            );
            std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o660)).unwrap();
            let e = load_key(&k, None).unwrap_err().to_string();
            assert!(e.contains("group or world access"), "{e}");
        }
        let e = load_key(&dir.path().join("none.key"), None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("certificate present, but not private key file"),
            "{e}"
        );
    }

    #[test]
    fn missing_certificate_means_none_unless_required() {
        let mut t = ClientTls {
            cert: Some("/nonexistent/postgresql.crt".into()),
            ..ClientTls::default()
        };
        assert!(identity(&t).unwrap().is_none());
        t.cert_mode = SslCertMode::Require;
        let e = identity(&t).unwrap_err().to_string();
        assert!(e.contains("sslcertmode=require"), "{e}");
        t.crl = Some("/nonexistent/root.crl".into());
        assert!(
            crls(&t).unwrap().is_empty(),
            "default CRL file: only if it exists"
        );
        t.crl_given = true;
        assert!(crls(&t).is_err());
    }
}
