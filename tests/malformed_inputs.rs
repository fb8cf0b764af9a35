//! A corpus of malformed inputs for the parsers at the edge: LSNs, conninfo strings, URLs and
//! timeline history files. Each must be refused with an error (never a panic, never a silent
//! default), and the error must say what was wrong. Crashes found by fuzzing (`fuzz/`) are
//! added here as regular tests.

use failover_verify::lsn::{Lsn, TimelineId};
use failover_verify::pg::ConnParams;
use failover_verify::timeline::TimelineHistory;

/// An environment with nothing set (HOME points nowhere: no ~/.pgpass).
fn empty_env(key: &str) -> Option<String> {
    (key == "HOME").then(|| "/nonexistent-home-for-tests".to_string())
}

/// Runs `f` and turns a panic into a test failure naming the input.
fn no_panic<T>(what: &str, input: &str, f: impl FnOnce() -> T + std::panic::UnwindSafe) -> T {
    std::panic::catch_unwind(f).unwrap_or_else(|_| panic!("{what} panicked on {input:?}"))
}

#[test]
fn malformed_lsns_are_refused_with_the_input_in_the_error() {
    let bad = [
        "",
        "/",
        "0/",
        "/0",
        "0",
        "00000000",
        "0/0/0",
        "0//0",
        "g/0",
        "0/g",
        "0x1/0",
        "+1/0",
        "-1/0",
        "1 /0",
        "1/ 0",
        "123456789/0",
        "0/123456789",
        "FFFFFFFFF/0",
        "١/٠",   // Arabic-Indic digits
        "０/０", // full-width digits
        "0/0\0",
        "\u{feff}0/0",
        "Ø/0",
        "😀/😀",
    ];
    for s in bad {
        let r = no_panic("Lsn::from_str", s, || s.parse::<Lsn>());
        let e = r.expect_err(s);
        assert!(
            e.to_string()
                .contains(&format!("{:?}", s.trim()).trim_matches('"').to_string())
                || e.to_string().contains(s.trim()),
            "the error names the input {s:?}: {e}"
        );
    }
    // Valid, if unusual: hex digits only, so "1e3" is a number.
    assert_eq!("1e3/0".parse::<Lsn>().unwrap(), Lsn(0x1e3 << 32));
    // The edges that are valid.
    assert_eq!("FFFFFFFF/FFFFFFFF".parse::<Lsn>().unwrap(), Lsn(u64::MAX));
    assert_eq!(" 0/0 ".parse::<Lsn>().unwrap(), Lsn(0));
    assert_eq!("a/B".parse::<Lsn>().unwrap(), Lsn(0xA_0000_000B));
    assert_eq!(
        Lsn(u64::MAX).to_string().parse::<Lsn>().unwrap(),
        Lsn(u64::MAX)
    );
}

#[test]
fn malformed_conninfos_are_refused() {
    let bad = [
        "host",
        "=x",
        "host=a port",
        "host='unterminated",
        "host=a port=x",
        "host=a port=-1",
        "host=a port=0",
        "host=a port=65536",
        "host=a port=99999999999999999999",
        "host=a port=5432x",
        "host=a colour=red",
        "host=a connect_timeout=abc",
        "host=a sslmode=sometimes",
        "host=a,b port=1,2,3",
        "host=a,b hostaddr=127.0.0.1",
        "host=a target_session_attrs=master",
        "host=a load_balance_hosts=yes",
        "host=a gssencmode=require",
        "host=a hostaddr=not-an-ip",
        "host=a password='x",
        "host=a = b",
        "host=a user='a' 'b'",
        "\u{0}",
    ];
    for s in bad {
        let r = no_panic("ConnParams::parse", s, || ConnParams::parse(s, &empty_env));
        let e = match r {
            Err(e) => e.to_string(),
            Ok(p) => panic!("{s:?} was accepted: {}", p.redacted()),
        };
        assert!(!e.is_empty(), "{s:?}");
        assert!(!e.contains("panicked"), "{s:?}: {e}");
    }
}

