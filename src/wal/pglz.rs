//! PostgreSQL's own LZ compression (pglz), decompression only: full-page images before lz4/zstd
//! and TOAST values compressed with `pglz` (`src/common/pg_lzcompress.c`).

/// Why a pglz stream could not be decompressed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PglzError {
    /// A back reference points before the start of the output, or has offset 0.
    #[error("pglz: back reference at input byte {at} points outside the output")]
    BadReference {
        /// Input offset of the tag.
        at: usize,
    },
    /// The stream ended inside a tag.
    #[error("pglz: input ends inside a tag")]
    Truncated,
    /// The stream did not produce exactly the expected size, or had bytes left over.
    #[error("pglz: produced {got} bytes from {used} of {input} input bytes, expected {expected}")]
    Size {
        /// Bytes produced.
        got: usize,
        /// Bytes expected.
        expected: usize,
        /// Input bytes consumed.
        used: usize,
        /// Input length.
        input: usize,
    },
}

/// Decompresses `src` into exactly `raw_size` bytes, as `pglz_decompress(.., check_complete =
/// true)`: every input byte must be used and the output must be exactly `raw_size` long.
pub fn decompress(src: &[u8], raw_size: usize) -> Result<Vec<u8>, PglzError> {
    let mut dst: Vec<u8> = Vec::with_capacity(raw_size);
    let mut sp = 0usize;
    while sp < src.len() && dst.len() < raw_size {
        let mut ctrl = src[sp];
        sp += 1;
        let mut bit = 0;
        while bit < 8 && sp < src.len() && dst.len() < raw_size {
            if ctrl & 1 != 0 {
                let at = sp;
                let (b0, b1) = match (src.get(sp), src.get(sp + 1)) {
                    (Some(&a), Some(&b)) => (a, b),
                    _ => return Err(PglzError::Truncated),
                };
                let mut len = usize::from(b0 & 0x0f) + 3;
                let off = (usize::from(b0 & 0xf0) << 4) | usize::from(b1);
                sp += 2;
                if len == 18 {
                    len += usize::from(*src.get(sp).ok_or(PglzError::Truncated)?);
                    sp += 1;
                }
                if off == 0 || off > dst.len() {
                    return Err(PglzError::BadReference { at });
                }
                let len = len.min(raw_size - dst.len());
                // The source may overlap what this copy writes: copy byte by byte.
                let start = dst.len() - off;
                for i in 0..len {
                    let b = dst[start + i];
                    dst.push(b);
                }
            } else {
                dst.push(src[sp]);
                sp += 1;
            }
            ctrl >>= 1;
            bit += 1;
        }
    }
    if dst.len() != raw_size || sp != src.len() {
        return Err(PglzError::Size {
            got: dst.len(),
            expected: raw_size,
            used: sp,
            input: src.len(),
        });
    }
    Ok(dst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_overlapping_reference() {
        // ctrl 0b0000_0010: literal 'a', then a tag: len 3+3 = 6, offset 1 -> "aaaaaa".
        let src = [0b0000_0010, b'a', 0x03, 0x01];
        assert_eq!(decompress(&src, 7).unwrap(), b"aaaaaaa");
    }

    #[test]
    fn long_tag_uses_the_extra_length_byte() {
        let src = [0b0000_0010, b'x', 0x0f, 0x01, 2];
        assert_eq!(decompress(&src, 21).unwrap(), vec![b'x'; 21]);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(matches!(
            decompress(&[0x01, 0x03, 0x05], 10),
            Err(PglzError::BadReference { .. })
        ));
        assert!(matches!(
            decompress(&[0x01, 0x03], 10),
            Err(PglzError::Truncated)
        ));
        assert!(matches!(
            decompress(b"\x00abc", 10),
            Err(PglzError::Size { .. })
        ));
        assert!(matches!(
            decompress(b"\x00abcd", 3),
            Err(PglzError::Size { .. })
        ));
        assert!(decompress(&[], 0).unwrap().is_empty());
    }
}
