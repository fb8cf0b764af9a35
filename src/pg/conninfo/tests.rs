//! Unit tests of connection-string parsing: both syntaxes, the environment, the password
//! file, service files, libpq's keywords and defaults.

use super::*;
use std::collections::HashMap;
use std::io::Write;

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let m: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k: &str| m.get(k).cloned()
}

fn no_env() -> impl Fn(&str) -> Option<String> {
    // HOME points nowhere so a real ~/.pgpass never leaks into tests.
    env_of(&[("HOME", "/nonexistent-home-for-tests")])
}

fn p(s: &str) -> ConnParams {
    ConnParams::parse(s, &no_env()).unwrap()
}

fn err(s: &str) -> ConnInfoError {
    ConnParams::parse(s, &no_env()).unwrap_err()
}

#[test]
fn kv_basic_and_spaces_around_equals() {
    let c = p("host = db1  port=5433 user =alice dbname= shop sslmode=require");
    assert_eq!(c.host(), &Host::Tcp("db1".into()));
    assert_eq!(c.port(), 5433);
    assert_eq!(c.user(), "alice");
    assert_eq!(c.dbname(), "shop");
    assert_eq!(c.sslmode(), SslMode::Require);
    assert_eq!(c.target(), "db1:5433");
}

#[test]
fn kv_quotes_and_escapes() {
    let c = p(r"host=h user='o\'brien' dbname='my db' password='p w\\x' options=-c\ a=b");
    assert_eq!(c.user(), "o'brien");
    assert_eq!(c.dbname(), "my db");
    assert_eq!(c.password(), Some(r"p w\x"));
    assert_eq!(c.options(), Some("-c a=b"));
    assert_eq!(c.password_source(), &PasswordSource::ConnInfo);
    let c = p("host=h user=u dbname=''");
    assert_eq!(c.dbname(), "u", "empty dbname falls back to the user");
}

#[test]
fn kv_later_key_wins_and_ignored_keys() {
    let c = p("host=h port=1 port=2 user=u application_name=x target_session_attrs=any");
    assert_eq!(c.port(), 2);
}

#[test]
fn kv_errors() {
    assert!(
        matches!(err("host=h user='abc"), ConnInfoError::Syntax(m) if m.contains("unterminated"))
    );
    assert!(
        matches!(err("host"), ConnInfoError::Syntax(m) if m.contains("missing \"=\" after \"host\""))
    );
    assert!(matches!(err("host h"), ConnInfoError::Syntax(_)));
    assert!(matches!(err("=x"), ConnInfoError::Syntax(_)));
    assert_eq!(
        err("host=h user=u foo=bar"),
        ConnInfoError::UnknownKey("foo".into())
    );
    assert!(err("host=h user=u foo=bar").to_string().contains("\"foo\""));
    for bad in ["port=abc", "port=0", "port=70000", "port=-1"] {
        let e = err(&format!("host=h user=u {bad}"));
        assert!(
            matches!(e, ConnInfoError::BadValue { ref key, .. } if key == "port"),
            "{bad}: {e}"
        );
    }
    let e = err("host=h user=u sslmode=verify");
    assert!(e.to_string().contains("verify-full"), "{e}");
    assert!(matches!(
        err("host=h user=u connect_timeout=soon"),
        ConnInfoError::BadValue { .. }
    ));
    assert!(matches!(
        err("host=h user=u hostaddr=db.example"),
        ConnInfoError::BadValue { .. }
    ));
    assert!(matches!(
        err("host=a,b,c port=1,2 user=u"),
        ConnInfoError::BadValue { ref key, ref why, .. } if key == "port" && why.contains("could not match 2 port numbers to 3 hosts")
    ));
    assert!(matches!(
        err("host=a,b hostaddr=127.0.0.1 user=u"),
        ConnInfoError::BadValue { ref key, .. } if key == "hostaddr"
    ));
    assert!(matches!(
        err("host=h user=u target_session_attrs=master"),
        ConnInfoError::BadValue { .. }
    ));
}

