//! The catalogue of checks: the built-in ones and those from `--checks-dir`, each validated
//! as read-only SQL before it runs.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::finding::Severity;

use super::compare::{CompareMode, Comparison, RunsOn};

/// The TOML layout of a check file (see the README's "Checks" section).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    id: String,
    title: String,
    severity: String,
    description: String,
    remedy: String,
    #[serde(default)]
    grant: Option<String>,
    #[serde(default)]
    ok_summary: Option<String>,
    #[serde(default)]
    finding_summary: Option<String>,
    sql: RawSql,
    compare: RawCompare,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSql {
    #[serde(default)]
    new: Option<String>,
    #[serde(default)]
    former: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCompare {
    mode: String,
    #[serde(default)]
    key: Vec<String>,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    values: Vec<String>,
}

/// The built-in checks, embedded at compile time: (file name under `checks/`, TOML text).
/// A unit test makes sure every `checks/*.toml` is listed here.
pub(super) const BUILTIN: &[(&str, &str)] = &[
    (
        "extensions.toml",
        include_str!("../../checks/extensions.toml"),
    ),
    (
        "pg_rewind_readiness.toml",
        include_str!("../../checks/pg_rewind_readiness.toml"),
    ),
    (
        "prepared_xacts.toml",
        include_str!("../../checks/prepared_xacts.toml"),
    ),
    (
        "publications.toml",
        include_str!("../../checks/publications.toml"),
    ),
    (
        "replication_settings.toml",
        include_str!("../../checks/replication_settings.toml"),
    ),
    (
        "replication_slots.toml",
        include_str!("../../checks/replication_slots.toml"),
    ),
    (
        "sequences_behind.toml",
        include_str!("../../checks/sequences_behind.toml"),
    ),
    (
        "subscriptions.toml",
        include_str!("../../checks/subscriptions.toml"),
    ),
    (
        "unlogged_tables.toml",
        include_str!("../../checks/unlogged_tables.toml"),
    ),
];

/// Why a check file or the catalog could not be loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// The checks directory could not be listed.
    #[error("{}: cannot read the checks directory: {source}", dir.display())]
    Dir {
        /// The directory given with `--checks-dir`.
        dir: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A check file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The file.
        file: String,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or has an unknown key or a value of the wrong type.
    #[error("{file}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Syntax {
        /// The file.
        file: String,
        /// The line of the error, when the parser knows it.
        line: Option<usize>,
        /// The parser's message (it names the key).
        message: String,
    },
    /// A key has a value the catalog cannot use (empty SQL, unknown mode, ...).
    #[error("{file}: {key}: {message}")]
    Invalid {
        /// The file.
        file: String,
        /// The offending key, e.g. `compare.mode` or `sql.former`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// Two files of the same origin define the same id.
    #[error("{file}: duplicate check id \"{id}\" (already defined in {first})")]
    DuplicateId {
        /// The second file.
        file: String,
        /// The id.
        id: String,
        /// The file that defined it first.
        first: String,
    },
}

/// Where a check came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Shipped in the binary (file name under `checks/`).
    Builtin(String),
    /// A user's file from `--checks-dir`.
    User(PathBuf),
}

impl Origin {
    /// The file as messages name it: `checks/<name>` for built-ins, the path for user files.
    pub fn file(&self) -> String {
        match self {
            Origin::Builtin(name) => format!("checks/{name}"),
            Origin::User(p) => p.display().to_string(),
        }
    }

    /// `builtin`, or the user file's path.
    pub fn label(&self) -> String {
        match self {
            Origin::Builtin(_) => "builtin".into(),
            Origin::User(p) => p.display().to_string(),
        }
    }
}

