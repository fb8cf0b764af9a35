//! Unit tests of the datums printed as PostgreSQL's output functions print them.

use super::*;

#[test]
fn floats_print_like_postgresql() {
    assert_eq!(float_out(1e15, false), "1e+15");
    assert_eq!(float_out(1e14, false), "100000000000000");
    assert_eq!(float_out(0.1, false), "0.1");
    assert_eq!(float_out(1e-5, false), "1e-05");
    assert_eq!(float_out(0.0001, false), "0.0001");
    assert_eq!(float_out(-1.5e300, false), "-1.5e+300");
    assert_eq!(float_out(f64::from(1e6_f32), true), "1e+06");
    assert_eq!(float_out(f64::from(123456.0_f32), true), "123456");
    assert_eq!(float_out(-0.0, false), "-0");
}

#[test]
fn dates() {
    assert_eq!(date_out(0).unwrap(), "2000-01-01");
    assert_eq!(date_out(-10_957).unwrap(), "1970-01-01");
    assert_eq!(date_out(-730_119).unwrap(), "0001-01-01");
    assert_eq!(date_out(-730_120).unwrap(), "0001-12-31 BC");
    assert_eq!(
        timestamp_out(-1, true).unwrap(),
        "1999-12-31 23:59:59.999999+00"
    );
    assert!(date_out(-2_000_000_000).is_err());
}

#[test]
fn intervals() {
    let iv = |t: i64, d: i32, m: i32| {
        let mut b = t.to_le_bytes().to_vec();
        b.extend(d.to_le_bytes());
        b.extend(m.to_le_bytes());
        interval_out(&b).unwrap()
    };
    assert_eq!(iv(0, 0, 0), "00:00:00");
    assert_eq!(
        iv(3_600_000_000 * 2, -1, 14),
        "1 year 2 mons -1 days +02:00:00"
    );
    assert_eq!(iv(-1_500_000, 0, 0), "-00:00:01.5");
}

#[test]
fn inet() {
    assert_eq!(inet_out(&[2, 32, 10, 0, 0, 1], false).unwrap(), "10.0.0.1");
    assert_eq!(inet_out(&[2, 8, 10, 0, 0, 0], true).unwrap(), "10.0.0.0/8");
    let mut v6 = vec![3, 128];
    v6.extend([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    assert_eq!(inet_out(&v6, false).unwrap(), "2001:db8::1");
    let mut m = vec![3, 128];
    m.extend([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4]);
    assert_eq!(inet_out(&m, false).unwrap(), "::ffff:1.2.3.4");
    assert!(inet_out(&[2, 33, 1, 2, 3, 4], false).is_err());
    assert!(inet_out(&[9], false).is_err());
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    for b in [
        &[][..],
        &[0xff; 3],
        &[0x00, 0x80, 1],
        &[0, 0, 0, 0x20, 0xff, 0xff, 0xff, 0x7f],
    ] {
        let _ = jsonb_out(b);
        let _ = numeric_out(b);
        let _ = interval_out(b);
    }
    assert!(jsonb_out(&[1, 0, 0, 0x20, 0xff, 0xff, 0xff, 0x0f]).is_err());
}
