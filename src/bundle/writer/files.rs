//! Writing a bundle's files privately and durably: modes, fsync, no-replace renames, streamed
//! copies.

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::bundle::manifest;
use crate::bundle::BundleError;

pub(super) fn mkdir_private(dir: &Path) -> Result<(), BundleError> {
    DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(dir)
        .map_err(|e| BundleError::io(dir, e))
}

pub(super) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), BundleError> {
    let io = |e| BundleError::io(path, e);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)
}

/// Writes a new owner-only file from `fill` through a buffer, hashing the bytes on their way
/// out; fsyncs it and offers its digest to the manifest ([`super::adopt`]).
pub(super) fn write_streamed(
    path: &Path,
    fill: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> Result<(), BundleError> {
    use sha2::Digest;
    /// Hashes what it passes to `inner`.
    struct Hashing {
        inner: std::fs::File,
        hash: sha2::Sha256,
    }
    impl std::io::Write for Hashing {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let n = self.inner.write(buf)?;
            self.hash.update(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.inner.flush()
        }
    }
    let io = |e| BundleError::io(path, e);
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    let mut w = std::io::BufWriter::with_capacity(
        1 << 20,
        Hashing {
            inner: file,
            hash: sha2::Sha256::new(),
        },
    );
    fill(&mut w).map_err(io)?;
    let hashing = w.into_inner().map_err(|e| io(e.into_error()))?;
    hashing.inner.sync_all().map_err(io)?;
    crate::bundle::adopt::offer(path, &manifest::to_hex(&hashing.hash.finalize())).map_err(io)
}

pub(super) fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), BundleError> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| BundleError::Meta {
        file: path.display().to_string(),
        problem: e.to_string(),
    })?;
    bytes.push(b'\n');
    write_private(path, &bytes)
}

/// Directories 0700, files 0600, whatever wrote them.
pub(super) fn restrict(root: &Path) -> Result<(), BundleError> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| BundleError::io(&dir, e))?;
        for entry in std::fs::read_dir(&dir).map_err(|e| BundleError::io(&dir, e))? {
            let entry = entry.map_err(|e| BundleError::io(&dir, e))?;
            let path = entry.path();
            let ty = entry.file_type().map_err(|e| BundleError::io(&path, e))?;
            if ty.is_dir() {
                stack.push(path);
            } else {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| BundleError::io(&path, e))?;
            }
        }
    }
    Ok(())
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), BundleError> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| BundleError::io(dir, e))
}

/// Renames `from` to `to` unless `to` exists (even as an empty directory).
pub(super) fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
    };
    let (a, b) = (c(from)?, c(to)?);
    // SAFETY: two valid NUL-terminated paths; renameat2 reads them and nothing else.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        // A file system or kernel without RENAME_NOREPLACE: check, then rename.
        Some(libc::EINVAL) | Some(libc::ENOSYS) => {
            if std::fs::symlink_metadata(to).is_ok() {
                return Err(std::io::ErrorKind::AlreadyExists.into());
            }
            std::fs::rename(from, to)
        }
        _ => Err(e),
    }
}