/// One declarative check, parsed and validated.
#[derive(Clone, Debug)]
pub struct Check {
    /// Stable identifier (`[a-z0-9_]+`), unique in a catalog.
    pub id: String,
    /// One-line title.
    pub title: String,
    /// How much a finding matters.
    pub severity: Severity,
    /// What the check looks at and why it matters.
    pub description: String,
    /// The SELECT to run on the new primary, when the mode needs it.
    pub new_sql: Option<String>,
    /// The SELECT to run on the former primary, when the mode needs it.
    pub former_sql: Option<String>,
    /// How the results turn into findings.
    pub compare: Comparison,
    /// What to do about a finding.
    pub remedy: String,
    /// The grant that lets the check run when it fails for lack of privilege.
    pub grant: Option<String>,
    /// Summary when there is nothing to report (placeholders: `{n}`, `{total}`, `{keys}`).
    pub ok_summary: Option<String>,
    /// Summary of a finding (placeholders: `{n}`, `{total}`, `{keys}`).
    pub finding_summary: Option<String>,
    /// Where the check was defined.
    pub origin: Origin,
}

/// Functions a check's SQL may not call: they change server state even inside a read-only
/// transaction (settings, WAL, slots, backends, files) or assign a transaction id. A name
/// ending in `*` is a prefix. Matched against the SQL's identifiers, case-insensitively.
const FORBIDDEN_SQL: &[&str] = &[
    "set_config",
    "nextval",
    "setval",
    "txid_current",
    "pg_current_xact_id",
    "pg_switch_wal",
    "pg_switch_xlog",
    "pg_create_*",
    "pg_copy_*",
    "pg_drop_replication_slot",
    "pg_replication_slot_advance",
    "pg_replication_origin_*",
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_logical_emit_message",
    "pg_promote",
    "pg_wal_replay_*",
    "pg_backup_start",
    "pg_backup_stop",
    "pg_start_backup",
    "pg_stop_backup",
    "pg_stat_reset*",
    "pg_advisory_*",
    "pg_file_*",
    "pg_log_backend_memory_contexts",
    "dblink*",
    "lo_import",
    "lo_export",
    "lo_create",
    "lo_creat",
    "lo_unlink",
    "lo_put",
    "lo_from_bytea",
    "lowrite",
];

/// The first identifier of `lower` (lowercase SQL) that [`FORBIDDEN_SQL`] names.
fn forbidden_call(lower: &str) -> Option<&str> {
    lower
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .find(|tok| {
            FORBIDDEN_SQL.iter().any(|f| match f.strip_suffix('*') {
                Some(prefix) => tok.starts_with(prefix),
                None => tok == f,
            })
        })
}

