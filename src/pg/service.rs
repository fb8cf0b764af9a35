//! Connection service files (`service=NAME`, `PGSERVICE`), read the way libpq reads them.
//!
//! libpq looks for the service in the user's file (`PGSERVICEFILE`, else `~/.pg_service.conf`)
//! and, only when it is not there, in `PGSYSCONFDIR/pg_service.conf`. The first file that
//! defines the service supplies its keywords; explicit keywords win over them, and they win
//! over the `PG*` variables. tokio-postgres has no service files, hence this module.

use std::path::{Path, PathBuf};

use super::keywords;

/// Debian's compiled-in `PGSYSCONFDIR` (`pg_config --sysconfdir`).
pub const DEFAULT_SYSCONFDIR: &str = "/etc/postgresql-common";

/// Why a service could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// No file defines the service.
    #[error("definition of service \"{name}\" not found (looked in {searched}); define it there, or set PGSERVICEFILE to the file that has it")]
    NotFound {
        /// The service name.
        name: String,
        /// The files looked at, in order.
        searched: String,
    },
    /// A line of a service file is not `key=value` with a libpq keyword.
    #[error("syntax error in service file \"{file}\", line {line}: {why}")]
    Syntax {
        /// The file.
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// The file exists but cannot be read.
    #[error("cannot read service file \"{file}\": {why}")]
    Read {
        /// The file.
        file: String,
        /// The I/O error.
        why: String,
    },
}

/// A service found in a file: where, and its `key=value` pairs in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// The file that defines it.
    pub file: PathBuf,
    /// Its keywords.
    pub pairs: Vec<(String, String)>,
}

/// The files libpq searches, in order: the user's file, then the system file.
pub fn files(env: &dyn Fn(&str) -> Option<String>, home: Option<&Path>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    match env("PGSERVICEFILE").filter(|v| !v.is_empty()) {
        Some(f) => out.push(PathBuf::from(f)),
        None => {
            if let Some(h) = home {
                out.push(h.join(".pg_service.conf"));
            }
        }
    }
    let sysconf = env("PGSYSCONFDIR")
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_SYSCONFDIR.to_string());
    out.push(Path::new(&sysconf).join("pg_service.conf"));
    out
}

/// Finds service `name` in the files libpq would search.
pub fn lookup(
    name: &str,
    env: &dyn Fn(&str) -> Option<String>,
    home: Option<&Path>,
) -> Result<Service, ServiceError> {
    let candidates = files(env, home);
    for file in &candidates {
        let text = match std::fs::read(file) {
            Ok(t) => String::from_utf8_lossy(&t).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(ServiceError::Read {
                    file: file.display().to_string(),
                    why: e.to_string(),
                })
            }
        };
        if let Some(pairs) = parse(&text, name, file)? {
            return Ok(Service {
                file: file.clone(),
                pairs,
            });
        }
    }
    Err(ServiceError::NotFound {
        name: name.to_string(),
        searched: candidates
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// The pairs of section `[name]` in `text`, or `None` when the file does not define it.
fn parse(
    text: &str,
    name: &str,
    file: &Path,
) -> Result<Option<Vec<(String, String)>>, ServiceError> {
    let syntax = |line: usize, why: String| ServiceError::Syntax {
        file: file.display().to_string(),
        line,
        why,
    };
    let mut in_section = false;
    let mut found: Option<Vec<(String, String)>> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            if found.is_some() {
                // libpq stops at the next section once the service was read.
                break;
            }
            let Some(section) = rest.strip_suffix(']') else {
                return Err(syntax(
                    i + 1,
                    format!("unterminated section header {line:?}"),
                ));
            };
            in_section = section.trim() == name;
            if in_section {
                found = Some(Vec::new());
            }
            continue;
        }
        if !in_section {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(syntax(i + 1, format!("missing \"=\" in {line:?}")));
        };
        let (k, v) = (k.trim(), v.trim());
        if k == "service" {
            return Err(syntax(
                i + 1,
                "nested service specifications are not supported".into(),
            ));
        }
        if keywords::find(k).is_none() {
            return Err(syntax(i + 1, format!("unknown keyword \"{k}\"")));
        }
        if let Some(pairs) = found.as_mut() {
            pairs.retain(|(pk, _)| pk != k);
            pairs.push((k.to_string(), v.to_string()));
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, String)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        move |k: &str| m.get(k).cloned()
    }

    #[test]
    fn user_file_then_system_file() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("user.conf");
        let sys = dir.path().join("sys");
        std::fs::create_dir(&sys).unwrap();
        std::fs::write(
            &user,
            "# mine\n[prod]\nhost = db1\nport=5433\n\n[other]\nhost=x\n",
        )
        .unwrap();
        std::fs::write(
            sys.join("pg_service.conf"),
            "[prod]\nhost=sysdb\n[staging]\nhost=stage\ndbname=app\n",
        )
        .unwrap();
        let env = env_of(&[
            ("PGSERVICEFILE", user.display().to_string()),
            ("PGSYSCONFDIR", sys.display().to_string()),
        ]);
        let s = lookup("prod", &env, None).unwrap();
        assert_eq!(s.file, user);
        assert_eq!(
            s.pairs,
            vec![
                ("host".into(), "db1".into()),
                ("port".into(), "5433".into())
            ]
        );
        let s = lookup("staging", &env, None).unwrap();
        assert_eq!(s.file, sys.join("pg_service.conf"));
        assert_eq!(s.pairs.len(), 2);
        let e = lookup("nope", &env, None).unwrap_err();
        assert!(e.to_string().contains("\"nope\" not found"), "{e}");
        assert!(e.to_string().contains("user.conf"), "{e}");
    }

    #[test]
    fn bad_lines_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s.conf");
        let env = env_of(&[
            ("PGSERVICEFILE", f.display().to_string()),
            ("PGSYSCONFDIR", "/nonexistent".into()),
        ]);
        for (text, want) in [
            ("[a]\nfrob=1\n", "line 2: unknown keyword \"frob\""),
            ("[a]\nhost\n", "line 2: missing"),
            ("[a]\nservice=b\n", "nested"),
        ] {
            std::fs::write(&f, text).unwrap();
            let e = lookup("a", &env, None).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
        // an unknown keyword in another service does not matter
        std::fs::write(&f, "[b]\nfrob=1\n[a]\nhost=h\n").unwrap();
        assert!(lookup("a", &env, None).is_ok());
    }
}
