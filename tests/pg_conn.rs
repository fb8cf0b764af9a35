//! Connection strings as libpq takes them, against a real PostgreSQL 15: client certificates
//! (`hostssl … cert` in pg_hba.conf, a CA made here with the `openssl` CLI), an encrypted key
//! with `sslpassword`, libpq's default files and `PGSSL*` variables, `sslmode=allow`, and a
//! service file with two services and libpq's precedence.
//! Skipped (with a printed notice) when `openssl` is not installed, unless CI is set.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::{env, Cluster};
use failover_verify::pg::{
    connect, connect_replication, ConnParams, ReplicationOptions, SessionOptions,
};

const CERT_USER: &str = "cert_user";
const KEY_PASSWORD: &str = "key-Pass-word7";

struct CertCluster {
    cluster: Cluster,
    certs: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A key + certificate signed by ca.crt: `{name}.key`, `{name}.crt`.
fn signed(dir: &Path, name: &str, cn: &str, ext: &str) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={cn}"),
        ],
    );
    std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{name}.crt"),
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
    std::fs::set_permissions(
        dir.join(format!("{name}.key")),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
}

fn setup() -> Option<&'static CertCluster> {
    static C: OnceLock<Option<CertCluster>> = OnceLock::new();
    C.get_or_init(|| {
        if Command::new("openssl").arg("version").output().map(|o| !o.status.success()).unwrap_or(true) {
            assert!(std::env::var_os("CI").is_none(), "openssl is required in CI");
            eprintln!("skipped: pg_conn: openssl CLI not installed");
            return None;
        }
        let certs = tempfile::tempdir().unwrap().keep();
        openssl(
            &certs,
            &[
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
                "-subj", "/CN=failover-verify client-cert test CA",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        signed(
            &certs,
            "server",
            "localhost",
            "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        );
        // cert authentication maps the certificate's CN to the role.
        signed(
            &certs,
            "client",
            CERT_USER,
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
        );
        // The same key, encrypted as PKCS#8 (PBES2: PBKDF2 + AES-256-CBC).
        openssl(
            &certs,
            &[
                "pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", "client.key",
                "-out", "client-enc.key", "-passout", &format!("pass:{KEY_PASSWORD}"),
            ],
        );
        std::fs::set_permissions(certs.join("client-enc.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
        // A copy of the key that others may read: libpq refuses it.
        std::fs::copy(certs.join("client.key"), certs.join("open.key")).unwrap();
        std::fs::set_permissions(certs.join("open.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
        let hba = "\
local all all trust
local replication all trust
hostssl all cert_user 127.0.0.1/32 cert
hostssl replication cert_user 127.0.0.1/32 cert
hostssl all all 127.0.0.1/32 trust
";
        let src = certs.clone();
        let cluster = Cluster::start_with(
            "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\nssl_ca_file = 'ca.crt'\n",
            hba,
            move |data| {
                let (uid, gid) = common::postgres_ids();
                for f in ["server.crt", "server.key", "ca.crt"] {
                    let to = data.join(f);
                    std::fs::copy(src.join(f), &to).unwrap();
                    std::os::unix::fs::chown(&to, Some(uid), Some(gid)).unwrap();
                    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).unwrap();
                }
            },
        );
        cluster.exec_blocking(&format!("CREATE ROLE {CERT_USER} LOGIN REPLICATION"));
        extern "C" fn stop() {
            if let Some(Some(c)) = C.get() {
                c.cluster.stop();
                let _ = std::fs::remove_dir_all(&c.certs);
            }
        }
        // SAFETY: registering a plain extern "C" function with no captured state.
        unsafe {
            libc::atexit(stop);
        }
        Some(CertCluster { cluster, certs })
    })
    .as_ref()
}

impl CertCluster {
    fn file(&self, name: &str) -> String {
        self.certs.join(name).display().to_string()
    }

    fn base(&self) -> String {
        format!(
            "host=localhost hostaddr=127.0.0.1 port={} dbname=postgres user={CERT_USER} sslmode=verify-full sslrootcert={}",
            self.cluster.port,
            self.file("ca.crt")
        )
    }

    fn params(&self, extra: &str) -> Result<ConnParams, failover_verify::pg::ConnInfoError> {
        ConnParams::parse(&format!("{} {extra}", self.base()), &env(&[]))
    }
}

async fn who(p: &ConnParams) -> Result<String, String> {
    let s = connect(p, &SessionOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    let v = s
        .simple_value("SELECT current_user || ' ' || ssl::text || ' ' || coalesce(client_dn, '-') FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .await
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    s.close().await;
    Ok(v)
}

#[tokio::test]
async fn client_certificate_is_required_and_accepted() {
    let Some(c) = setup() else { return };
    // Without a certificate the server refuses (pg_hba says cert).
    let e = who(&c.params("").unwrap()).await.unwrap_err();
    assert!(
        e.contains("certificate") && e.contains(CERT_USER),
        "refused without a client certificate: {e}"
    );
    // With one, cert authentication logs in as the certificate's CN.
    let p = c
        .params(&format!(
            "sslcert={} sslkey={}",
            c.file("client.crt"),
            c.file("client.key")
        ))
        .unwrap();
    let got = who(&p).await.expect("client certificate");
    assert_eq!(got, format!("{CERT_USER} true /CN={CERT_USER}"));
    // The replication client presents it too.
    let mut r = connect_replication(&p, &ReplicationOptions::default())
        .await
        .expect("replication with a client certificate");
    r.identify_system().await.expect("IDENTIFY_SYSTEM");
}

#[tokio::test]
async fn encrypted_key_needs_sslpassword() {
    let Some(c) = setup() else { return };
    let with = |pw: &str| {
        c.params(&format!(
            "sslcert={} sslkey={} {pw}",
            c.file("client.crt"),
            c.file("client-enc.key")
        ))
        .unwrap()
    };
    let got = who(&with(&format!("sslpassword={KEY_PASSWORD}")))
        .await
        .expect("encrypted key with sslpassword");
    assert!(got.starts_with(CERT_USER), "{got}");
    let e = who(&with("")).await.unwrap_err();
    assert!(e.contains("encrypted") && e.contains("sslpassword"), "{e}");
    let e = who(&with("sslpassword=wrong")).await.unwrap_err();
    assert!(e.contains("could not decrypt private key file"), "{e}");
    assert!(!e.contains(KEY_PASSWORD), "{e}");
}

#[tokio::test]
async fn a_key_readable_by_others_is_refused_with_libpqs_reason() {
    let Some(c) = setup() else { return };
    let p = c
        .params(&format!(
            "sslcert={} sslkey={}",
            c.file("client.crt"),
            c.file("open.key")
        ))
        .unwrap();
    let e = who(&p).await.unwrap_err();
    assert!(
        e.contains("has group or world access; file must have permissions u=rw (0600) or less"),
        "{e}"
    );
    assert!(e.contains("open.key"), "{e}");
}

#[tokio::test]
async fn default_files_and_pgssl_variables() {
    let Some(c) = setup() else { return };
    // libpq's defaults: ~/.postgresql/postgresql.crt, postgresql.key and root.crt.
    let home = tempfile::tempdir().unwrap();
    let dotpg = home.path().join(".postgresql");
    std::fs::create_dir(&dotpg).unwrap();
    for (from, to) in [
        ("client.crt", "postgresql.crt"),
        ("client.key", "postgresql.key"),
        ("ca.crt", "root.crt"),
    ] {
        std::fs::copy(c.certs.join(from), dotpg.join(to)).unwrap();
        std::fs::set_permissions(dotpg.join(to), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let h = home.path().display().to_string();
    let plain = format!(
        "host=localhost hostaddr=127.0.0.1 port={} dbname=postgres user={CERT_USER} sslmode=verify-full",
        c.cluster.port
    );
    let p = ConnParams::parse(&plain, &env(&[("HOME", &h)])).unwrap();
    let got = who(&p).await.expect("default files");
    assert!(got.ends_with(&format!("/CN={CERT_USER}")), "{got}");
    // sslcertmode=disable keeps the certificate back: refused.
    let p = ConnParams::parse(
        &format!("{plain} sslcertmode=disable"),
        &env(&[("HOME", &h)]),
    )
    .unwrap();
    assert!(who(&p).await.is_err());
    // PGSSLCERT / PGSSLKEY / PGSSLROOTCERT with an empty home.
    let empty = tempfile::tempdir().unwrap();
    let (cert, key, ca) = (c.file("client.crt"), c.file("client.key"), c.file("ca.crt"));
    let e = env(&[
        ("HOME", &empty.path().display().to_string()),
        ("PGSSLCERT", &cert),
        ("PGSSLKEY", &key),
        ("PGSSLROOTCERT", &ca),
    ]);
    let p = ConnParams::parse(&plain, &e).unwrap();
    assert!(who(&p)
        .await
        .expect("PGSSL* variables")
        .starts_with(CERT_USER));
}

#[tokio::test]
async fn sslmode_allow_tries_plain_text_then_tls() {
    let Some(c) = setup() else { return };
    // pg_hba.conf has only hostssl lines for TCP: the plain attempt is refused, TLS works.
    let p = ConnParams::parse(
        &format!(
            "host=127.0.0.1 port={} dbname=postgres user=postgres sslmode=allow",
            c.cluster.port
        ),
        &env(&[("HOME", "/nonexistent")]),
    )
    .unwrap();
    let got = who(&p).await.expect("sslmode=allow");
    assert!(got.starts_with("postgres true"), "{got}");
    let p = ConnParams::parse(
        &format!(
            "host=127.0.0.1 port={} dbname=postgres user=postgres sslmode=disable",
            c.cluster.port
        ),
        &env(&[("HOME", "/nonexistent")]),
    )
    .unwrap();
    let e = who(&p).await.unwrap_err();
    assert!(e.contains("no encryption"), "plain text is refused: {e}");
}

#[tokio::test]
async fn service_file_with_two_services_and_precedence() {
    let Some(c) = setup() else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pg_service.conf");
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    std::fs::write(
        &file,
        format!(
            "# two services\n[certs]\nhost=localhost\nhostaddr=127.0.0.1\nport={port}\ndbname=postgres\nuser={CERT_USER}\nsslmode=verify-full\nsslrootcert={ca}\nsslcert={cert}\nsslkey={key}\n\n[wrongport]\nhost=127.0.0.1\nport={closed}\ndbname=postgres\nuser=postgres\nsslmode=require\nconnect_timeout=3\n",
            port = c.cluster.port,
            ca = c.file("ca.crt"),
            cert = c.file("client.crt"),
            key = c.file("client.key"),
        ),
    )
    .unwrap();
    let f = file.display().to_string();
    let real = c.cluster.port.to_string();
    let base = [
        ("PGSERVICEFILE", f.as_str()),
        ("PGSYSCONFDIR", "/nonexistent"),
        ("HOME", "/nonexistent"),
    ];
    let with = |extra: &[(&'static str, &str)]| {
        let mut v: Vec<(&str, &str)> = base.to_vec();
        v.extend_from_slice(extra);
        v.into_iter()
            .map(|(k, v)| (k, v.to_string()))
            .collect::<Vec<_>>()
    };
    let parse = |s: &str, e: Vec<(&str, String)>| {
        let pairs: Vec<(&str, &str)> = e.iter().map(|(k, v)| (*k, v.as_str())).collect();
        ConnParams::parse(s, &env(&pairs)).unwrap()
    };
    // service=certs: everything from the file, client certificate included.
    let got = who(&parse("service=certs", with(&[])))
        .await
        .expect("service=certs");
    assert!(got.ends_with(&format!("/CN={CERT_USER}")), "{got}");
    // PGSERVICE picks it too.
    let got = who(&parse("", with(&[("PGSERVICE", "certs")])))
        .await
        .expect("PGSERVICE");
    assert!(got.starts_with(CERT_USER), "{got}");
    // The service's port wins over PGPORT: nothing listens there.
    let e = who(&parse("service=wrongport", with(&[("PGPORT", &real)])))
        .await
        .unwrap_err();
    assert!(e.contains(&closed.to_string()), "{e}");
    // An explicit keyword wins over the service.
    let got = who(&parse(&format!("service=wrongport port={real}"), with(&[])))
        .await
        .expect("keyword over service");
    assert!(got.starts_with("postgres true"), "{got}");
}

#[tokio::test]
async fn revocation_lists_are_checked() {
    let Some(c) = setup() else { return };
    // A CA database for `openssl ca` in a copy of the certificate directory.
    let dir = tempfile::tempdir().unwrap();
    for f in ["ca.crt", "ca.key", "server.crt"] {
        std::fs::copy(c.certs.join(f), dir.path().join(f)).unwrap();
    }
    std::fs::write(dir.path().join("index.txt"), "").unwrap();
    std::fs::write(dir.path().join("crlnumber"), "01\n").unwrap();
    std::fs::write(
        dir.path().join("ca.cnf"),
        "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\ncrlnumber = crlnumber\ncertificate = ca.crt\nprivate_key = ca.key\ndefault_md = sha256\ndefault_crl_days = 2\n",
    )
    .unwrap();
    openssl(
        dir.path(),
        &["ca", "-config", "ca.cnf", "-gencrl", "-out", "empty.crl"],
    );
    openssl(
        dir.path(),
        &["ca", "-config", "ca.cnf", "-revoke", "server.crt"],
    );
    openssl(
        dir.path(),
        &["ca", "-config", "ca.cnf", "-gencrl", "-out", "revoked.crl"],
    );
    let client = format!(
        "sslcert={} sslkey={}",
        c.file("client.crt"),
        c.file("client.key")
    );
    let crl = |f: &str| dir.path().join(f).display().to_string();
    // A list that does not name the server's certificate: connects.
    let p = c
        .params(&format!("{client} sslcrl={}", crl("empty.crl")))
        .unwrap();
    assert!(who(&p)
        .await
        .expect("CRL without the server")
        .starts_with(CERT_USER));
    // The server's certificate revoked: refused, by sslcrl and by sslcrldir.
    let p = c
        .params(&format!("{client} sslcrl={}", crl("revoked.crl")))
        .unwrap();
    let e = who(&p).await.unwrap_err();
    assert!(e.contains("revoked"), "{e}");
    let crldir = tempfile::tempdir().unwrap();
    std::fs::copy(dir.path().join("revoked.crl"), crldir.path().join("ca.crl")).unwrap();
    let p = c
        .params(&format!("{client} sslcrldir={}", crldir.path().display()))
        .unwrap();
    assert!(who(&p).await.unwrap_err().contains("revoked"));
    // A list named but missing is an error, not silently skipped.
    let p = c
        .params(&format!("{client} sslcrl={}", crl("none.crl")))
        .unwrap();
    let e = who(&p).await.unwrap_err();
    assert!(
        e.contains("none.crl") && e.contains("does not exist"),
        "{e}"
    );
}
