//! A relation's tuple descriptor as the catalogs describe it (`pg_attribute` joined with
//! `pg_type`), and the enum labels its columns need (`pg_enum`).

use std::collections::HashMap;
use std::time::Duration;

use tokio_postgres::Client;

/// An array's element type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElemType {
    /// Type OID.
    pub oid: u32,
    /// `typname`.
    pub name: String,
    /// `typtype` (`b` base, `e` enum, ...).
    pub typtype: u8,
    /// `typlen`.
    pub len: i16,
    /// `typbyval`.
    pub byval: bool,
    /// `typalign` (`c`, `s`, `i`, `d`).
    pub align: u8,
}

/// What the renderer needs to know about a column's type (a domain is replaced by its base).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeInfo {
    /// Type OID.
    pub oid: u32,
    /// `typname` (for undecoded values and messages).
    pub name: String,
    /// `typtype`.
    pub typtype: u8,
    /// The element type of an array type (`_int4` and the like).
    pub elem: Option<ElemType>,
}

/// One attribute of the descriptor, dropped ones included (they still take their space).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    /// `attnum` (1-based).
    pub attnum: i16,
    /// `attname`.
    pub name: String,
    /// The type (OID 0 for a dropped column).
    pub typ: TypeInfo,
    /// `attlen`: > 0 fixed, -1 varlena, -2 C string.
    pub len: i16,
    /// `attalign`.
    pub align: u8,
    /// `attbyval`.
    pub byval: bool,
    /// `attisdropped`.
    pub dropped: bool,
    /// For a column added with a default after rows existed (`atthasmissing`): the value rows
    /// written before read back, as text (`None` inside when it is NULL).
    pub missing: Option<Option<String>>,
}

/// A relation's descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelDesc {
    /// The relation OID.
    pub oid: u32,
    /// Its name, schema-qualified as `regclass` prints it.
    pub name: String,
    /// Attributes in attnum order.
    pub attrs: Vec<Attr>,
    /// Enum value OID -> label, for the enum columns (and arrays of enums).
    pub enums: HashMap<u32, String>,
    /// The server's major version (output functions differ a little between majors).
    pub pg_major: u32,
}

/// Why a descriptor could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DescError {
    /// The query failed.
    #[error("reading the descriptor of relation {oid}: {source}")]
    Query {
        /// The relation OID.
        oid: u32,
        /// The error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The catalogs did not answer in time.
    #[error("reading the descriptor of relation {oid}: no answer within {waited:?}")]
    Timeout {
        /// The relation OID.
        oid: u32,
        /// How long it waited.
        waited: Duration,
    },
    /// No such relation, or an unexpected catalog row.
    #[error("reading the descriptor of relation {oid}: {what}")]
    Catalog {
        /// The relation OID.
        oid: u32,
        /// What was wrong.
        what: String,
    },
}

const ATTRS_SQL: &str = "
SELECT a.attnum::int4, a.attname::text, a.attlen::int4, a.attalign::text, a.attbyval,
       a.attisdropped, a.atthasmissing,
       CASE WHEN a.atthasmissing THEN a.attmissingval::text END,
       coalesce(t.oid, 0)::int8, coalesce(t.typname::text, ''), coalesce(t.typtype::text, ''),
       coalesce(e.oid, 0)::int8, coalesce(e.typname::text, ''), coalesce(e.typtype::text, ''),
       coalesce(e.typlen, 0)::int4, coalesce(e.typbyval, false), coalesce(e.typalign::text, '')
  FROM pg_catalog.pg_attribute a
  LEFT JOIN pg_catalog.pg_type d ON d.oid = a.atttypid
  LEFT JOIN pg_catalog.pg_type t
         ON t.oid = CASE WHEN d.typtype = 'd' THEN d.typbasetype ELSE d.oid END
  LEFT JOIN pg_catalog.pg_type e ON e.oid = t.typelem AND t.typlen = -1 AND t.typname LIKE '\\_%'
 WHERE a.attrelid = $1::int8::oid AND a.attnum > 0
 ORDER BY a.attnum";

const ENUM_SQL: &str = "
SELECT e.oid::int8, e.enumlabel::text FROM pg_catalog.pg_enum e
 WHERE e.enumtypid = ANY($1::int8[]::oid[])";

async fn bounded<T>(
    oid: u32,
    timeout: Duration,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, DescError> {
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| DescError::Timeout {
            oid,
            waited: timeout,
        })
}

fn first_byte(s: &str) -> u8 {
    s.as_bytes().first().copied().unwrap_or(0)
}

