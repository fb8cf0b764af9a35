//! The architecture as a test: the module map at the top of `src/lib.rs` is true, imports run
//! only down its layers, and no two modules or files import each other in a circle.
//!
//! The imports are read from the code as text: every `crate::…`, `super::…` and `self::…`
//! path, the relative `use child::…` of a module file, and `pub use` re-exports followed to the
//! file that defines the name, so that a child importing its parent's facade is not mistaken for
//! a circle with its siblings.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One source file as a module path (`wal::source`; `""` is the crate root).
#[derive(Debug)]
struct File {
    module: String,
    text: String,
}

fn module_of(src: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts.join("::")
}

fn read_tree(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            read_tree(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The crate's files, `main.rs` left out (it is the binary, above everything).
fn files() -> Vec<File> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    read_tree(&src, &mut paths);
    paths.sort();
    paths
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n != "main.rs"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            // Unit tests are not the architecture (and their `super::*` is the file itself).
            let text = match text.find("#[cfg(test)]\nmod ") {
                Some(at) => &text[..at],
                None => &text[..],
            };
            File {
                module: module_of(&src, &p),
                text: code_only(text),
            }
        })
        .collect()
}

/// The text without comments and string literals, so that a path in a doc comment or a
/// message is no import.
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b'r' if b.get(i + 1) == Some(&b'#') || (b.get(i + 1) == Some(&b'"')) => {
                // A raw string r"…" or r#"…"#, unless `r` ends an identifier.
                let ident_before = i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
                let mut j = i + 1;
                let mut hashes = 0;
                while b.get(j) == Some(&b'#') {
                    hashes += 1;
                    j += 1;
                }
                if ident_before || b.get(j) != Some(&b'"') {
                    out.push('r');
                    i += 1;
                    continue;
                }
                j += 1;
                loop {
                    if j >= b.len() {
                        break;
                    }
                    if b[j] == b'"' && b[j + 1..].iter().take(hashes).all(|&c| c == b'#') {
                        j += 1 + hashes;
                        break;
                    }
                    j += 1;
                }
                out.push_str("\"\"");
                i = j;
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
                out.push_str("\"\"");
            }
            b'\'' => {
                // A char literal ('x', '\n', '\u{..}'), or a lifetime ('a): keep lifetimes.
                let rest = &text[i..];
                let lit = if let Some(esc) = rest.strip_prefix("'\\") {
                    esc.find('\'').map(|e| e + 3)
                } else {
                    rest[1..]
                        .chars()
                        .next()
                        .filter(|c| rest[1 + c.len_utf8()..].starts_with('\''))
                        .map(|c| c.len_utf8() + 2)
                };
                match lit {
                    Some(n) => {
                        out.push_str("' '");
                        i += n;
                    }
                    None => {
                        out.push('\'');
                        i += 1;
                    }
                }
            }
            _ => {
                let c = text[i..].chars().next().unwrap();
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Expands a use tree starting at `s` (`a::b::{c, d::e}`) into paths; returns them.
fn use_tree(s: &str) -> Vec<Vec<String>> {
    fn tree(s: &[char], i: &mut usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
        let mut path = prefix;
        loop {
            while *i < s.len() && s[*i].is_whitespace() {
                *i += 1;
            }
            if *i < s.len() && s[*i] == '{' {
                *i += 1;
                loop {
                    tree(s, i, path.clone(), out);
                    while *i < s.len() && s[*i].is_whitespace() {
                        *i += 1;
                    }
                    match s.get(*i) {
                        Some(',') => {
                            *i += 1;
                            while *i < s.len() && s[*i].is_whitespace() {
                                *i += 1;
                            }
                            if s.get(*i) == Some(&'}') {
                                *i += 1;
                                return;
                            }
                        }
                        Some('}') => {
                            *i += 1;
                            return;
                        }
                        _ => return,
                    }
                }
            }
            let start = *i;
            while *i < s.len() && is_ident(s[*i]) {
                *i += 1;
            }
            if start == *i {
                if *i < s.len() && s[*i] == '*' {
                    *i += 1;
                }
                out.push(path);
                return;
            }
            path.push(s[start..*i].iter().collect());
            if s.get(*i) == Some(&':') && s.get(*i + 1) == Some(&':') {
                *i += 2;
                continue;
            }
            out.push(path);
            // `as alias`
            return;
        }
    }
    let chars: Vec<char> = s.chars().take(4000).collect();
    let mut out = Vec::new();
    let mut i = 0;
    tree(&chars, &mut i, Vec::new(), &mut out);
    out
}

/// Every path a file names, as absolute module paths (segments after `crate`), with whether it
/// comes from a `pub use` (a re-export).
fn paths_of(file: &File, modules: &BTreeSet<String>) -> Vec<(Vec<String>, bool)> {
    let here: Vec<String> = if file.module.is_empty() {
        Vec::new()
    } else {
        file.module.split("::").map(String::from).collect()
    };
    let text = &file.text;
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    for (kw, base) in [
        ("crate::", Vec::new()),
        ("super::", here[..here.len().saturating_sub(1)].to_vec()),
        ("self::", here.clone()),
    ] {
        let mut from = 0;
        while let Some(pos) = text[from..].find(kw) {
            let at = from + pos;
            from = at + kw.len();
            if at > 0 && (is_ident(bytes[at - 1] as char) || bytes[at - 1] == b':') {
                continue;
            }
            let line_start = text[..at].rfind('\n').map_or(0, |p| p + 1);
            let reexport = text[line_start..at].trim_start().starts_with("pub")
                && text[line_start..at].contains("use");
            for p in use_tree(&text[at + kw.len()..]) {
                let mut full = base.clone();
                full.extend(p);
                out.push((full, reexport));
            }
        }
    }
    // A child module named by a bare path (`text::render(…)` in `report/mod.rs`).
    let children: Vec<&str> = modules
        .iter()
        .filter_map(|m| {
            let rest = if file.module.is_empty() {
                Some(m.as_str())
            } else {
                m.strip_prefix(&format!("{}::", file.module))
            };
            rest.filter(|r| !r.is_empty() && !r.contains("::"))
        })
        .collect();
    for child in children {
        let kw = format!("{child}::");
        let mut from = 0;
        while let Some(pos) = text[from..].find(&kw) {
            let at = from + pos;
            from = at + kw.len();
            if at > 0 && (is_ident(bytes[at - 1] as char) || bytes[at - 1] == b':') {
                continue;
            }
            let line_start = text[..at].rfind('\n').map_or(0, |p| p + 1);
            let reexport = text[line_start..at].trim_start().starts_with("pub")
                && text[line_start..at].contains("use");
            for p in use_tree(&text[at..]) {
                let mut full = here.clone();
                full.extend(p);
                out.push((full, reexport));
            }
        }
    }
    out
}

/// The longest module that prefixes `path`, and the rest of the path.
fn resolve<'a>(path: &'a [String], modules: &BTreeSet<String>) -> Option<(String, &'a [String])> {
    (1..=path.len()).rev().find_map(|n| {
        let m = path[..n].join("::");
        modules.contains(&m).then_some((m, &path[n..]))
    })
}