#[test]
fn several_hosts_like_libpq() {
    let c = p("host=a,b,/tmp/s port=5432,5433,5434 user=u target_session_attrs=read-write");
    assert!(c.is_multi_host() && c.needs_host_choice());
    assert_eq!(c.target(), "a:5432,b:5433,/tmp/s/.s.PGSQL.5434");
    assert_eq!(c.target_session_attrs(), TargetSessionAttrs::ReadWrite);
    assert!(c.target_session_attrs_given());
    let b = c.pinned(1);
    assert_eq!((b.host(), b.port()), (&Host::Tcp("b".into()), 5433));
    assert!(!b.needs_host_choice());
    assert!(c.pinned(2).is_unix_socket());
    // one port for every host; an empty entry is the default
    let c = p("host=a,b port=6000 user=u");
    assert_eq!(c.target(), "a:6000,b:6000");
    let c = p("host=a,b port=,6001 user=u load_balance_hosts=random");
    assert_eq!(c.target(), "a:5432,b:6001");
    assert!(c.load_balance_hosts());
    assert!(!c.target_session_attrs_given());
    // hostaddr by position
    let c = p("host=a,b hostaddr=127.0.0.1,127.0.0.2 user=u");
    assert_eq!(c.pinned(1).hostaddr(), Some("127.0.0.2".parse().unwrap()));
    // URL form, IPv6 included
    let c = p("postgresql://u@a:5432,[::1]:5433,c/db?target_session_attrs=prefer-standby");
    assert_eq!(c.target(), "a:5432,[::1]:5433,c:5432");
    assert_eq!(c.target_session_attrs(), TargetSessionAttrs::PreferStandby);
    // the redacted form parses back to the same hosts
    let r = c.redacted();
    assert!(r.contains("host=a,::1,c port=5432,5433,5432"), "{r}");
    assert!(r.contains("target_session_attrs=prefer-standby"), "{r}");
    assert_eq!(p(&r).target(), c.target());
    // a single host with a role requirement still needs checking
    assert!(p("host=a user=u target_session_attrs=primary").needs_host_choice());
    assert!(!p("host=a user=u").needs_host_choice());
}

#[test]
fn every_libpq_keyword_is_accepted_or_refused_with_a_reason() {
    let c = p("host=h user=u keepalives=1 krbsrvname=pg gssencmode=prefer application_name=x sslcompression=1");
    let w = c.warnings().join("\n");
    for k in [
        "keepalives",
        "krbsrvname",
        "gssencmode",
        "application_name",
        "sslcompression",
    ] {
        assert!(w.contains(&format!("\"{k}\" ignored")), "{k}: {w}");
    }
    assert!(p("host=h user=u gssencmode=disable").warnings().is_empty());
    for (s, key) in [
        ("gssencmode=require", "gssencmode"),
        ("requirepeer=postgres", "requirepeer"),
        ("require_auth=scram-sha-256", "require_auth"),
        (
            "ssl_max_protocol_version=TLSv1.1",
            "ssl_max_protocol_version",
        ),
        ("min_protocol_version=3.2", "min_protocol_version"),
    ] {
        let e = err(&format!("host=h user=u {s}"));
        assert!(
            matches!(&e, ConnInfoError::Refused { key: k, .. } if k == key),
            "{s}: {e}"
        );
        assert!(e.to_string().contains(key), "{e}");
    }
    // a refused value from the environment names the variable
    let e = ConnParams::parse(
        "host=h user=u",
        &env_of(&[("PGGSSENCMODE", "require"), ("HOME", "/nonexistent")]),
    )
    .unwrap_err();
    assert!(e.to_string().contains("PGGSSENCMODE"), "{e}");
    // ignored keys from the environment are silent
    let c = ConnParams::parse(
        "host=h user=u",
        &env_of(&[("PGAPPNAME", "x"), ("HOME", "/nonexistent")]),
    )
    .unwrap();
    assert!(c.warnings().is_empty());
}

