//! Files this process copied into a private directory of its own (the rewind guard's raw copy
//! of the lost WAL), offered to a bundle written by the same process: the bundle takes them
//! over by hard link instead of copying them again, with the SHA-256 computed while they were
//! copied instead of reading them a second time.
//!
//! Only the copier's own files may be offered: a file that stays in a live `pg_wal` must never
//! be hard-linked (pg_rewind opens the files it copies with `O_TRUNC`, which would rewrite the
//! bundle's copy through the shared inode). An offer names the file by its inode and is only
//! honoured while the file's size and modification time are still those seen at the offer.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Mutex;

/// What was seen of an offered file.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Offer {
    len: u64,
    mtime: (i64, i64),
    sha256: String,
}

/// Offers by (device, inode).
static OFFERS: Mutex<Option<HashMap<(u64, u64), Offer>>> = Mutex::new(None);

fn offers() -> std::sync::MutexGuard<'static, Option<HashMap<(u64, u64), Offer>>> {
    OFFERS.lock().unwrap_or_else(|p| p.into_inner())
}

/// Offers `path`, a file this process wrote privately and will not change, whose content has
/// the SHA-256 `sha256` (lower-case hex).
pub fn offer(path: &Path, sha256: &str) -> std::io::Result<()> {
    let m = std::fs::symlink_metadata(path)?;
    if !m.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ));
    }
    offers().get_or_insert_with(HashMap::new).insert(
        (m.dev(), m.ino()),
        Offer {
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            sha256: sha256.to_string(),
        },
    );
    Ok(())
}

/// The SHA-256 of `path` if it is an offered file, unchanged since the offer (the same inode,
/// size and modification time). A hard link of an offered file answers too.
pub fn digest(path: &Path) -> Option<String> {
    let m = std::fs::symlink_metadata(path).ok()?;
    let guard = offers();
    let o = guard.as_ref()?.get(&(m.dev(), m.ino()))?;
    (m.is_file() && o.len == m.len() && o.mtime == (m.mtime(), m.mtime_nsec()))
        .then(|| o.sha256.clone())
}

/// Withdraws the offer of `path` (the file is about to be removed or reused).
pub fn withdraw(path: &Path) {
    if let Ok(m) = std::fs::symlink_metadata(path) {
        if let Some(map) = offers().as_mut() {
            map.remove(&(m.dev(), m.ino()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unchanged_offered_file_and_its_links_answer() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        std::fs::write(&a, b"abc").unwrap();
        let other = d.path().join("other");
        std::fs::write(&other, b"abc").unwrap();
        let sum = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        offer(&a, sum).unwrap();
        assert_eq!(digest(&a).as_deref(), Some(sum));
        let link = d.path().join("link");
        std::fs::hard_link(&a, &link).unwrap();
        assert_eq!(digest(&link).as_deref(), Some(sum));
        // The same content in another file is not offered.
        assert_eq!(digest(&other), None);
        // A change to the file voids the offer.
        std::fs::write(&a, b"abcd").unwrap();
        assert_eq!(digest(&link), None);
        offer(&a, sum).unwrap();
        withdraw(&a);
        assert_eq!(digest(&a), None);
        assert!(offer(d.path(), sum).is_err());
    }
}