#[test]
fn malformed_urls_are_refused() {
    let bad = [
        "postgresql://host:port/db",
        "postgres://h:-1/db",
        "postgres://h:65536/db",
        "postgres://h:5432x/db",
        "postgres://[::1/db",
        "postgres://[/db",
        "postgres://h/db?colour=red",
        "postgres://h/db?sslmode=sometimes",
        "postgres://h/db?connect_timeout=x",
        "postgres://h/db?=x",
        "postgres://h/db%zz",
        "postgres://%zz@h/db",
        "postgres://u:%zz@h/db",
        "postgres://h/%ff%fe",
        "postgres://a,[::1/db",
        "postgres://h1:5432,h2:x/db",
        "mysql://h/db",
        "postgres:/h/db",
    ];
    for s in bad {
        let r = no_panic("ConnParams::parse (URL)", s, || {
            ConnParams::parse(s, &empty_env)
        });
        if let Ok(p) = r {
            panic!("{s:?} was accepted: {}", p.redacted());
        }
    }
    // A password in a refused URL never appears in the error.
    let e = ConnParams::parse("postgres://u:Sekr3t-pw@h:99999/db", &empty_env).unwrap_err();
    assert!(!e.to_string().contains("Sekr3t"), "{e}");
}

#[test]
fn malformed_history_files_are_refused_with_file_and_line() {
    let tli = TimelineId(3);
    let bad: [(&str, &str); 18] = [
        ("missing switchpoint", "1\n"),
        ("missing tab", "1 0/3000060 reason\n"),
        ("parent not a number", "x\t0/3000060\treason\n"),
        ("negative parent", "-1\t0/3000060\treason\n"),
        ("parent overflow", "99999999999\t0/3000060\treason\n"),
        ("bad lsn", "1\t0/30000G0\treason\n"),
        ("lsn without slash", "1\t3000060\treason\n"),
        ("empty lsn", "1\t\treason\n"),
        ("parent equals timeline", "3\t0/3000060\treason\n"),
        ("parent above timeline", "4\t0/3000060\treason\n"),
        ("parents out of order", "2\t0/3000060\tr\n1\t0/4000060\tr\n"),
        ("duplicate parent", "1\t0/3000060\tr\n1\t0/4000060\tr\n"),
        (
            "switchpoints go backwards",
            "1\t0/5000000\tr\n2\t0/4000000\tr\n",
        ),
        ("parent zero", "0\t0/3000060\treason\n"),
        ("garbage", "\u{0}\u{1}\u{2}"),
        ("lsn too long", "1\t123456789/0\tr\n"),
        ("unicode digits", "١\t0/3000060\tr\n"),
        ("second line bad", "1\t0/3000060\tr\nnonsense\n"),
    ];
    for (what, content) in bad {
        let r = no_panic("TimelineHistory::parse", content, || {
            TimelineHistory::parse("00000003.history", tli, content)
        });
        let e = r.expect_err(what);
        let text = e.to_string();
        assert!(
            text.contains("00000003.history") && text.contains("line "),
            "{what}: {text}"
        );
    }
    // Comments, blank lines and CRLF are what PostgreSQL tolerates too.
    let ok = TimelineHistory::parse(
        "00000003.history",
        tli,
        "# comment\r\n\r\n1\t0/3000060\tno recovery target specified\r\n2\t0/5000148\tx\n",
    )
    .unwrap();
    assert_eq!(ok.entries.len(), 2);
    // An empty file cannot describe timeline 3, which must have ancestors.
    let e = TimelineHistory::parse("00000003.history", tli, "").unwrap_err();
    assert!(e.to_string().contains("ancestor"), "{e}");
    // A parsed history answers every lookup, even far outside it.
    assert_eq!(ok.end_of(TimelineId(7)), None);
    assert_eq!(ok.timeline_at(Lsn(u64::MAX)), tli);
    assert_eq!(ok.timeline_at(Lsn(0)), TimelineId(1));
}