struct Graph {
    /// file module → the file modules it imports from.
    edges: BTreeMap<String, BTreeSet<String>>,
}

fn graph(files: &[File]) -> Graph {
    let modules: BTreeSet<String> = files.iter().map(|f| f.module.clone()).collect();
    // Re-exports: (module, name) → the module that defines it.
    let mut reexports: BTreeMap<(String, String), String> = BTreeMap::new();
    for f in files {
        for (p, re) in paths_of(f, &modules) {
            if !re {
                continue;
            }
            if let Some((target, rest)) = resolve(&p, &modules) {
                if let Some(name) = p.last() {
                    if target != f.module && !rest.is_empty() {
                        reexports.insert((f.module.clone(), name.clone()), target);
                    }
                }
            }
        }
    }
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let set = edges.entry(f.module.clone()).or_default();
        for (p, _) in paths_of(f, &modules) {
            let Some((mut target, rest)) = resolve(&p, &modules) else {
                continue;
            };
            // Follow a facade's re-exports down to the child file that defines the name (a
            // re-export from elsewhere stays an import of the facade).
            for _ in 0..4 {
                match rest
                    .first()
                    .and_then(|n| reexports.get(&(target.clone(), n.clone())))
                {
                    Some(t) if t.starts_with(&format!("{target}::")) || target.is_empty() => {
                        target = t.clone()
                    }
                    _ => break,
                }
            }
            if target != f.module && !target.is_empty() {
                set.insert(target);
            }
        }
    }
    Graph { edges }
}

fn top(module: &str) -> &str {
    module.split("::").next().unwrap_or(module)
}

/// The layers declared in `src/lib.rs`: lines `//! - L<n> `module`: …`.
fn declared_layers() -> BTreeMap<String, u32> {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    let mut out = BTreeMap::new();
    for line in lib.lines() {
        let Some(rest) = line.strip_prefix("//! - L") else {
            continue;
        };
        let n: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let rest = &rest[n.len()..];
        let names = rest.split(':').next().unwrap_or("");
        for name in names.split('`').skip(1).step_by(2) {
            out.insert(name.to_string(), n.parse().unwrap());
        }
    }
    out
}