impl Check {
    /// Parses and validates one check file; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: Origin) -> Result<Check, CatalogError> {
        let file = origin.file();
        let raw: RawCheck = toml::from_str(text).map_err(|e| CatalogError::Syntax {
            file: file.clone(),
            line: e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1),
            message: e.message().trim().replace('\n', " "),
        })?;
        let invalid = |key: &str, message: String| CatalogError::Invalid {
            file: file.clone(),
            key: key.to_string(),
            message,
        };
        let id = raw.id.trim().to_string();
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(invalid(
                "id",
                format!("\"{}\" is not a valid id (use a-z, 0-9 and _)", raw.id),
            ));
        }
        for (key, v) in [
            ("title", &raw.title),
            ("description", &raw.description),
            ("remedy", &raw.remedy),
        ] {
            if v.trim().is_empty() {
                return Err(invalid(key, "must not be empty".into()));
            }
        }
        let severity = match raw.severity.as_str() {
            "critical" => Severity::Critical,
            "warning" => Severity::Warning,
            "info" => Severity::Info,
            other => {
                return Err(invalid(
                    "severity",
                    format!("unknown severity \"{other}\" (critical, warning or info)"),
                ))
            }
        };
        let mode: CompareMode = raw.compare.mode.parse().map_err(|()| {
            invalid(
                "compare.mode",
                format!(
                    "unknown compare mode \"{}\" (known: {})",
                    raw.compare.mode,
                    CompareMode::ALL
                        .iter()
                        .map(|m| m.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
        let sql = |key: &str, v: Option<String>| -> Result<Option<String>, CatalogError> {
            let Some(v) = v else { return Ok(None) };
            validate_sql(&v).map_err(|m| invalid(key, m))?;
            Ok(Some(v))
        };
        let new_sql = sql("sql.new", raw.sql.new)?;
        let former_sql = sql("sql.former", raw.sql.former)?;
        let runs_on = mode.runs_on();
        for (key, present, needed) in [
            ("sql.new", new_sql.is_some(), runs_on != RunsOn::Former),
            ("sql.former", former_sql.is_some(), runs_on != RunsOn::New),
        ] {
            if needed && !present {
                return Err(invalid(
                    key,
                    format!("missing: compare mode \"{}\" needs it", mode.as_str()),
                ));
            }
            if present && !needed {
                return Err(invalid(
                    key,
                    format!("not used by compare mode \"{}\"", mode.as_str()),
                ));
            }
        }
        let compare = Comparison {
            mode,
            key: raw.compare.key,
            value: raw.compare.value,
            next: raw.compare.next,
            values: raw.compare.values,
        };
        compare
            .validate()
            .map_err(|(key, m)| invalid(&format!("compare.{key}"), m))?;
        Ok(Check {
            id,
            title: raw.title.trim().to_string(),
            severity,
            description: raw.description.trim().to_string(),
            new_sql,
            former_sql,
            compare,
            remedy: raw.remedy.trim().to_string(),
            grant: raw.grant.map(|g| g.trim().to_string()),
            ok_summary: raw.ok_summary,
            finding_summary: raw.finding_summary,
            origin,
        })
    }

    /// Which nodes the check queries.
    pub fn runs_on(&self) -> RunsOn {
        self.compare.mode.runs_on()
    }
}

/// A check's SQL must be one read-only query: it starts with SELECT, WITH, VALUES or TABLE,
/// has no `;` except trailing ones, and mentions none of [`FORBIDDEN_SQL`]. The runner wraps
/// it in a subquery, so a data-modifying WITH fails on the server too, and every session is
/// read-only anyway.
fn validate_sql(sql: &str) -> Result<(), String> {
    let body = strip_trailing_semicolons(sql);
    if body.trim().is_empty() {
        return Err("empty SQL".into());
    }
    let lower = strip_comments(body).to_lowercase();
    let first = lower
        .split(|c: char| !c.is_ascii_alphabetic())
        .find(|w| !w.is_empty())
        .unwrap_or("");
    if !matches!(first, "select" | "with" | "values" | "table") {
        return Err(format!(
            "must be one read-only query starting with SELECT, WITH, VALUES or TABLE, not \"{first}\""
        ));
    }
    if lower.contains(';') {
        return Err("must be a single statement (no `;` inside)".into());
    }
    if let Some(f) = forbidden_call(&lower) {
        return Err(format!(
            "calls \"{f}\", which can change server state; checks must only read"
        ));
    }
    Ok(())
}

/// `sql` without trailing whitespace and `;`.
pub(crate) fn strip_trailing_semicolons(sql: &str) -> &str {
    sql.trim_end_matches(|c: char| c.is_whitespace() || c == ';')
}

/// `sql` with `-- ...` line comments and `/* ... */` block comments blanked (outside quotes).
fn strip_comments(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                out.push(c);
                if c == q {
                    quote = None;
                }
            }
            None => match c {
                '\'' | '"' => {
                    quote = Some(c);
                    out.push(c);
                }
                '-' if chars.peek() == Some(&'-') => {
                    for c in chars.by_ref() {
                        if c == '\n' {
                            out.push('\n');
                            break;
                        }
                    }
                }
                '/' if chars.peek() == Some(&'*') => {
                    chars.next();
                    let mut prev = ' ';
                    for c in chars.by_ref() {
                        if prev == '*' && c == '/' {
                            break;
                        }
                        prev = c;
                    }
                    out.push(' ');
                }
                _ => out.push(c),
            },
        }
    }
    out
}

/// A user check that replaced a built-in check with the same id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Override {
    /// The id both define.
    pub id: String,
    /// The built-in file that was replaced (`checks/<name>`).
    pub builtin: String,
    /// The user file that replaced it.
    pub user: String,
}

