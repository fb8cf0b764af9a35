//! Finding PostgreSQL server binaries: the system install, `PG_BINDIR`, or the version matrix.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::error::{Result, SandboxError};

/// Environment variable naming a directory with `initdb`, `pg_ctl` and `postgres`.
pub const PG_BINDIR_ENV: &str = "PG_BINDIR";

/// Environment variable naming where `.ci/install-postgres-versions` put extra majors.
pub const VERSIONS_DIR_ENV: &str = "FV_PG_VERSIONS_DIR";

/// Default for [`VERSIONS_DIR_ENV`]: majors live in `/opt/failover-verify/pg<major>/bin`.
pub const DEFAULT_VERSIONS_DIR: &str = "/opt/failover-verify";

/// The majors the version-matrix tests want (15 is the system install on the dev machines).
pub const MATRIX_MAJORS: [u32; 6] = [13, 14, 15, 16, 17, 18];

/// One installation of PostgreSQL's server programs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgInstall {
    /// Directory holding `initdb`, `pg_ctl`, `postgres` (and maybe `pg_basebackup`, `pg_rewind`).
    pub bindir: PathBuf,
    /// Major version, e.g. 15.
    pub version_major: u32,
    /// Version as printed by `postgres --version` after "(PostgreSQL) ", e.g. `15.14 (Debian ...)`.
    pub version_string: String,
}

/// One slot of the version matrix: a wanted major and the installation found for it, if any.
#[derive(Clone, Debug)]
pub struct MatrixEntry {
    /// The wanted major version.
    pub major: u32,
    /// The installation found for it.
    pub install: Option<PgInstall>,
}

