//! The password file (.pgpass) lookup, and the OS user's name and home directory libpq
//! defaults to.

use std::path::{Path, PathBuf};

use super::conn_options::{Host, DEFAULT_SOCKET_DIR};

/// The host string libpq matches against the password file's first field.
pub(super) fn passfile_host(host: &Host) -> String {
    match host {
        Host::Tcp(h) => h.clone(),
        Host::Unix(dir) if dir == Path::new(DEFAULT_SOCKET_DIR) => "localhost".to_string(),
        Host::Unix(dir) => dir.display().to_string(),
    }
}

/// Reads a password file and returns the first matching password (libpq's `passwordFromFile`).
pub(super) fn lookup_passfile(
    path: &Path,
    host: &str,
    port: u16,
    dbname: &str,
    user: &str,
    warnings: &mut Vec<String>,
) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        warnings.push(format!(
            "password file \"{}\" is not a plain file; ignored",
            path.display()
        ));
        return None;
    }
    if meta.permissions().mode() & 0o077 != 0 {
        warnings.push(format!(
            "password file \"{}\" has group or world access; permissions should be u=rw (0600) or less; ignored",
            path.display()
        ));
        return None;
    }
    let text = match std::fs::read(path) {
        Ok(t) => String::from_utf8_lossy(&t).into_owned(),
        Err(e) => {
            warnings.push(format!(
                "password file \"{}\" could not be read: {e}; ignored",
                path.display()
            ));
            return None;
        }
    };
    let port = port.to_string();
    for line in text.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields = split_passfile_line(line);
        if fields.len() < 5 {
            continue;
        }
        let matches = |f: &(String, bool), want: &str| (f.0 == "*" && !f.1) || f.0 == want;
        if matches(&fields[0], host)
            && matches(&fields[1], &port)
            && matches(&fields[2], dbname)
            && matches(&fields[3], user)
        {
            let pw = fields[4].0.clone();
            return (!pw.is_empty()).then_some(pw);
        }
    }
    None
}

/// Splits a password-file line on unescaped `:`; each field is (unescaped text, had escapes).
pub(super) fn split_passfile_line(line: &str) -> Vec<(String, bool)> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                    escaped = true;
                }
            }
            ':' => {
                fields.push((std::mem::take(&mut cur), escaped));
                escaped = false;
                if fields.len() == 4 {
                    // The password is the rest, up to the next unescaped ':' (libpq).
                    let mut pw = String::new();
                    while let Some(c) = chars.next() {
                        match c {
                            '\\' => {
                                if let Some(n) = chars.next() {
                                    pw.push(n);
                                }
                            }
                            ':' => break,
                            c => pw.push(c),
                        }
                    }
                    fields.push((pw, false));
                    return fields;
                }
            }
            c => cur.push(c),
        }
    }
    fields.push((cur, escaped));
    fields
}

/// The effective OS user's passwd entry: its name and home directory.
pub(super) fn passwd_entry() -> Option<(String, PathBuf)> {
    let u = nix::unistd::User::from_uid(nix::unistd::geteuid()).ok()??;
    Some((u.name, u.dir))
}

/// The effective OS user's name (libpq's default user).
pub(super) fn os_user_name() -> Option<String> {
    passwd_entry().map(|(n, _)| n).filter(|n| !n.is_empty())
}

pub(super) fn os_home_dir() -> Option<PathBuf> {
    passwd_entry()
        .map(|(_, d)| d)
        .filter(|d| !d.as_os_str().is_empty())
}
