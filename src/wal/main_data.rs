//! A record's main data: short main data copied into the record, longer shared.

use bytes::Bytes;

/// Main data up to this length is copied into the record ([`MainData`]).
pub const INLINE_MAIN_DATA: usize = 62;

/// A record's main data. Short main data (most records': a heap insert has 3 bytes, a commit a
/// few dozen) is copied into the record itself, which costs less than sharing the decoder's
/// buffer (two atomic reference-count updates per record); longer main data is shared.
/// Dereferences to the bytes; two values are equal when their bytes are.
#[derive(Clone)]
pub enum MainData {
    /// Copied: `len` bytes of `buf`.
    Inline {
        /// How many bytes of `buf` are used.
        len: u8,
        /// The bytes.
        buf: [u8; INLINE_MAIN_DATA],
    },
    /// Shared with the decoder's buffer.
    Shared(Bytes),
}

impl Default for MainData {
    fn default() -> MainData {
        MainData::Inline {
            len: 0,
            buf: [0; INLINE_MAIN_DATA],
        }
    }
}

impl MainData {
    /// Empties it (dropping a shared buffer's reference).
    #[inline] // once per record
    pub fn clear(&mut self) {
        match self {
            MainData::Inline { len, .. } => *len = 0,
            MainData::Shared(_) => *self = MainData::default(),
        }
    }

    /// Sets it to `b`: copied when short, else `shared()`'s bytes (which must equal `b`).
    pub(crate) fn set(&mut self, b: &[u8], shared: impl FnOnce() -> Bytes) {
        if b.len() <= INLINE_MAIN_DATA {
            if let MainData::Shared(_) = self {
                *self = MainData::default();
            }
            if let MainData::Inline { len, buf } = self {
                buf[..b.len()].copy_from_slice(b);
                *len = b.len() as u8;
            }
        } else {
            *self = MainData::Shared(shared());
        }
    }

    /// [`Self::set`] to the first `len` bytes of `window`, which may go on past them: when it
    /// holds [`INLINE_MAIN_DATA`] bytes, short main data is copied as that many (a fixed-size
    /// copy costs less than a call to copy a few bytes; the bytes past `len` are not used).
    #[inline] // once per record
    pub(crate) fn set_from_window(
        &mut self,
        window: &[u8],
        len: usize,
        shared: impl FnOnce() -> Bytes,
    ) {
        match (window.get(..INLINE_MAIN_DATA), &mut *self) {
            (Some(w), MainData::Inline { len: l, buf }) if len <= INLINE_MAIN_DATA => {
                buf.copy_from_slice(w);
                *l = len as u8;
            }
            _ => self.set(window.get(..len).unwrap_or_default(), shared),
        }
    }
}

impl From<Bytes> for MainData {
    fn from(b: Bytes) -> MainData {
        let mut m = MainData::default();
        m.set(&b.clone(), || b);
        m
    }
}

impl std::ops::Deref for MainData {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            MainData::Inline { len, buf } => &buf[..usize::from(*len)],
            MainData::Shared(b) => b,
        }
    }
}

impl AsRef<[u8]> for MainData {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl PartialEq for MainData {
    fn eq(&self, other: &MainData) -> bool {
        **self == **other
    }
}

impl Eq for MainData {}

impl std::fmt::Debug for MainData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&Bytes::copy_from_slice(self), f)
    }
}
