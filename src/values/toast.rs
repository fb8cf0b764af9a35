//! Varlena headers (1-byte, 4-byte, inline-compressed, external), TOAST pointers, and
//! decompression of pglz and lz4 values (`varatt.h`, `postgres.h` before PG16,
//! `access/toast_compression.h`, `access/detoast.c`).

use serde::Serialize;

use crate::wal::pglz;

/// `VARTAG_ONDISK`: an on-disk TOAST pointer.
pub const VARTAG_ONDISK: u8 = 18;

/// A compression method of a TOAST value (the top 2 bits of `va_tcinfo` / `va_extinfo`, PG14+;
/// before PG14 those bits are always 0, pglz).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ToastCompression {
    /// pglz.
    Pglz,
    /// lz4.
    Lz4,
}

impl ToastCompression {
    fn from_bits(bits: u32) -> Result<ToastCompression, String> {
        match bits {
            0 => Ok(ToastCompression::Pglz),
            1 => Ok(ToastCompression::Lz4),
            b => Err(format!("unknown TOAST compression method {b}")),
        }
    }
}

/// An on-disk TOAST pointer (`varatt_external`): the value lives out of line, as chunks
/// (chunk_id = `value_id`, chunk_seq 0.., chunk_data) of relation `toast_rel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ToastPointer {
    /// `va_rawsize`: the original size including its 4-byte header.
    pub raw_size: u32,
    /// The stored size (low 30 bits of `va_extinfo`; PG13's `va_extsize`).
    pub ext_size: u32,
    /// The compression method, when the stored value is compressed.
    pub compression: Option<ToastCompression>,
    /// `va_valueid`: the chunk_id of its chunks.
    pub value_id: u32,
    /// `va_toastrelid`: the TOAST relation's OID.
    pub toast_rel: u32,
}

/// A varlena value as a tuple holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Varlena {
    /// Inline and uncompressed: the payload without its header.
    Plain(Vec<u8>),
    /// Inline and compressed: the method, the raw payload size, the compressed bytes.
    Compressed {
        /// Method.
        method: ToastCompression,
        /// Size of the payload once decompressed (without header).
        raw_size: u32,
        /// The compressed bytes (after `va_tcinfo`).
        data: Vec<u8>,
    },
    /// Out of line.
    External(ToastPointer),
}

/// The total length (header included) of the varlena at the start of `b` (`VARSIZE_ANY`), or
/// an error when the header is cut or claims more than `b` holds.
pub fn varsize_any(b: &[u8]) -> Result<usize, String> {
    let first = *b.first().ok_or("varlena header beyond the data")?;
    let len = if first == 0x01 {
        let tag = *b.get(1).ok_or("external varlena without its tag")?;
        match tag {
            VARTAG_ONDISK => 2 + 16,
            1..=3 => return Err(format!("in-memory varlena tag {tag} on disk")),
            t => return Err(format!("unknown varlena tag {t}")),
        }
    } else if first & 0x01 == 0x01 {
        usize::from(first >> 1)
    } else {
        let h = b.get(..4).ok_or("4-byte varlena header beyond the data")?;
        (u32::from_le_bytes([h[0], h[1], h[2], h[3]]) >> 2) as usize
    };
    let min = if first & 0x01 == 0x01 { 1 } else { 4 };
    if len < min || len > b.len() {
        return Err(format!(
            "varlena of {len} bytes does not fit the {} bytes left",
            b.len()
        ));
    }
    Ok(len)
}

/// Parses the varlena at the start of `b` (exactly `varsize_any(b)` bytes are used).
pub fn parse_varlena(b: &[u8]) -> Result<Varlena, String> {
    let len = varsize_any(b)?;
    let first = b[0];
    if first == 0x01 {
        let p = &b[2..18];
        let u = |i: usize| u32::from_le_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]]);
        let (raw_size, extinfo) = (u(0), u(4));
        let ext_size = extinfo & 0x3FFF_FFFF;
        // VARATT_EXTERNAL_IS_COMPRESSED: stored size < raw size - header.
        let compression = if ext_size < raw_size.saturating_sub(4) {
            Some(ToastCompression::from_bits(extinfo >> 30)?)
        } else {
            None
        };
        return Ok(Varlena::External(ToastPointer {
            raw_size,
            ext_size,
            compression,
            value_id: u(8),
            toast_rel: u(12),
        }));
    }
    if first & 0x01 == 0x01 {
        return Ok(Varlena::Plain(b[1..len].to_vec()));
    }
    if first & 0x03 == 0x02 {
        let t = b.get(4..8).ok_or("compressed varlena without va_tcinfo")?;
        let tcinfo = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
        if len < 8 {
            return Err("compressed varlena shorter than its headers".into());
        }
        return Ok(Varlena::Compressed {
            method: ToastCompression::from_bits(tcinfo >> 30)?,
            raw_size: tcinfo & 0x3FFF_FFFF,
            data: b[8..len].to_vec(),
        });
    }
    Ok(Varlena::Plain(b[4..len].to_vec()))
}

/// The largest value PostgreSQL can hold (1 GB): no decompression may claim more.
const MAX_ALLOC: u32 = 0x3FFF_FFFF;