#[test]
fn client_certificate_keys_and_defaults() {
    let c = p("host=h user=u sslcert=/c.crt sslkey=/c.key sslpassword=s3cret sslcrl=/r.crl sslcertmode=require ssl_min_protocol_version=TLSv1.3");
    let t = c.client_tls();
    assert_eq!(t.cert.as_deref(), Some(Path::new("/c.crt")));
    assert_eq!(t.key.as_deref(), Some(Path::new("/c.key")));
    assert_eq!(t.key_password.as_deref(), Some("s3cret"));
    assert!(t.cert_given && t.crl_given);
    assert_eq!(t.cert_mode, SslCertMode::Require);
    assert_eq!(t.min_version, Some(TlsVersion::V1_3));
    for s in [c.redacted(), format!("{c:?}")] {
        assert!(!s.contains("s3cret"), "{s}");
    }
    assert!(c.redacted().contains("sslpassword=********"));
    let back = p(&c.redacted());
    assert_eq!(back.client_tls().cert, t.cert);
    // libpq's defaults under ~/.postgresql, and the PGSSL* variables
    let c = ConnParams::parse("host=h user=u", &env_of(&[("HOME", "/home/x")])).unwrap();
    let t = c.client_tls();
    assert_eq!(
        t.cert.as_deref(),
        Some(Path::new("/home/x/.postgresql/postgresql.crt"))
    );
    assert_eq!(
        t.key.as_deref(),
        Some(Path::new("/home/x/.postgresql/postgresql.key"))
    );
    assert_eq!(
        t.crl.as_deref(),
        Some(Path::new("/home/x/.postgresql/root.crl"))
    );
    assert!(!t.cert_given && !t.crl_given);
    let c = ConnParams::parse(
        "host=h user=u",
        &env_of(&[
            ("HOME", "/home/x"),
            ("PGSSLCERT", "/e.crt"),
            ("PGSSLKEY", "/e.key"),
            ("PGSSLCRL", "/e.crl"),
            ("PGSSLROOTCERT", "/e-ca.crt"),
        ]),
    )
    .unwrap();
    let t = c.client_tls();
    assert_eq!(t.cert.as_deref(), Some(Path::new("/e.crt")));
    assert_eq!(t.key.as_deref(), Some(Path::new("/e.key")));
    assert_eq!(t.crl.as_deref(), Some(Path::new("/e.crl")));
    assert_eq!(c.sslrootcert(), Some(Path::new("/e-ca.crt")));
    assert_eq!(p("host=h user=u sslmode=allow").sslmode(), SslMode::Allow);
}

#[test]
fn service_precedence_keywords_then_service_then_environment() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("services.conf");
    std::fs::write(
        &f,
        "[prod]\nhost=prod-db\nport=6432\ndbname=shop\nsslmode=verify-full\n\n[stage]\nhost=stage-db\nuser=stager\n",
    )
    .unwrap();
    let fs = f.display().to_string();
    let env = env_of(&[
        ("PGSERVICEFILE", fs.as_str()),
        ("PGSYSCONFDIR", "/nonexistent"),
        ("HOME", "/nonexistent"),
        ("PGUSER", "envuser"),
        ("PGPORT", "7000"),
        ("PGSSLMODE", "disable"),
    ]);
    let c = ConnParams::parse("service=prod port=5555", &env).unwrap();
    assert_eq!(c.host(), &Host::Tcp("prod-db".into()), "from the service");
    assert_eq!(c.port(), 5555, "the keyword wins over the service");
    assert_eq!(
        c.sslmode(),
        SslMode::VerifyFull,
        "the service wins over PGSSLMODE"
    );
    assert_eq!(c.user(), "envuser", "the environment fills the rest");
    assert_eq!(c.dbname(), "shop");
    assert_eq!(c.service().map(|(n, _)| n), Some("prod"));
    // PGSERVICE picks the service when the string does not
    let mut pairs = vec![
        ("PGSERVICEFILE", fs.as_str()),
        ("PGSYSCONFDIR", "/nonexistent"),
        ("HOME", "/nonexistent"),
        ("PGSERVICE", "stage"),
        ("PGUSER", "envuser"),
    ];
    let c = ConnParams::parse("", &env_of(&pairs)).unwrap();
    assert_eq!(
        (c.host(), c.user()),
        (&Host::Tcp("stage-db".into()), "stager")
    );
    // service= in the string wins over PGSERVICE
    let c = ConnParams::parse("service=prod", &env_of(&pairs)).unwrap();
    assert_eq!(c.host(), &Host::Tcp("prod-db".into()));
    pairs[3] = ("PGSERVICE", "missing");
    let e = ConnParams::parse("", &env_of(&pairs)).unwrap_err();
    assert!(
        matches!(e, ConnInfoError::Service(ref m) if m.contains("\"missing\" not found")),
        "{e}"
    );
    // ~/.pg_service.conf when PGSERVICEFILE is unset
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join(".pg_service.conf"),
        "[h]\nhost=from-home\n",
    )
    .unwrap();
    let hs = home.path().display().to_string();
    let c = ConnParams::parse(
        "service=h user=u",
        &env_of(&[("HOME", hs.as_str()), ("PGSYSCONFDIR", "/nonexistent")]),
    )
    .unwrap();
    assert_eq!(c.host(), &Host::Tcp("from-home".into()));
}

