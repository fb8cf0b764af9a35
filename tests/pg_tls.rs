//! TLS against a real PostgreSQL 15 with a throwaway CA made by the `openssl` CLI:
//! verify-full / verify-ca / require for both the SQL session and the replication client.
//! Skipped (with a printed notice) when `openssl` is not installed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::{env, Cluster};
use failover_verify::pg::{
    connect, connect_replication, ConnParams, ErrorKind, ReplicationOptions, SessionOptions,
};

const NAME: &str = "db.fv.test";
const TLS_USER: (&str, &str) = ("tls_user", "tls-Secret-pw5");

struct TlsCluster {
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

fn make_ca(dir: &Path, prefix: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{prefix}ca.key"),
            "-out",
            &format!("{prefix}ca.crt"),
            "-days",
            "2",
            "-subj",
            &format!("/CN=failover-verify test {prefix}CA"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

fn setup() -> Option<&'static TlsCluster> {
    static TLS: OnceLock<Option<TlsCluster>> = OnceLock::new();
    TLS.get_or_init(|| {
        if Command::new("openssl").arg("version").output().map(|o| !o.status.success()).unwrap_or(true) {
            eprintln!("NOTICE: openssl CLI not installed; skipping TLS tests");
            return None;
        }
        let certs = tempfile::tempdir().unwrap().keep();
        make_ca(&certs, "");
        make_ca(&certs, "other-");
        openssl(
            &certs,
            &[
                "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", "server.key", "-out", "server.csr", "-subj", &format!("/CN={NAME}"),
            ],
        );
        std::fs::write(
            certs.join("ext.cnf"),
            format!("subjectAltName=DNS:{NAME}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"),
        )
        .unwrap();
        openssl(
            &certs,
            &[
                "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf",
            ],
        );
        let hba = "\
local all all trust
local replication all trust
hostssl all tls_user 127.0.0.1/32 scram-sha-256
hostssl replication tls_user 127.0.0.1/32 scram-sha-256
hostssl all all 127.0.0.1/32 trust
hostssl replication all 127.0.0.1/32 trust
";
        let src = certs.clone();
        let cluster = Cluster::start_with(
            "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n",
            hba,
            move |data| {
                use std::os::unix::fs::PermissionsExt;
                let (uid, gid) = common::postgres_ids();
                for f in ["server.crt", "server.key"] {
                    let to = data.join(f);
                    std::fs::copy(src.join(f), &to).unwrap();
                    std::os::unix::fs::chown(&to, Some(uid), Some(gid)).unwrap();
                    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).unwrap();
                }
            },
        );
        cluster.exec_blocking(&format!(
            "CREATE ROLE {} LOGIN REPLICATION PASSWORD '{}'",
            TLS_USER.0, TLS_USER.1
        ));
        extern "C" fn stop_tls() {
            if let Some(Some(t)) = TLS.get() {
                t.cluster.stop();
                let _ = std::fs::remove_dir_all(&t.certs);
            }
        }
        // SAFETY: registering a plain extern "C" function with no captured state.
        unsafe {
            libc::atexit(stop_tls);
        }
        Some(TlsCluster { cluster, certs })
    })
    .as_ref()
}

impl TlsCluster {
    fn params(&self, extra: &str) -> ConnParams {
        let input = format!(
            "hostaddr=127.0.0.1 port={} dbname=postgres user=postgres {extra}",
            self.cluster.port
        );
        ConnParams::parse(&input, &env(&[])).expect("conninfo")
    }

