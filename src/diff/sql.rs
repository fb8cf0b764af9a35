//! SQL text helpers: identifier quoting and typed literals.
//!
//! Every identifier the tool sends is double-quoted (`"weird ""name"""`), and every value it
//! sends back to a server is a typed literal `'text'::type` built from the value's text output,
//! with `standard_conforming_strings` pinned on so backslashes are literal.

/// Quotes an identifier: `a"b` → `"a""b"`.
pub fn ident(name: &str) -> String {
    let mut s = String::with_capacity(name.len() + 2);
    s.push('"');
    for c in name.chars() {
        if c == '"' {
            s.push('"');
        }
        s.push(c);
    }
    s.push('"');
    s
}

/// A schema-qualified, quoted relation name.
pub fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", ident(schema), ident(table))
}

/// A string literal (standard conforming strings): `it's` → `'it''s'`.
pub fn literal(value: &str) -> String {
    let mut s = String::with_capacity(value.len() + 2);
    s.push('\'');
    for c in value.chars() {
        if c == '\'' {
            s.push('\'');
        }
        s.push(c);
    }
    s.push('\'');
    s
}

/// A typed literal from a text value (`NULL::type` for `None`); `ty` is a `format_type` output.
pub fn typed(value: Option<&str>, ty: &str) -> String {
    match value {
        Some(v) => format!("{}::{ty}", literal(v)),
        None => format!("NULL::{ty}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(ident(r#"weird "name""#), r#""weird ""name""""#);
        assert_eq!(ident("select"), "\"select\"");
        assert_eq!(qualified("s;x", "t t"), "\"s;x\".\"t t\"");
        assert_eq!(literal(r"it's \n"), r"'it''s \n'");
        assert_eq!(typed(None, "integer"), "NULL::integer");
        assert_eq!(typed(Some("ö"), "text"), "'ö'::text");
    }
}