#[test]
fn empty_input_uses_defaults() {
    let c = ConnParams::parse("", &env_of(&[("PGUSER", "bob"), ("HOME", "/nonexistent")])).unwrap();
    assert_eq!(c.port(), 5432);
    assert_eq!(c.user(), "bob");
    assert_eq!(c.dbname(), "bob");
    assert_eq!(c.sslmode(), SslMode::Prefer);
    let expect_host = if Path::new(DEFAULT_SOCKET_DIR).is_dir() {
        Host::Unix(DEFAULT_SOCKET_DIR.into())
    } else {
        Host::Tcp("localhost".into())
    };
    assert_eq!(c.host(), &expect_host);
    // without PGUSER the OS user is used
    let c = ConnParams::parse("", &no_env()).unwrap();
    assert!(!c.user().is_empty());
}

#[test]
fn env_fallbacks_apply_only_when_absent() {
    let env = env_of(&[
        ("PGHOST", "envhost"),
        ("PGPORT", "6000"),
        ("PGUSER", "envuser"),
        ("PGDATABASE", "envdb"),
        ("PGPASSWORD", "envpw"),
        ("PGSSLMODE", "verify-full"),
        ("PGSSLROOTCERT", "/tmp/ca.pem"),
        ("PGCONNECT_TIMEOUT", "7"),
        ("HOME", "/nonexistent"),
    ]);
    let c = ConnParams::parse("", &env).unwrap();
    assert_eq!(c.host(), &Host::Tcp("envhost".into()));
    assert_eq!(c.port(), 6000);
    assert_eq!(c.user(), "envuser");
    assert_eq!(c.dbname(), "envdb");
    assert_eq!(c.password(), Some("envpw"));
    assert_eq!(c.password_source(), &PasswordSource::Env);
    assert_eq!(c.sslmode(), SslMode::VerifyFull);
    assert_eq!(c.sslrootcert(), Some(Path::new("/tmp/ca.pem")));
    assert_eq!(c.connect_timeout(), Some(Duration::from_secs(7)));
    let c = ConnParams::parse("host=h port=1 user=u password=x sslmode=disable", &env).unwrap();
    assert_eq!(c.host(), &Host::Tcp("h".into()));
    assert_eq!(c.port(), 1);
    assert_eq!(c.password(), Some("x"));
    assert_eq!(c.password_source(), &PasswordSource::ConnInfo);
    assert_eq!(c.sslmode(), SslMode::Disable);
    assert_eq!(c.dbname(), "envdb");
    let e = ConnParams::parse("", &env_of(&[("PGPORT", "x"), ("PGUSER", "u")])).unwrap_err();
    assert!(e.to_string().contains("from PGPORT"), "{e}");
}

#[test]
fn connect_timeout_like_libpq() {
    assert_eq!(p("host=h user=u connect_timeout=0").connect_timeout(), None);
    assert_eq!(
        p("host=h user=u connect_timeout=1").connect_timeout(),
        Some(Duration::from_secs(2))
    );
    assert_eq!(
        p("host=h user=u connect_timeout=-3").connect_timeout(),
        None
    );
}