/// Finds one circle in a graph, as the list of nodes around it.
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    // Tarjan's strongly connected components: every component of two or more is a circle.
    struct T<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        t.index.insert(v, t.next);
        t.low.insert(v, t.next);
        t.next += 1;
        t.stack.push(v);
        t.on.insert(v);
        if let Some(ws) = t.edges.get(v) {
            for w in ws {
                let w = w.as_str();
                if !t.index.contains_key(w) {
                    visit(t, w);
                    let lw = t.low[w];
                    let lv = t.low[v];
                    t.low.insert(v, lv.min(lw));
                } else if t.on.contains(w) {
                    let iw = t.index[w];
                    let lv = t.low[v];
                    t.low.insert(v, lv.min(iw));
                }
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t = T {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

fn describe(g: &Graph, members: &[String], level: impl Fn(&str) -> String) -> String {
    let set: BTreeSet<&str> = members.iter().map(String::as_str).collect();
    let mut lines = Vec::new();
    for (from, tos) in &g.edges {
        for to in tos {
            let (a, b) = (level(from), level(to));
            if a != b && set.contains(a.as_str()) && set.contains(b.as_str()) {
                lines.push(format!("  {from} -> {to}"));
            }
        }
    }
    lines.join("\n")
}

#[test]
fn the_module_map_names_every_module() {
    let layers = declared_layers();
    assert!(
        layers.len() >= 10,
        "src/lib.rs has no module map (lines `//! - L<n> `module`: …`)"
    );
    let files = files();
    let tops: BTreeSet<&str> = files
        .iter()
        .map(|f| top(&f.module))
        .filter(|m| !m.is_empty())
        .collect();
    let missing: Vec<&&str> = tops.iter().filter(|m| !layers.contains_key(**m)).collect();
    assert!(
        missing.is_empty(),
        "modules missing from the map in src/lib.rs: {missing:?}"
    );
    let stale: Vec<&String> = layers
        .keys()
        .filter(|m| !tops.contains(m.as_str()))
        .collect();
    assert!(
        stale.is_empty(),
        "the map in src/lib.rs names modules that do not exist: {stale:?}"
    );
}

#[test]
fn imports_run_down_the_layers() {
    let layers = declared_layers();
    let g = graph(&files());
    let mut up = Vec::new();
    for (from, tos) in &g.edges {
        for to in tos {
            let (a, b) = (top(from), top(to));
            if let (Some(la), Some(lb)) = (layers.get(a), layers.get(b)) {
                if lb < la {
                    up.push(format!("  {from} (L{la}) -> {to} (L{lb})"));
                }
            }
        }
    }
    assert!(
        up.is_empty(),
        "imports that run up the layers of src/lib.rs's module map:\n{}",
        up.join("\n")
    );
}

#[test]
fn no_two_modules_import_each_other() {
    let g = graph(&files());
    let mut top_edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, tos) in &g.edges {
        for to in tos {
            if top(from) != top(to) {
                top_edges
                    .entry(top(from).to_string())
                    .or_default()
                    .insert(top(to).to_string());
            }
        }
    }
    let found = circles(&top_edges);
    let text: Vec<String> = found
        .iter()
        .map(|c| {
            format!(
                "{}:\n{}",
                c.join(" ↔ "),
                describe(&g, c, |m| top(m).to_string())
            )
        })
        .collect();
    assert!(
        found.is_empty(),
        "circles between modules:\n{}",
        text.join("\n")
    );
}

#[test]
fn no_two_files_import_each_other() {
    let g = graph(&files());
    let found = circles(&g.edges);
    let text: Vec<String> = found
        .iter()
        .map(|c| format!("{}:\n{}", c.join(" ↔ "), describe(&g, c, |m| m.to_string())))
        .collect();
    assert!(
        found.is_empty(),
        "circles between files:\n{}",
        text.join("\n")
    );
}

/// The reader itself: a circle drawn on purpose is found, a re-export is followed, and a path
/// in a comment or a string is no import.
#[test]
fn the_reader_finds_a_circle_and_ignores_comments() {
    let f = |module: &str, text: &str| File {
        module: module.into(),
        text: code_only(text),
    };
    let files =
        vec![
        f("", "pub mod a; pub mod b;"),
        f(
            "a",
            "mod x;\npub use x::Thing;\n// crate::b::Nope\nfn f() { let s = \"crate::b::Nope\"; }",
        ),
        f("a::x", "use crate::b::{Other, deep::{One}};\npub struct Thing;"),
        f("b", "pub mod deep;\nuse crate::a::Thing;\npub struct Other;"),
        f("b::deep", "pub struct One;"),
    ];
    let g = graph(&files);
    assert_eq!(
        g.edges["a::x"],
        BTreeSet::from(["b".to_string(), "b::deep".to_string()])
    );
    // b takes Thing through a's re-export: the arrow goes to the file that defines it.
    assert_eq!(g.edges["b"], BTreeSet::from(["a::x".to_string()]));
    assert!(g.edges["a"].contains("a::x"));
    assert!(
        !g.edges["a"].contains("b"),
        "a comment or a string made an import"
    );
    assert_eq!(
        circles(&g.edges),
        vec![vec!["a::x".to_string(), "b".to_string()]]
    );
}
