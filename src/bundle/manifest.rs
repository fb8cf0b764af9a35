//! `SHA256SUMS`: one `<hex>  <relative path>` line per file, the format `sha256sum -c` reads.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::BundleError;

/// The manifest's file name, at the bundle's root.
pub const MANIFEST: &str = "SHA256SUMS";

/// The SHA-256 of a file, in lower-case hex, read in 1 MB blocks.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(to_hex(&h.finalize()))
}

/// Lower-case hex, as `sha256sum` prints a digest.
pub fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

/// Every regular file under `root` except the manifest, as sorted relative paths with `/`.
/// Anything that is neither a file nor a directory (a symlink, a socket) is an error.
pub fn list_files(root: &Path) -> Result<Vec<String>, BundleError> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let entries = std::fs::read_dir(&dir).map_err(|e| BundleError::io(&dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| BundleError::io(&dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                return Err(BundleError::Unexpected {
                    path: dir.join(&name).display().to_string(),
                    what: "a file name that is not UTF-8".into(),
                });
            };
            let child = rel.join(name);
            let ty = entry.file_type().map_err(|e| BundleError::io(&dir, e))?;
            if ty.is_dir() {
                stack.push(child);
            } else if ty.is_file() {
                let s = child.to_string_lossy().into_owned();
                if s != MANIFEST {
                    out.push(s);
                }
            } else {
                return Err(BundleError::Unexpected {
                    path: child.display().to_string(),
                    what: "neither a file nor a directory".into(),
                });
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The manifest's text for `files` (relative paths under `root`). A file this process
/// offered for adoption ([`super::adopt`]) and that is unchanged since is not read again: its
/// digest is the one computed while it was copied.
pub fn build(root: &Path, files: &[String]) -> Result<String, BundleError> {
    let mut text = String::new();
    for rel in files {
        if rel.contains('\n') || rel.contains('\\') {
            return Err(BundleError::Unexpected {
                path: rel.clone(),
                what: "a name sha256sum would escape".into(),
            });
        }
        let path = root.join(rel);
        let hex = match super::adopt::digest(&path) {
            Some(hex) => hex,
            None => sha256_file(&path).map_err(|e| BundleError::io(&path, e))?,
        };
        text.push_str(&format!("{hex}  {rel}\n"));
    }
    Ok(text)
}

/// Parses a manifest: relative path → hex digest. Rejects absolute paths, `..`, duplicates
/// and malformed lines, naming the line.
pub fn parse(text: &str) -> Result<BTreeMap<String, String>, BundleError> {
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let bad = |why: &str| BundleError::Manifest {
            file: MANIFEST.into(),
            line: i + 1,
            problem: why.to_string(),
        };
        if line.is_empty() {
            continue;
        }
        let (hex, rest) = line
            .split_once(' ')
            .ok_or_else(|| bad("expected `<sha256>  <path>`"))?;
        // `sha256sum` writes two spaces (text mode) or ` *` (binary mode).
        let rel = rest
            .strip_prefix(' ')
            .or_else(|| rest.strip_prefix('*'))
            .ok_or_else(|| bad("expected two spaces between the digest and the path"))?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("the digest is not 64 hex digits"));
        }
        let p = Path::new(rel);
        if rel.is_empty()
            || p.is_absolute()
            || p.components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(bad(&format!("`{rel}` is not a plain relative path")));
        }
        if out
            .insert(rel.to_string(), hex.to_ascii_lowercase())
            .is_some()
        {
            return Err(bad(&format!("`{rel}` is listed twice")));
        }
    }
    Ok(out)
}

/// Checks every file of the bundle at `root` against its manifest: a file missing, changed,
/// or present but not listed is an error naming it.
pub fn verify(root: &Path) -> Result<BTreeMap<String, String>, BundleError> {
    let path = root.join(MANIFEST);
    let text = std::fs::read_to_string(&path).map_err(|e| BundleError::io(&path, e))?;
    let listed = parse(&text).map_err(|e| match e {
        BundleError::Manifest { line, problem, .. } => BundleError::Manifest {
            file: path.display().to_string(),
            line,
            problem,
        },
        e => e,
    })?;
    let present = list_files(root)?;
    let shown = |rel: &str| root.join(rel).display().to_string();
    if let Some(extra) = present.iter().find(|p| !listed.contains_key(*p)) {
        return Err(BundleError::NotListed(shown(extra)));
    }
    for (rel, hex) in &listed {
        let file = root.join(rel);
        match std::fs::symlink_metadata(&file) {
            Ok(m) if m.is_file() => {}
            Ok(_) => {
                return Err(BundleError::Unexpected {
                    path: shown(rel),
                    what: "not a regular file".into(),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(BundleError::Missing(shown(rel)))
            }
            Err(e) => return Err(BundleError::io(&file, e)),
        }
        let actual = sha256_file(&file).map_err(|e| BundleError::io(&file, e))?;
        if &actual != hex {
            return Err(BundleError::Checksum {
                file: shown(rel),
                expected: hex.clone(),
                actual,
            });
        }
    }
    Ok(listed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_abc() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("a"), b"abc").unwrap();
        assert_eq!(
            sha256_file(&t.path().join("a")).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn verify_names_the_changed_missing_and_extra_file() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::create_dir(root.join("wal")).unwrap();
        std::fs::write(root.join("wal/seg"), b"wal bytes").unwrap();
        std::fs::write(root.join("report.json"), b"{}").unwrap();
        let files = list_files(root).unwrap();
        assert_eq!(files, ["report.json", "wal/seg"]);
        std::fs::write(root.join(MANIFEST), build(root, &files).unwrap()).unwrap();
        verify(root).unwrap();

        std::fs::write(root.join("wal/seg"), b"wal bytez").unwrap();
        let e = verify(root).unwrap_err().to_string();
        assert!(e.contains("wal/seg"), "{e}");
        std::fs::write(root.join("wal/seg"), b"wal bytes").unwrap();

        std::fs::write(root.join("extra"), b"x").unwrap();
        let e = verify(root).unwrap_err().to_string();
        assert!(e.contains("extra"), "{e}");
        std::fs::remove_file(root.join("extra")).unwrap();

        std::fs::remove_file(root.join("report.json")).unwrap();
        let e = verify(root).unwrap_err().to_string();
        assert!(e.contains("report.json"), "{e}");
    }

    #[test]
    fn parse_rejects_paths_outside_the_bundle() {
        let h = "a".repeat(64);
        assert!(parse(&format!("{h}  ../etc/passwd\n")).is_err());
        assert!(parse(&format!("{h}  /etc/passwd\n")).is_err());
        assert!(parse(&format!("{h} *wal/x\n")).is_ok());
        assert!(parse("nonsense\n").is_err());
    }
}