/// A set of checks: the built-ins, possibly merged with a user's directory.
#[derive(Clone, Debug)]
pub struct Catalog {
    checks: Vec<Check>,
    overrides: Vec<Override>,
}

/// One row of `failover-verify checks list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListRow {
    /// The check's id.
    pub id: String,
    /// Its severity.
    pub severity: Severity,
    /// Which nodes it queries.
    pub runs_on: RunsOn,
    /// Its title.
    pub title: String,
    /// `builtin`, or the user file (with `(overrides builtin)` when it replaced one).
    pub origin: String,
}

impl Catalog {
    /// The checks shipped in the binary (from `checks/*.toml`).
    pub fn builtin() -> Result<Catalog, CatalogError> {
        let mut checks: Vec<Check> = Vec::with_capacity(BUILTIN.len());
        for (name, text) in BUILTIN {
            let check = Check::from_toml(text, Origin::Builtin(name.to_string()))?;
            if let Some(first) = checks.iter().find(|c| c.id == check.id) {
                return Err(CatalogError::DuplicateId {
                    file: check.origin.file(),
                    id: check.id,
                    first: first.origin.file(),
                });
            }
            checks.push(check);
        }
        Ok(Catalog {
            checks,
            overrides: Vec::new(),
        })
    }

    /// The built-ins merged with every `*.toml` file in `dir` (in file-name order): a user
    /// check with a built-in's id replaces it (see [`Catalog::overrides`]); two user files
    /// with the same id are an error.
    pub fn load_dir(dir: &Path) -> Result<Catalog, CatalogError> {
        let mut catalog = Catalog::builtin()?;
        let dir_err = |source| CatalogError::Dir {
            dir: dir.to_path_buf(),
            source,
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(dir_err)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(dir_err)?
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "toml") && p.is_file())
            .collect();
        files.sort();
        let mut user: Vec<Check> = Vec::new();
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(|source| CatalogError::Read {
                file: path.display().to_string(),
                source,
            })?;
            let check = Check::from_toml(&text, Origin::User(path))?;
            if let Some(first) = user.iter().find(|c| c.id == check.id) {
                return Err(CatalogError::DuplicateId {
                    file: check.origin.file(),
                    id: check.id,
                    first: first.origin.file(),
                });
            }
            user.push(check);
        }
        for check in user {
            match catalog.checks.iter_mut().find(|c| c.id == check.id) {
                Some(slot) => {
                    catalog.overrides.push(Override {
                        id: check.id.clone(),
                        builtin: slot.origin.file(),
                        user: check.origin.file(),
                    });
                    *slot = check;
                }
                None => catalog.checks.push(check),
            }
        }
        Ok(catalog)
    }

    /// [`Catalog::load_dir`] when a directory is given, else [`Catalog::builtin`].
    pub fn load(dir: Option<&Path>) -> Result<Catalog, CatalogError> {
        match dir {
            Some(d) => Catalog::load_dir(d),
            None => Catalog::builtin(),
        }
    }

    /// The checks, built-ins first (in file-name order), then new user checks.
    pub fn checks(&self) -> &[Check] {
        &self.checks
    }

    /// The built-in checks that user files replaced.
    pub fn overrides(&self) -> &[Override] {
        &self.overrides
    }

    /// The check with this id.
    pub fn get(&self, id: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.id == id)
    }

    /// Whether the check with this id replaced a built-in.
    pub fn is_override(&self, id: &str) -> bool {
        self.overrides.iter().any(|o| o.id == id)
    }

    /// The rows of `failover-verify checks list`.
    pub fn list_rows(&self) -> Vec<ListRow> {
        self.checks
            .iter()
            .map(|c| ListRow {
                id: c.id.clone(),
                severity: c.severity,
                runs_on: c.runs_on(),
                title: c.title.clone(),
                origin: if self.is_override(&c.id) {
                    format!("{} (overrides builtin)", c.origin.label())
                } else {
                    c.origin.label()
                },
            })
            .collect()
    }
}