    fn ca(&self, name: &str) -> String {
        self.certs.join(name).display().to_string()
    }
}

#[tokio::test]
async fn session_verify_full_ca_and_require() {
    let Some(t) = setup() else { return };
    let opts = SessionOptions::default();
    let ca = t.ca("ca.crt");

    // verify-full with the certificate's name (connecting to 127.0.0.1 through hostaddr)
    let s = connect(
        &t.params(&format!("host={NAME} sslmode=verify-full sslrootcert={ca}")),
        &opts,
    )
    .await
    .expect("verify-full");
    let ssl = s
        .simple_value("SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .await
        .unwrap();
    assert_eq!(ssl.as_deref(), Some("true"));

    // verify-full with a name the certificate does not carry
    let e = connect(
        &t.params(&format!(
            "host=127.0.0.1 sslmode=verify-full sslrootcert={ca}"
        )),
        &opts,
    )
    .await
    .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Tls { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("not valid for host name \"127.0.0.1\""),
        "{msg}"
    );
    assert!(
        msg.contains("verify-ca"),
        "the hint offers verify-ca: {msg}"
    );

    // verify-ca ignores the name but checks the chain
    connect(
        &t.params(&format!(
            "host=127.0.0.1 sslmode=verify-ca sslrootcert={ca}"
        )),
        &opts,
    )
    .await
    .expect("verify-ca with a wrong host name");

    // a CA that did not sign the server certificate
    let other = t.ca("other-ca.crt");
    let e = connect(
        &t.params(&format!(
            "host={NAME} sslmode=verify-ca sslrootcert={other}"
        )),
        &opts,
    )
    .await
    .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Tls { .. }), "{e:?}");
    assert!(e.to_string().contains("not issued by a CA"), "{e}");

    // require: encrypted, nothing verified (no root file under the fake HOME)
    connect(&t.params("host=127.0.0.1 sslmode=require"), &opts)
        .await
        .expect("require");
    // require + a wrong root file behaves like verify-ca (libpq) and fails
    let e = connect(
        &t.params(&format!(
            "host=127.0.0.1 sslmode=require sslrootcert={other}"
        )),
        &opts,
    )
    .await
    .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Tls { .. }), "{e:?}");

    // missing root file: the path is named
    let e = connect(
        &t.params("host=127.0.0.1 sslmode=verify-full sslrootcert=/no/such/root.crt"),
        &opts,
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("/no/such/root.crt"), "{e}");

    // the server only accepts TLS: sslmode=disable is refused by pg_hba.conf
    let e = connect(&t.params("host=127.0.0.1 sslmode=disable"), &opts)
        .await
        .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Auth { .. }), "{e:?}");
    assert_eq!(e.sqlstate(), Some("28000"));

    // SCRAM over TLS (the server also offers SCRAM-SHA-256-PLUS)
    let (u, pw) = TLS_USER;
    connect(
        &t.params(&format!(
            "host={NAME} user={u} password={pw} sslmode=verify-full sslrootcert={ca}"
        )),
        &opts,
    )
    .await
    .expect("SCRAM over TLS");
}

#[tokio::test]
async fn replication_over_tls() {
    let Some(t) = setup() else { return };
    let opts = ReplicationOptions::default();
    let ca = t.ca("ca.crt");
    let (u, pw) = TLS_USER;

    let mut r = connect_replication(
        &t.params(&format!(
            "host={NAME} user={u} password={pw} sslmode=verify-full sslrootcert={ca}"
        )),
        &opts,
    )
    .await
    .expect("replication verify-full + SCRAM over TLS");
    r.identify_system().await.unwrap();

    let e = connect_replication(
        &t.params(&format!(
            "host=127.0.0.1 sslmode=verify-full sslrootcert={ca}"
        )),
        &opts,
    )
    .await
    .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Tls { .. }), "{e:?}");
    assert!(e.to_string().contains("not valid for host name"), "{e}");

    let mut r = connect_replication(
        &t.params(&format!(
            "host=127.0.0.1 sslmode=verify-ca sslrootcert={ca}"
        )),
        &opts,
    )
    .await
    .expect("verify-ca");
    r.identify_system().await.unwrap();
    connect_replication(&t.params("host=127.0.0.1 sslmode=require"), &opts)
        .await
        .expect("require");
    let e = connect_replication(&t.params("host=127.0.0.1 sslmode=disable"), &opts)
        .await
        .unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::InsufficientPrivilege { .. }),
        "no hba line: {e:?}"
    );
}
