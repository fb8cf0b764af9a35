//! Quoting and escaping of text for the formats the tool writes: CSV fields, Markdown table
//! cells, conninfo values and shell words. One function per format, used everywhere.

/// One non-NULL CSV field (RFC 4180): quoted when empty, when it holds a comma, a quote or a
/// line break, or when it is `\.` (which COPY would read as the end of the data).
pub fn csv_field(out: &mut Vec<u8>, v: &str) {
    let quote = v.is_empty() || v == "\\." || v.contains([',', '"', '\r', '\n']);
    if !quote {
        out.extend_from_slice(v.as_bytes());
        return;
    }
    out.push(b'"');
    for c in v.bytes() {
        if c == b'"' {
            out.push(b'"');
        }
        out.push(c);
    }
    out.push(b'"');
}

/// A Markdown table cell: a pipe would end the cell and a line break the row.
pub fn markdown_cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// A conninfo value, single-quoted (with `\` and `'` escaped) when it is empty or holds white
/// space, a quote or a backslash, as libpq reads it.
pub fn conninfo_value(v: &str) -> String {
    if !v.is_empty()
        && !v
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '\\')
    {
        return v.to_string();
    }
    let mut s = String::with_capacity(v.len() + 2);
    s.push('\'');
    for c in v.chars() {
        if c == '\'' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('\'');
    s
}

/// A word for a POSIX shell, single-quoted when it needs it.
pub fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_format_quotes_what_it_must() {
        let mut out = Vec::new();
        csv_field(&mut out, "a,b");
        out.push(b' ');
        csv_field(&mut out, "plain");
        out.push(b' ');
        csv_field(&mut out, "say \"x\"");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#""a,b" plain "say ""x""""#
        );
        assert_eq!(markdown_cell("a|b\nc"), r"a\|b c");
        assert_eq!(conninfo_value("p'w d"), r"'p\'w d'");
        assert_eq!(conninfo_value("plain"), "plain");
        assert_eq!(conninfo_value(""), "''");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word("/a/b"), "/a/b");
    }
}