impl RelDesc {
    /// Reads relation `oid`'s descriptor. The session should have the tool's pinned settings
    /// (TimeZone UTC, DateStyle ISO, IntervalStyle postgres, extra_float_digits 1): the values
    /// of columns added later come back as the server prints them.
    pub async fn load(client: &Client, oid: u32, timeout: Duration) -> Result<RelDesc, DescError> {
        let q = |e| DescError::Query { oid, source: e };
        let oid64 = i64::from(oid);
        let head = bounded(
            oid,
            timeout,
            client.query_opt(
                "SELECT $1::int8::oid::regclass::text, current_setting('server_version_num')::int4",
                &[&oid64],
            ),
        )
        .await?
        .map_err(q)?
        .ok_or_else(|| DescError::Catalog {
            oid,
            what: "no such relation".into(),
        })?;
        let name: String = head.get(0);
        let version_num: i32 = head.get(1);
        let rows = bounded(oid, timeout, client.query(ATTRS_SQL, &[&oid64]))
            .await?
            .map_err(q)?;
        let mut attrs = Vec::with_capacity(rows.len());
        let mut enum_types = Vec::new();
        for r in rows {
            let typtype = first_byte(r.get::<_, &str>(10));
            let toid = u32::try_from(r.get::<_, i64>(8)).unwrap_or(0);
            let eoid = u32::try_from(r.get::<_, i64>(11)).unwrap_or(0);
            let elem = (eoid != 0).then(|| ElemType {
                oid: eoid,
                name: r.get::<_, String>(12),
                typtype: first_byte(r.get::<_, &str>(13)),
                len: i16::try_from(r.get::<_, i32>(14)).unwrap_or(0),
                byval: r.get(15),
                align: first_byte(r.get::<_, &str>(16)),
            });
            if typtype == b'e' {
                enum_types.push(i64::from(toid));
            }
            if let Some(e) = &elem {
                if e.typtype == b'e' {
                    enum_types.push(i64::from(e.oid));
                }
            }
            let has_missing: bool = r.get(6);
            let missing = if has_missing {
                let text: Option<String> = r.get(7);
                Some(match text {
                    None => None,
                    Some(t) => parse_single_element(&t).map_err(|what| DescError::Catalog {
                        oid,
                        what: format!("attmissingval {t:?}: {what}"),
                    })?,
                })
            } else {
                None
            };
            attrs.push(Attr {
                attnum: i16::try_from(r.get::<_, i32>(0)).unwrap_or(0),
                name: r.get(1),
                len: i16::try_from(r.get::<_, i32>(2)).unwrap_or(0),
                align: first_byte(r.get::<_, &str>(3)),
                byval: r.get(4),
                dropped: r.get(5),
                missing,
                typ: TypeInfo {
                    oid: toid,
                    name: r.get(9),
                    typtype,
                    elem,
                },
            });
        }
        if attrs.is_empty() {
            return Err(DescError::Catalog {
                oid,
                what: "the relation has no attributes".into(),
            });
        }
        let mut enums = HashMap::new();
        if !enum_types.is_empty() {
            let rows = bounded(oid, timeout, client.query(ENUM_SQL, &[&enum_types]))
                .await?
                .map_err(q)?;
            for r in rows {
                enums.insert(u32::try_from(r.get::<_, i64>(0)).unwrap_or(0), r.get(1));
            }
        }
        Ok(RelDesc {
            oid,
            name,
            attrs,
            enums,
            pg_major: u32::try_from(version_num / 10000).unwrap_or(0),
        })
    }
}

/// The one element of a one-element array literal (`{5}`, `{"a b"}`, `{NULL}`), unquoted.
pub fn parse_single_element(lit: &str) -> Result<Option<String>, String> {
    let inner = lit
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .ok_or("not an array literal")?;
    if let Some(q) = inner.strip_prefix('"') {
        let q = q.strip_suffix('"').ok_or("unterminated quoted element")?;
        let mut out = String::with_capacity(q.len());
        let mut chars = q.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.push(chars.next().ok_or("dangling backslash")?),
                '"' => return Err("more than one element".into()),
                c => out.push(c),
            }
        }
        return Ok(Some(out));
    }
    if inner.contains(',') || inner.contains('{') {
        return Err("not a single element".into());
    }
    if inner.eq_ignore_ascii_case("NULL") {
        return Ok(None);
    }
    Ok(Some(inner.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_element_literals() {
        assert_eq!(parse_single_element("{5}").unwrap(), Some("5".into()));
        assert_eq!(
            parse_single_element(r#"{"a \"b\" \\c"}"#).unwrap(),
            Some(r#"a "b" \c"#.into())
        );
        assert_eq!(parse_single_element("{NULL}").unwrap(), None);
        assert_eq!(
            parse_single_element(r#"{"NULL"}"#).unwrap(),
            Some("NULL".into())
        );
        assert!(parse_single_element("{1,2}").is_err());
        assert!(parse_single_element("5").is_err());
        assert!(parse_single_element("{\"x}").is_err());
    }
}