/// Decompresses `data` into exactly `raw_size` bytes.
pub fn decompress(method: ToastCompression, data: &[u8], raw_size: u32) -> Result<Vec<u8>, String> {
    if raw_size > MAX_ALLOC {
        return Err(format!("compressed value claims {raw_size} bytes"));
    }
    let want = raw_size as usize;
    let out = match method {
        ToastCompression::Pglz => pglz::decompress(data, want).map_err(|e| e.to_string())?,
        ToastCompression::Lz4 => {
            lz4_flex::block::decompress(data, want).map_err(|e| format!("lz4: {e}"))?
        }
    };
    if out.len() != want {
        return Err(format!(
            "{method:?} value decompressed to {} bytes, expected {want}",
            out.len()
        ));
    }
    Ok(out)
}

/// A varlena's payload: plain as is, compressed decompressed; an error for an external one
/// (resolve it with [`assemble`]).
pub fn payload(v: &Varlena) -> Result<std::borrow::Cow<'_, [u8]>, String> {
    match v {
        Varlena::Plain(p) => Ok(std::borrow::Cow::Borrowed(p)),
        Varlena::Compressed {
            method,
            raw_size,
            data,
        } => decompress(*method, data, *raw_size).map(std::borrow::Cow::Owned),
        Varlena::External(p) => Err(format!(
            "value {} is out of line in TOAST relation {}",
            p.value_id, p.toast_rel
        )),
    }
}

/// Rebuilds an out-of-line value from its chunks, given as `(chunk_seq, chunk_data)` in any
/// order: they must run 0, 1, 2.. without a gap and add up to the stored size; a compressed
/// value is then decompressed. Returns the payload (without varlena header).
pub fn assemble(ptr: &ToastPointer, chunks: &[(i32, &[u8])]) -> Result<Vec<u8>, String> {
    if ptr.ext_size > MAX_ALLOC || ptr.raw_size > MAX_ALLOC {
        return Err(format!(
            "TOAST value {} claims {} bytes",
            ptr.value_id, ptr.ext_size
        ));
    }
    let mut sorted: Vec<&(i32, &[u8])> = chunks.iter().collect();
    sorted.sort_by_key(|c| c.0);
    let mut stored = Vec::with_capacity(ptr.ext_size as usize);
    for (i, (seq, data)) in sorted.iter().enumerate() {
        if usize::try_from(*seq).ok() != Some(i) {
            return Err(format!(
                "TOAST value {}: chunk {seq} where chunk {i} was expected",
                ptr.value_id
            ));
        }
        stored.extend_from_slice(data);
    }
    if stored.len() != ptr.ext_size as usize {
        return Err(format!(
            "TOAST value {}: chunks hold {} bytes, the pointer says {}",
            ptr.value_id,
            stored.len(),
            ptr.ext_size
        ));
    }
    match ptr.compression {
        None => {
            if stored.len() + 4 != ptr.raw_size as usize {
                return Err(format!(
                    "TOAST value {}: {} bytes stored uncompressed, raw size {}",
                    ptr.value_id,
                    stored.len(),
                    ptr.raw_size
                ));
            }
            Ok(stored)
        }
        Some(method) => {
            let t = stored
                .get(..4)
                .ok_or("compressed TOAST value without va_tcinfo")?;
            let tcinfo = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
            let raw = tcinfo & 0x3FFF_FFFF;
            if raw + 4 != ptr.raw_size {
                return Err(format!(
                    "TOAST value {}: va_tcinfo says {raw} bytes, the pointer {}",
                    ptr.value_id, ptr.raw_size
                ));
            }
            decompress(method, &stored[4..], raw)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        assert_eq!(
            parse_varlena(&[0x09, b'a', b'b', b'c']).unwrap(),
            Varlena::Plain(b"abc".to_vec())
        );
        let mut four = (7u32 << 2).to_le_bytes().to_vec();
        four.extend(b"abc");
        assert_eq!(
            parse_varlena(&four).unwrap(),
            Varlena::Plain(b"abc".to_vec())
        );
        let mut ext = vec![0x01, 18];
        for v in [10_004u32, (1 << 30) | 500, 77, 88] {
            ext.extend(v.to_le_bytes());
        }
        let Varlena::External(p) = parse_varlena(&ext).unwrap() else {
            panic!()
        };
        assert_eq!(
            (p.raw_size, p.ext_size, p.value_id, p.toast_rel),
            (10_004, 500, 77, 88)
        );
        assert_eq!(p.compression, Some(ToastCompression::Lz4));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse_varlena(&[]).is_err());
        assert!(parse_varlena(&[0x01]).is_err());
        assert!(parse_varlena(&[0x01, 1]).is_err());
        assert!(parse_varlena(&[0x09, 1]).is_err()); // 4 bytes claimed, 2 held
        assert!(parse_varlena(&[0x00, 0, 0, 0]).is_err()); // length 0
        let mut c = (12u32 << 2 | 2).to_le_bytes().to_vec();
        c.extend((3u32 << 30 | 100).to_le_bytes());
        c.extend([0; 4]);
        assert!(parse_varlena(&c).is_err()); // method 3
        assert!(decompress(ToastCompression::Lz4, &[0xff, 0xff], 100).is_err());
        assert!(decompress(ToastCompression::Pglz, &[0x01, 0x01, 0x01], 100).is_err());
        let p = ToastPointer {
            raw_size: 10,
            ext_size: 6,
            compression: None,
            value_id: 1,
            toast_rel: 2,
        };
        assert!(assemble(&p, &[(0, b"abc"), (2, b"def")]).is_err());
        assert_eq!(
            assemble(&p, &[(1, b"def"), (0, b"abc")]).unwrap(),
            b"abcdef"
        );
    }
}