impl PgInstall {
    /// Finds an installation: `$PG_BINDIR`, then `pg_config --bindir`, then the highest
    /// `/usr/lib/postgresql/*/bin`.
    pub fn find() -> Result<PgInstall> {
        let mut searched = Vec::new();
        if let Some(dir) = std::env::var_os(PG_BINDIR_ENV) {
            // An explicit choice: report its problem rather than silently falling back.
            return PgInstall::at(PathBuf::from(dir));
        }
        searched.push(format!("${PG_BINDIR_ENV} (unset)"));
        match Command::new("pg_config").arg("--bindir").output() {
            Ok(out) if out.status.success() => {
                let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
                searched.push(format!("pg_config --bindir = {}", dir.display()));
                if let Ok(i) = PgInstall::at(&dir) {
                    return Ok(i);
                }
            }
            _ => searched.push("pg_config on PATH (not found)".to_string()),
        }
        searched.push("/usr/lib/postgresql/*/bin".to_string());
        let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let major = e.file_name().to_str()?.parse::<u32>().ok()?;
                Some((major, e.path().join("bin")))
            })
            .collect();
        candidates.sort();
        for (_, dir) in candidates.into_iter().rev() {
            if let Ok(i) = PgInstall::at(&dir) {
                return Ok(i);
            }
        }
        Err(SandboxError::NotFound {
            searched: searched.join(", "),
        })
    }

    /// The installation in `bindir`; fails when `initdb`, `pg_ctl` or `postgres` is missing or
    /// `postgres --version` does not run.
    pub fn at(bindir: impl AsRef<Path>) -> Result<PgInstall> {
        let bindir = bindir.as_ref();
        let bindir = bindir
            .canonicalize()
            .unwrap_or_else(|_| bindir.to_path_buf());
        for b in ["initdb", "pg_ctl", "postgres"] {
            if !bindir.join(b).is_file() {
                return Err(SandboxError::MissingBinary {
                    bindir,
                    binary: b.to_string(),
                });
            }
        }
        let mut cmd = Command::new(bindir.join("postgres"));
        cmd.arg("--version");
        if let Some(lib) = bundled_lib_dir(&bindir) {
            cmd.env("LD_LIBRARY_PATH", lib);
        }
        let out = cmd.output().map_err(|e| SandboxError::Version {
            bindir: bindir.clone(),
            detail: e.to_string(),
        })?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() {
            return Err(SandboxError::Version {
                bindir,
                detail: format!(
                    "{} {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            });
        }
        let (version_major, version_string) =
            parse_version(&text).ok_or_else(|| SandboxError::Version {
                bindir: bindir.clone(),
                detail: format!("unrecognised output {text:?}"),
            })?;
        Ok(PgInstall {
            bindir,
            version_major,
            version_string,
        })
    }

    /// Every installation of the version matrix that is present: the default one
    /// ([`PgInstall::find`]) plus each `$FV_PG_VERSIONS_DIR/pg<major>/bin`, one per major.
    pub fn matrix() -> Vec<PgInstall> {
        let mut found: Vec<PgInstall> = Vec::new();
        if let Ok(i) = PgInstall::find() {
            found.push(i);
        }
        let root = versions_dir();
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("pg"))
            .map(|e| e.path().join("bin"))
            .collect();
        dirs.sort();
        for d in dirs {
            if let Ok(i) = PgInstall::at(&d) {
                if !found.iter().any(|f| f.version_major == i.version_major) {
                    found.push(i);
                }
            }
        }
        found.sort_by_key(|i| i.version_major);
        found
    }

    /// For each of [`MATRIX_MAJORS`] (plus any other major found), the installation or `None`.
    pub fn matrix_entries() -> Vec<MatrixEntry> {
        let found = PgInstall::matrix();
        let mut majors: Vec<u32> = MATRIX_MAJORS.to_vec();
        majors.extend(found.iter().map(|i| i.version_major));
        majors.sort_unstable();
        majors.dedup();
        majors
            .into_iter()
            .map(|major| MatrixEntry {
                major,
                install: found.iter().find(|i| i.version_major == major).cloned(),
            })
            .collect()
    }

    /// Path of program `name` in this installation (whether or not it exists).
    pub fn bin(&self, name: &str) -> PathBuf {
        self.bindir.join(name)
    }

    /// Whether this installation has program `name` (e.g. `pg_basebackup`, `pg_rewind`).
    pub fn has(&self, name: &str) -> bool {
        self.bin(name).is_file()
    }

    /// The bundled library directory (`<bindir>/../lib` holding `libpq.so*`), exported as
    /// `LD_LIBRARY_PATH` to every program of this installation; `None` for distro installs.
    pub fn lib_dir(&self) -> Option<PathBuf> {
        bundled_lib_dir(&self.bindir)
    }
}

/// Where the extra majors live: `$FV_PG_VERSIONS_DIR`, or `/opt/failover-verify`.
pub fn versions_dir() -> PathBuf {
    std::env::var_os(VERSIONS_DIR_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_VERSIONS_DIR))
}

fn bundled_lib_dir(bindir: &Path) -> Option<PathBuf> {
    let lib = bindir.parent()?.join("lib");
    let bundled = std::fs::read_dir(&lib).ok()?.flatten().any(|e| {
        let n = e.file_name();
        let n = n.to_string_lossy();
        n.starts_with("libpq.so") || n.starts_with("libicu")
    });
    bundled.then_some(lib)
}

/// Parses `postgres (PostgreSQL) 15.14 (Debian 15.14-1)` into `(15, "15.14 (Debian 15.14-1)")`.
fn parse_version(text: &str) -> Option<(u32, String)> {
    let rest = text.split_once("(PostgreSQL)")?.1.trim();
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    Some((digits.parse().ok()?, rest.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        assert_eq!(
            parse_version("postgres (PostgreSQL) 15.14 (Debian 15.14-1.pgdg120+1)"),
            Some((15, "15.14 (Debian 15.14-1.pgdg120+1)".to_string()))
        );
        assert_eq!(
            parse_version("postgres (PostgreSQL) 17.10"),
            Some((17, "17.10".to_string()))
        );
        assert_eq!(parse_version("postgres (PostgreSQL) 9.6.24").unwrap().0, 9);
        assert_eq!(parse_version("something else"), None);
    }

    #[test]
    fn missing_bindir_names_the_binary() {
        let dir = tempfile::tempdir().unwrap();
        let err = PgInstall::at(dir.path()).unwrap_err();
        assert!(err.to_string().contains("initdb"), "{err}");
    }
}
