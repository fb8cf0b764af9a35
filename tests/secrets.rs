//! Passwords never reach stdout, stderr or report files: from a conninfo, a URL, PGPASSWORD,
//! a password file or a multi-host string (with `sslpassword` and other secret keywords), in
//! every format, on success and on failure.

mod util;

use std::os::unix::fs::PermissionsExt;

use failover_verify::sandbox::{ClusterOptions, LossyFailover, LossyFailoverSpec};
use util::{install_or_skip, run_tool_env, Run};

/// How the password is given: (name, new primary, former primary, environment).
type Way<'a> = (&'a str, String, String, Vec<(&'a str, &'a str)>);

const MARKER: &str = "Zq8-marker-PASSWORD-7w";

fn assert_clean(run: &Run, what: &str) {
    for (name, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
        assert!(
            !text.contains(MARKER),
            "{what}: password in {name}:\n{text}"
        );
        assert!(
            !text.contains("marker-PASSWORD"),
            "{what}: part of the password in {name}"
        );
    }
}

#[tokio::test]
async fn passwords_never_appear_in_any_output() {
    let Some(install) = install_or_skip("secrets") else {
        return;
    };
    let spec = LossyFailoverSpec {
        primary: ClusterOptions::new("primary").password(MARKER),
        standby: ClusterOptions::new("standby").password(MARKER),
        ..LossyFailoverSpec::with_lost_commits(2)
    };
    let f = LossyFailover::build(&install, spec).await.unwrap();
    let (np, fp) = (f.new_primary.port(), f.former_primary.port());
    let kv = |port: u16, pw: &str| {
        format!("host=127.0.0.1 port={port} user=postgres dbname=postgres password={pw}")
    };
    let url = |port: u16, pw: &str| format!("postgres://postgres:{pw}@127.0.0.1:{port}/postgres");
    let bare = |port: u16| format!("host=127.0.0.1 port={port} user=postgres dbname=postgres");

    let dir = tempfile::tempdir().unwrap();
    let passfile = dir.path().join("pgpass");
    std::fs::write(&passfile, format!("127.0.0.1:*:*:postgres:{MARKER}\n")).unwrap();
    std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o600)).unwrap();
    let passfile_s = passfile.to_str().unwrap().to_string();

    // Several hosts (the first down), with secrets in keywords the tool does not use.
    let down = util::closed_port();
    let multi = |port: u16, extra: &str| {
        format!("host=127.0.0.1,127.0.0.1 port={down},{port} user=postgres dbname=postgres password={MARKER} sslpassword={MARKER} oauth_client_secret={MARKER} connect_timeout=2 {extra}")
    };
    let ways: Vec<Way> = vec![
        (
            "multi-host",
            multi(np, ""),
            multi(fp, "target_session_attrs=primary"),
            vec![],
        ),
        ("conninfo", kv(np, MARKER), kv(fp, MARKER), vec![]),
        ("url", url(np, MARKER), url(fp, MARKER), vec![]),
        (
            "PGPASSWORD",
            bare(np),
            bare(fp),
            vec![("PGPASSWORD", MARKER)],
        ),
        (
            "passfile",
            bare(np),
            bare(fp),
            vec![("PGPASSFILE", passfile_s.as_str())],
        ),
    ];
    for (i, (how, new, former, env)) in ways.iter().enumerate() {
        // Every way in JSON; the first also in every format, to stdout and to a file.
        let formats: &[&str] = if i == 0 {
            &["text", "json", "markdown", "csv", "html"]
        } else {
            &["json"]
        };
        for format in formats {
            let out = dir.path().join(format!("{how}.{format}"));
            for to_file in [false, i == 0] {
                let mut args = vec![
                    "compare",
                    "--new-primary",
                    new,
                    "--former-primary",
                    former,
                    "--format",
                    format,
                ];
                let o = out.to_str().unwrap().to_string();
                if to_file {
                    args.extend(["--output", &o]);
                }
                let run = run_tool_env(&args, env).await;
                assert_eq!(run.code, 1, "{how}/{format}: {}", run.stderr);
                assert_clean(&run, &format!("{how}/{format}"));
                if to_file {
                    let text = std::fs::read_to_string(&out).unwrap();
                    assert!(
                        !text.contains(MARKER),
                        "{how}/{format}: password in the report file"
                    );
                    assert!(text.contains("127.0.0.1"), "the file holds the report");
                }
            }
        }
    }

    // Failures: a wrong password, an unreachable server, a bad conninfo — all name the
    // target and never the password.
    let wrong = format!("{MARKER}-wrong");
    let run = run_tool_env(
        &[
            "compare",
            "--new-primary",
            &kv(np, &wrong),
            "--former-primary",
            &kv(fp, &wrong),
        ],
        &[],
    )
    .await;
    assert_eq!(run.code, 3);
    assert!(
        run.stderr.contains(&format!("127.0.0.1:{np}")),
        "{}",
        run.stderr
    );
    assert_clean(&run, "wrong password");
    let closed = util::closed_port();
    let run = run_tool_env(
        &[
            "compare",
            "--new-primary",
            &url(closed, MARKER),
            "--former-primary",
            &url(closed, MARKER),
            "--connect-timeout",
            "2",
        ],
        &[],
    )
    .await;
    assert_eq!(run.code, 3);
    assert_clean(&run, "unreachable");
    let run = run_tool_env(
        &[
            "compare",
            "--new-primary",
            &format!("{} bogus_key=1", kv(np, MARKER)),
            "--former-primary",
            &kv(fp, MARKER),
        ],
        &[],
    )
    .await;
    assert_eq!(run.code, 3);
    assert!(run.stderr.contains("bogus_key"), "{}", run.stderr);
    assert_clean(&run, "bad conninfo");
    let run = run_tool_env(
        &[
            "compare",
            "--new-primary",
            &format!("postgres://postgres:{MARKER}@127.0.0.1:notaport/x"),
            "--former-primary",
            &kv(fp, MARKER),
        ],
        &[],
    )
    .await;
    assert_eq!(run.code, 3);
    assert_clean(&run, "bad URL");
    // A refused keyword carrying a secret: named, its value never shown.
    let run = run_tool_env(
        &[
            "compare",
            "--new-primary",
            &format!("{} scram_client_key={MARKER}", kv(np, MARKER)),
            "--former-primary",
            &kv(fp, MARKER),
        ],
        &[],
    )
    .await;
    assert_eq!(run.code, 3);
    assert!(run.stderr.contains("scram_client_key"), "{}", run.stderr);
    assert_clean(&run, "refused keyword");
}
