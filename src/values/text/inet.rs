//! inet and cidr values as PostgreSQL prints them (IPv4 and compressed IPv6).

use std::fmt::Write as _;

pub(super) fn inet_out(b: &[u8], cidr: bool) -> Result<String, String> {
    let (family, bits) = match b {
        [f, bits, ..] => (*f, *bits),
        _ => return Err("inet shorter than its header".into()),
    };
    let addr = &b[2..];
    let mut s = String::new();
    let max_bits = match (family, addr.len()) {
        (2, 4) => {
            let _ = write!(s, "{}.{}.{}.{}", addr[0], addr[1], addr[2], addr[3]);
            32
        }
        (3, 16) => {
            ipv6_out(&mut s, addr);
            128
        }
        _ => {
            return Err(format!(
                "inet family {family} with {} address bytes",
                addr.len()
            ))
        }
    };
    if bits > max_bits {
        return Err(format!("inet mask length {bits}"));
    }
    if bits != max_bits || cidr {
        let _ = write!(s, "/{bits}");
    }
    Ok(s)
}

/// `inet_net_ntop_ipv6`: the longest run (first if tied) of two or more zero words becomes
/// `::`; an IPv4-compatible or -mapped address ends in dotted quad.
pub(super) fn ipv6_out(s: &mut String, a: &[u8]) {
    let words: Vec<u16> = a
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    let (mut best, mut cur): ((i32, i32), (i32, i32)) = ((-1, 0), (-1, 0));
    for (i, w) in words.iter().enumerate() {
        let i = i as i32;
        if *w == 0 {
            if cur.0 == -1 {
                cur = (i, 1);
            } else {
                cur.1 += 1;
            }
        } else if cur.0 != -1 {
            if best.0 == -1 || cur.1 > best.1 {
                best = cur;
            }
            cur.0 = -1;
        }
    }
    if cur.0 != -1 && (best.0 == -1 || cur.1 > best.1) {
        best = cur;
    }
    if best.0 != -1 && best.1 < 2 {
        best.0 = -1;
    }
    for (i, w) in words.iter().enumerate() {
        let i = i as i32;
        if best.0 != -1 && i >= best.0 && i < best.0 + best.1 {
            if i == best.0 {
                s.push(':');
            }
            continue;
        }
        if i != 0 {
            s.push(':');
        }
        if i == 6 && best.0 == 0 && (best.1 == 6 || (best.1 == 5 && words[5] == 0xffff)) {
            let _ = write!(s, "{}.{}.{}.{}", a[12], a[13], a[14], a[15]);
            break;
        }
        let _ = write!(s, "{w:x}");
    }
    if best.0 != -1 && best.0 + best.1 == 8 {
        s.push(':');
    }
}