#[test]
fn hostaddr_only_and_unix_host() {
    let c = p("hostaddr=127.0.0.1 port=5 user=u");
    assert_eq!(c.host(), &Host::Tcp("127.0.0.1".into()));
    assert_eq!(c.target(), "127.0.0.1:5");
    let c = p("host=/tmp/sock port=5433 user=u");
    assert!(c.is_unix_socket());
    assert_eq!(c.target(), "/tmp/sock/.s.PGSQL.5433");
    let c = p("host=db.example hostaddr=::1 user=u");
    assert_eq!(c.hostaddr(), Some("::1".parse().unwrap()));
    assert_eq!(c.tls_server_name(), "db.example");
}

#[test]
fn urls() {
    let c = p("postgresql://al%40ice:s%3Ac%2Fret@db.example:6543/my%20db?sslmode=verify-ca&connect_timeout=5&application_name=x");
    assert_eq!(c.user(), "al@ice");
    assert_eq!(c.password(), Some("s:c/ret"));
    assert_eq!(c.host(), &Host::Tcp("db.example".into()));
    assert_eq!(c.port(), 6543);
    assert_eq!(c.dbname(), "my db");
    assert_eq!(c.sslmode(), SslMode::VerifyCa);
    assert_eq!(c.connect_timeout(), Some(Duration::from_secs(5)));

    let c = p("postgres://u@[::1]:5433/db");
    assert_eq!(c.host(), &Host::Tcp("::1".into()));
    assert_eq!(c.target(), "[::1]:5433");

    let c = p("postgresql://%2Fvar%2Frun%2Fpostgresql:5444/db?user=u");
    assert_eq!(c.host(), &Host::Unix("/var/run/postgresql".into()));
    assert_eq!(c.target(), "/var/run/postgresql/.s.PGSQL.5444");

    let c = p("postgresql:///db?host=/tmp/x&user=u&ssl=true");
    assert_eq!(c.host(), &Host::Unix("/tmp/x".into()));
    assert_eq!(c.sslmode(), SslMode::Require);

    let c = p("postgresql://h?user=u");
    assert_eq!(c.dbname(), "u");
    let c = p("postgresql://u@h");
    assert_eq!((c.user(), c.port()), ("u", 5432));
}

#[test]
fn url_errors() {
    assert!(matches!(
        err("postgresql://u@[::1/db"),
        ConnInfoError::Url(_)
    ));
    assert!(matches!(err("postgresql://u@[]/db"), ConnInfoError::Url(_)));
    assert!(matches!(
        err("postgresql://u@h/db?sslmode"),
        ConnInfoError::Url(_)
    ));
    assert!(matches!(
        err("postgresql://u@h/db?a=b=c"),
        ConnInfoError::Url(_)
    ));
    assert!(matches!(
        err("postgresql://u@h/d%zzb"),
        ConnInfoError::Url(_)
    ));
    assert!(matches!(
        err("postgresql://u@h/d%00b"),
        ConnInfoError::Url(_)
    ));
    assert!(matches!(
        err("postgresql://u@h:port/db"),
        ConnInfoError::BadValue { .. }
    ));
    assert!(matches!(
        err("postgresql://u@h1,[::1/db"),
        ConnInfoError::Url(_)
    ));
    assert_eq!(
        err("postgresql://u@h/db?frob=1"),
        ConnInfoError::UnknownKey("frob".into())
    );
    let e = err("postgresql://u:se%zzcret@h/db");
    assert!(!e.to_string().contains("cret"), "{e}");
}

#[test]
fn password_never_shown() {
    let c = p("host=h user=u password=hunter2secret");
    for s in [format!("{c}"), format!("{c:?}"), c.redacted()] {
        assert!(!s.contains("hunter2secret"), "{s}");
    }
    assert!(c.redacted().contains("password=********"));
    let c = p("postgresql://u:hunter2secret@h/db");
    assert!(!format!("{c:?}{c}").contains("hunter2secret"));
    assert_eq!(
        p("host=h user=u").redacted(),
        "host=h port=5432 user=u dbname=u sslmode=prefer"
    );
    let r = p("host=h user=u dbname='a b' options='-c x=y'").redacted();
    assert_eq!(
        r,
        "host=h port=5432 user=u dbname='a b' sslmode=prefer options='-c x=y'"
    );
    // redacted output parses back to the same parameters
    let back = p(&r);
    assert_eq!((back.dbname(), back.options()), ("a b", Some("-c x=y")));
}

fn passfile(content: &str, mode: u32) -> tempfile::NamedTempFile {
    use std::os::unix::fs::PermissionsExt;
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(content.as_bytes()).unwrap();
    std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(mode)).unwrap();
    f
}

fn with_passfile(input: &str, f: &tempfile::NamedTempFile) -> ConnParams {
    let path = f.path().display().to_string();
    ConnParams::parse(
        input,
        &env_of(&[("PGPASSFILE", &path), ("HOME", "/nonexistent")]),
    )
    .unwrap()
}

#[test]
fn passfile_matching() {
    let f = passfile(
        "# comment\n\
         other:5432:*:u:wrong\n\
         h:5433:db:u:right\n\
         h:*:*:u:wild\n\
         we\\:ird:*:*:*:pa\\:ss\\\\word\n\
         localhost:*:*:sock:socketpw\n\
         /tmp/s:*:*:sock:tmpsock\n",
        0o600,
    );
    let c = with_passfile("host=h port=5433 dbname=db user=u", &f);
    assert_eq!(c.password(), Some("right"));
    assert!(matches!(c.password_source(), PasswordSource::Passfile(_)));
    assert_eq!(
        with_passfile("host=h port=1 dbname=x user=u", &f).password(),
        Some("wild")
    );
    assert_eq!(
        with_passfile("host=we:ird user=z", &f).password(),
        Some("pa:ss\\word")
    );
    assert_eq!(with_passfile("host=nomatch user=u", &f).password(), None);
    assert_eq!(
        with_passfile("host=/var/run/postgresql user=sock", &f).password(),
        Some("socketpw")
    );
    assert_eq!(
        with_passfile("host=/tmp/s user=sock", &f).password(),
        Some("tmpsock")
    );
    // explicit password and PGPASSWORD win over the file
    assert_eq!(
        with_passfile("host=h port=5433 dbname=db user=u password=x", &f).password(),
        Some("x")
    );
    let path = f.path().display().to_string();
    let c = ConnParams::parse(
        "host=h port=5433 dbname=db user=u",
        &env_of(&[("PGPASSFILE", &path), ("PGPASSWORD", "envpw")]),
    )
    .unwrap();
    assert_eq!(c.password(), Some("envpw"));
    // the passfile key works too
    let c = ConnParams::parse(
        &format!("host=h port=5433 dbname=db user=u passfile={path}"),
        &no_env(),
    )
    .unwrap();
    assert_eq!(c.password(), Some("right"));
}

#[test]
fn passfile_with_open_permissions_is_ignored_with_warning() {
    let f = passfile("*:*:*:*:secret\n", 0o644);
    let c = with_passfile("host=h user=u", &f);
    assert_eq!(c.password(), None);
    assert_eq!(c.warnings().len(), 1);
    assert!(
        c.warnings()[0].contains("group or world access"),
        "{:?}",
        c.warnings()
    );
    assert!(!c.warnings()[0].contains("secret"));
}

#[test]
fn passfile_from_home() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let pf = dir.path().join(".pgpass");
    std::fs::write(&pf, "*:*:*:u:homepw\n").unwrap();
    std::fs::set_permissions(&pf, std::fs::Permissions::from_mode(0o600)).unwrap();
    let home = dir.path().display().to_string();
    let c = ConnParams::parse("host=h user=u", &env_of(&[("HOME", &home)])).unwrap();
    assert_eq!(c.password(), Some("homepw"));
    assert_eq!(
        c.effective_sslrootcert(),
        Some(dir.path().join(".postgresql/root.crt").as_path())
    );
}
