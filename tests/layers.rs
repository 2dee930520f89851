//! The layering rule of src/lib.rs, checked: each module uses only the modules listed before it
//! in src/lib.rs's `# Layers` list (lines `//! N. `name`: ...`), never one listed after it.
//!
//! Every `.rs` file under `src/` belongs to the top-level module of its path (`src/conn/exec.rs`
//! is `conn`, `src/text.rs` is `text`); `src/lib.rs` itself is exempt. A file reaches another
//! top-level module through a path that starts at the crate root:
//! - `crate::x::...`, in a `use` or inline anywhere in code;
//! - the items of a group, `use crate::{x, y::z}`;
//! - a name src/lib.rs re-exports (`crate::Result` is `error`'s);
//! - `super::` climbing to the crate root (`super::x` in `src/text.rs` outside an inline `mod`).
//!
//! Comments, doc comments, string and char literals are blanked first, so prose that names
//! `crate::session` counts for nothing. A path to a module missing from the list fails too, so a
//! new module has to be given its place.
//!
//! The checker works on text, so the self-checks below run it on small synthetic crates, one with
//! an inverted import, and prove on every run that it reports what it must.

use std::fs;
use std::path::Path;

const LIB: &str = "src/lib.rs";

// ---------------------------------------------------------------------------------------------
// The checker
// ---------------------------------------------------------------------------------------------

/// Every violation in a crate whose `src/lib.rs` is `lib_rs` and whose other files are `files`
/// (path relative to the crate, e.g. `src/conn/exec.rs`, and contents). Empty when it is layered.
fn check(lib_rs: &str, files: &[(String, String)]) -> Vec<String> {
    let mut problems = Vec::new();
    let layers = layer_list(lib_rs, &mut problems);
    let lib_tokens = tokens(&blank(lib_rs));
    let reexports = reexports(&lib_tokens);

    // The list and the crate agree: each listed module has a file, each declared one is listed.
    for (i, name) in layers.iter().enumerate() {
        let (flat, dir) = (format!("src/{name}.rs"), format!("src/{name}/mod.rs"));
        if !files.iter().any(|(p, _)| *p == flat || *p == dir) {
            problems.push(format!("{LIB}: layer {} `{name}` has no {flat} or {dir}", i + 1));
        }
    }
    for (name, line) in declared_modules(&lib_tokens) {
        if !layers.contains(&name) {
            problems.push(format!("{LIB}:{line}: mod {name} is not in the layer list; give it its place there"));
        }
    }

    for (path, text) in files {
        if path == LIB {
            continue;
        }
        let Some((module, depth)) = module_of(path) else {
            problems.push(format!("{path}: not a .rs file under src/"));
            continue;
        };
        let Some(from) = layers.iter().position(|l| *l == module) else {
            problems.push(format!("{path}: module {module} is not in the layer list in {LIB}"));
            continue;
        };
        for r in root_references(text, depth) {
            let target = match layers.iter().position(|l| *l == r.first) {
                Some(j) => Some(j),
                None => reexports
                    .iter()
                    .find(|(name, _)| *name == r.first)
                    .and_then(|(_, m)| layers.iter().position(|l| l == m)),
            };
            let at = format!("{path}:{}: {}", r.line, r.import);
            match target {
                Some(j) if j > from => problems.push(format!(
                    "{at}: {module} (layer {}) may not use {} (layer {}); layers are listed in {LIB}",
                    from + 1,
                    layers[j],
                    j + 1
                )),
                Some(_) => {}
                None if r.first == "*" => {
                    problems.push(format!("{at}: a glob import of the crate root hides which modules {module} uses"))
                }
                None => problems.push(format!(
                    "{at}: {module} (layer {}) uses {}, which is neither a module in the layer list nor \
                     re-exported from one; layers are listed in {LIB}",
                    from + 1,
                    r.first
                )),
            }
        }
    }
    problems
}

/// The numbered list of src/lib.rs's doc comment, in order.
fn layer_list(lib_rs: &str, problems: &mut Vec<String>) -> Vec<String> {
    let mut layers: Vec<String> = Vec::new();
    for (i, line) in lib_rs.lines().enumerate() {
        let Some(rest) = line.trim_start().strip_prefix("//!") else { continue };
        let rest = rest.trim_start();
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let Some(entry) = rest[digits..].strip_prefix(". `") else { continue };
        let Some((name, _)) = entry.split_once("`:") else { continue };
        let (n, line) = (rest[..digits].parse::<usize>().unwrap_or(0), i + 1);
        if n != layers.len() + 1 {
            problems.push(format!("{LIB}:{line}: layer `{name}` is numbered {n}, expected {}", layers.len() + 1));
        }
        if layers.iter().any(|l| l == name) {
            problems.push(format!("{LIB}:{line}: layer `{name}` is listed twice"));
        }
        layers.push(name.to_string());
    }
    if layers.is_empty() {
        problems.push(format!("{LIB}: no layer list (doc comment lines of the form //! 1. `name`: ...)"));
    }
    layers
}

/// The top-level module a file belongs to, and how deep the file's own module is
/// (`src/text.rs` and `src/conn/mod.rs` 1, `src/conn/exec.rs` 2).
fn module_of(path: &str) -> Option<(String, usize)> {
    let parts: Vec<&str> = path.strip_prefix("src/")?.split('/').collect();
    let last = parts.last()?.strip_suffix(".rs")?;
    let module = if parts.len() == 1 { last } else { parts[0] };
    let depth = if last == "mod" { parts.len() - 1 } else { parts.len() };
    Some((module.to_string(), depth))
}

/// The text with comments, doc comments, string and char literals replaced by spaces (newlines
/// kept, so positions keep their line).
fn blank(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out: Vec<char> = Vec::with_capacity(c.len());
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let space = |ch: char| if ch == '\n' { '\n' } else { ' ' };
    let hashes_after = |k: usize| c[k + 1..].iter().take_while(|&&ch| ch == '#').count();
    let mut i = 0;
    while i < c.len() {
        let at = |k: usize| c.get(k).copied();
        let start = i;
        if c[i] == '/' && at(i + 1) == Some('/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if c[i] == '/' && at(i + 1) == Some('*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && at(i + 1) == Some('*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == Some('/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c[i] == 'r'
            && (i == 0 || !ident(c[i - 1]) || (c[i - 1] == 'b' && (i == 1 || !ident(c[i - 2]))))
            && at(i + 1 + hashes_after(i)) == Some('"')
        {
            // r"...", r#"..."#, br#"..."#: ends at a quote followed by as many #.
            let hashes = hashes_after(i);
            i += hashes + 2;
            let closes =
                |k: usize| c[k] == '"' && c.get(k + 1..k + 1 + hashes).is_some_and(|h| h.iter().all(|&ch| ch == '#'));
            while i < c.len() && !closes(i) {
                i += 1;
            }
            i = (i + 1 + hashes).min(c.len());
        } else if c[i] == '"' {
            i += 1;
            while i < c.len() && c[i] != '"' {
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i = (i + 1).min(c.len());
        } else if c[i] == '\'' && at(i + 1) == Some('\\') {
            // '\n', '\'', '\u{e9}'
            i += 3;
            while i < c.len() && c[i] != '\'' {
                i += 1;
            }
            i = (i + 1).min(c.len());
        } else if c[i] == '\'' && at(i + 2) == Some('\'') {
            i += 3;
        } else {
            // Code, and the quote of a lifetime ('a).
            out.push(c[i]);
            i += 1;
            continue;
        }
        out.extend(c[start..i].iter().map(|&ch| space(ch)));
    }
    out.into_iter().collect()
}

#[derive(Clone, Debug, PartialEq)]
struct Token {
    text: String,
    line: usize,
}

/// Identifiers (and numbers), `::`, and single punctuation characters, each with its line.
fn tokens(code: &str) -> Vec<Token> {
    let c: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < c.len() {
        let start = i;
        if c[i] == '\n' {
            line += 1;
            i += 1;
            continue;
        } else if c[i].is_whitespace() {
            i += 1;
            continue;
        } else if c[i].is_alphanumeric() || c[i] == '_' {
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
        } else if c[i] == ':' && c.get(i + 1) == Some(&':') {
            i += 2;
        } else {
            i += 1;
        }
        out.push(Token { text: c[start..i].iter().collect(), line });
    }
    out
}

/// One path from the crate root: where it is, as written, and its first segment after the root.
#[derive(Debug)]
struct RootRef {
    line: usize,
    import: String,
    first: String,
}

/// Every path in `text` that starts at the crate root: `crate::`, or enough `super::` to climb
/// there from a file whose module is `depth` deep (inline `mod name { ... }` blocks add a level).
fn root_references(text: &str, depth: usize) -> Vec<RootRef> {
    let t = tokens(&blank(text));
    let is = |k: usize, s: &str| t.get(k).is_some_and(|tok| tok.text == s);
    let mut refs = Vec::new();
    // For each open brace: whether it opens an inline module.
    let mut braces: Vec<bool> = Vec::new();
    let mut k = 0;
    while k < t.len() {
        match t[k].text.as_str() {
            "{" => braces.push(k >= 2 && is(k - 2, "mod")),
            "}" => {
                braces.pop();
            }
            "crate" if is(k + 1, "::") && !(k > 0 && is(k - 1, "::")) => {
                refs.extend(tree_from_root(&t, k, k + 2));
                k += 2;
                continue;
            }
            "super" if is(k + 1, "::") && !(k > 0 && is(k - 1, "::")) => {
                let mut after = k;
                let mut climbs = 0;
                while is(after, "super") && is(after + 1, "::") {
                    climbs += 1;
                    after += 2;
                }
                let here = depth + braces.iter().filter(|&&m| m).count();
                if climbs >= here {
                    refs.extend(tree_from_root(&t, k, after));
                }
                k = after;
                continue;
            }
            _ => {}
        }
        k += 1;
    }
    refs
}

/// The references of the path or use tree at `t[at..]`, which follows the root prefix
/// `t[prefix..at]` (`crate::`, `super::super::`): one per item of a `{...}` group.
fn tree_from_root(t: &[Token], prefix: usize, at: usize) -> Vec<RootRef> {
    let root = render(&t[prefix..at]);
    let Some(first) = t.get(at) else { return Vec::new() };
    if first.text != "{" {
        let end = path_end(t, at);
        return vec![RootRef {
            line: first.line,
            import: format!("{root}{}", render(&t[at..end])),
            first: first.text.clone(),
        }];
    }
    // A group: split at its top-level commas.
    let close = matching(t, at);
    let mut refs = Vec::new();
    let mut item = at + 1;
    let mut depth = 0;
    for k in at + 1..=close {
        match t[k].text.as_str() {
            "{" => depth += 1,
            "}" if depth > 0 => depth -= 1,
            "," | "}" if depth == 0 => {
                if k > item && t[item].text != "self" {
                    refs.push(RootRef {
                        line: t[item].line,
                        import: format!("{root}{}", render(&t[item..k])),
                        first: t[item].text.clone(),
                    });
                }
                item = k + 1;
            }
            _ => {}
        }
    }
    refs
}

/// The end of the path at `t[at..]`: segments joined by `::`, possibly ending in a group or `*`.
fn path_end(t: &[Token], at: usize) -> usize {
    let mut k = at + 1;
    while t.get(k).is_some_and(|tok| tok.text == "::") {
        match t.get(k + 1).map(|tok| tok.text.as_str()) {
            Some("{") => return matching(t, k + 1) + 1,
            Some("*") => return k + 2,
            Some(s) if s.chars().all(|ch| ch.is_alphanumeric() || ch == '_') => k += 2,
            _ => break,
        }
    }
    k
}

/// The index of the `}` that closes the `{` at `t[open]` (or the last token).
fn matching(t: &[Token], open: usize) -> usize {
    let mut depth = 0;
    for (k, tok) in t.iter().enumerate().skip(open) {
        match tok.text.as_str() {
            "{" => depth += 1,
            "}" => {
                depth -= 1;
                if depth == 0 {
                    return k;
                }
            }
            _ => {}
        }
    }
    t.len() - 1
}

/// Tokens as source text: `crate::rows::{Column, ResultSet}`, `crate::Error as E`.
fn render(t: &[Token]) -> String {
    let mut s = String::new();
    for (k, tok) in t.iter().enumerate() {
        let word = |x: &Token| x.text.chars().all(|ch| ch.is_alphanumeric() || ch == '_');
        if k > 0 && word(tok) && word(&t[k - 1]) {
            s.push(' ');
        }
        s.push_str(&tok.text);
        if tok.text == "," {
            s.push(' ');
        }
    }
    s
}

/// The names src/lib.rs re-exports at the crate root (`pub use error::{Code, Error}`), each with
/// the module it comes from.
fn reexports(lib: &[Token]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut depth = 0;
    for (k, tok) in lib.iter().enumerate() {
        match tok.text.as_str() {
            "{" => depth += 1,
            "}" => depth -= 1,
            "use" if depth == 0 => {
                let mut at = k + 1;
                if lib.get(at).is_some_and(|t| t.text == "crate") {
                    at += 2;
                }
                let Some(module) = lib.get(at) else { continue };
                let end = lib[at..].iter().position(|t| t.text == ";").map_or(lib.len(), |e| at + e);
                // An exported name is the last word of an item (the alias after `as`, if any).
                for e in at + 1..end {
                    let next = lib.get(e + 1).map_or(";", |t| t.text.as_str());
                    let word = lib[e].text.chars().all(|ch| ch.is_alphanumeric() || ch == '_');
                    if word && lib[e].text != "self" && matches!(next, "," | "}" | ";") {
                        out.push((lib[e].text.clone(), module.text.clone()));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// The modules src/lib.rs declares (`mod x;`, `pub mod x;`), with their lines.
fn declared_modules(lib: &[Token]) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let mut depth = 0;
    for (k, tok) in lib.iter().enumerate() {
        match tok.text.as_str() {
            "{" => depth += 1,
            "}" => depth -= 1,
            "mod" if depth == 0 => {
                if let (Some(name), Some(after)) = (lib.get(k + 1), lib.get(k + 2)) {
                    if after.text == ";" || after.text == "{" {
                        out.push((name.text.clone(), name.line));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The crate itself
// ---------------------------------------------------------------------------------------------

fn rust_files(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).unwrap().components();
            let rel: Vec<String> = rel.map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
            let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            out.push((rel.join("/"), text));
        }
    }
}

#[test]
fn src_uses_only_the_layers_below() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib_rs = fs::read_to_string(root.join(LIB)).expect("reading src/lib.rs");
    let mut files = Vec::new();
    rust_files(&root.join("src"), root, &mut files);
    files.sort();
    assert!(files.len() > 1, "no source files found under {}", root.join("src").display());
    let problems = check(&lib_rs, &files);
    assert!(problems.is_empty(), "{} layering violation(s):\n{}\n", problems.len(), problems.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Self-checks on synthetic crates
// ---------------------------------------------------------------------------------------------

const SYNTHETIC_LIB: &str = "\
//! A crate.
//!
//! 1. `text`: a leaf.
//! 2. `conn`: one connection,
//!    on two lines.
//! 3. `session`: the API.

mod conn;
pub mod session;
mod text;

pub use conn::{Conn, Error as ConnError};
pub use session::Session;

pub fn root_item() {}
";

fn crate_of(files: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut all = vec![("src/lib.rs".to_string(), SYNTHETIC_LIB.to_string())];
    all.extend(files.iter().map(|(p, t)| (p.to_string(), t.to_string())));
    all
}

const LAYERED: &[(&str, &str)] = &[
    ("src/text.rs", "pub fn utf8() {}\n#[cfg(test)]\nmod tests {\n    use super::*;\n    fn f() { super::utf8() }\n}\n"),
    ("src/conn/mod.rs", "mod exec;\nuse crate::text;\npub struct Conn;\npub struct Error;\n"),
    ("src/conn/exec.rs", "use super::Conn;\nuse crate::text::utf8;\npub fn run(_: &Conn) { utf8() }\n"),
    (
        "src/session.rs",
        "use crate::{conn::{Conn, Error}, text};\npub struct Session;\nfn f() -> crate::ConnError { crate::conn::Error }\n",
    ),
];

#[test]
fn self_check_a_layered_crate_passes() {
    assert_eq!(check(SYNTHETIC_LIB, &crate_of(LAYERED)), Vec::<String>::new());
}

#[test]
fn self_check_an_inverted_import_fails() {
    let mut files = LAYERED.to_vec();
    files[2] = ("src/conn/exec.rs", "use super::Conn;\nuse crate::session::Session;\npub fn run(_: &Conn) {}\n");
    assert_eq!(
        check(SYNTHETIC_LIB, &crate_of(&files)),
        ["src/conn/exec.rs:2: crate::session::Session: conn (layer 2) may not use session (layer 3); \
          layers are listed in src/lib.rs"]
    );
}

#[test]
fn self_check_every_form_of_path_is_seen() {
    let mut files = LAYERED.to_vec();
    files[1] = (
        "src/conn/mod.rs",
        "mod exec;\nuse crate::{text, session::{self, Session as S}};\n\
         pub fn f() { let _ = crate::session::open(); }\n\
         pub fn g() -> crate::Session { super::session::Session }\n\
         use crate::pool::Pool;\nfn h() { crate::root_item() }\nuse crate::*;\n\
         pub struct Conn;\npub struct Error;\n",
    );
    files[0] = ("src/text.rs", "pub fn utf8() -> crate::ConnError { todo!() }\n");
    let rule = "layers are listed in src/lib.rs";
    assert_eq!(
        check(SYNTHETIC_LIB, &crate_of(&files)),
        [
            format!("src/text.rs:1: crate::ConnError: text (layer 1) may not use conn (layer 2); {rule}"),
            format!("src/conn/mod.rs:2: crate::session::{{self, Session as S}}: conn (layer 2) may not use session (layer 3); {rule}"),
            format!("src/conn/mod.rs:3: crate::session::open: conn (layer 2) may not use session (layer 3); {rule}"),
            format!("src/conn/mod.rs:4: crate::Session: conn (layer 2) may not use session (layer 3); {rule}"),
            format!("src/conn/mod.rs:4: super::session::Session: conn (layer 2) may not use session (layer 3); {rule}"),
            format!(
                "src/conn/mod.rs:5: crate::pool::Pool: conn (layer 2) uses pool, which is neither a module in the \
                 layer list nor re-exported from one; {rule}"
            ),
            format!(
                "src/conn/mod.rs:6: crate::root_item: conn (layer 2) uses root_item, which is neither a module in \
                 the layer list nor re-exported from one; {rule}"
            ),
            "src/conn/mod.rs:7: crate::*: a glob import of the crate root hides which modules conn uses".to_string(),
        ]
    );
}

#[test]
fn self_check_comments_and_literals_do_not_count() {
    let mut files = LAYERED.to_vec();
    files[1] = (
        "src/conn/mod.rs",
        r####"//! Used by `crate::session`.
mod exec;
/// See [`crate::session::Session`].
/* crate::session /* nested crate::session */ still a comment: crate::session */
pub fn f<'a>(s: &'a str) -> (&'a str, char, char, &'static str, &'static [u8]) {
    let _ = "crate::session::x \" crate::session";
    let _ = r#"crate::session "quoted" crate::session"#;
    let _ = br"crate::session";
    (s, '"', '\'', "'", b"crate::session")
}
pub fn g() { crate::session::open() } // crate::session again
pub struct Conn;
pub struct Error;
"####,
    );
    assert_eq!(
        check(SYNTHETIC_LIB, &crate_of(&files)),
        ["src/conn/mod.rs:11: crate::session::open: conn (layer 2) may not use session (layer 3); \
          layers are listed in src/lib.rs"]
    );
}

#[test]
fn self_check_super_stays_inside_a_module_unless_it_reaches_the_root() {
    let mut files = LAYERED.to_vec();
    // src/text.rs is one level deep: super:: outside `mod tests` is the crate root.
    files[0] = ("src/text.rs", "pub fn utf8() { super::session::open() }\nmod tests {\n    use super::utf8;\n}\n");
    // src/conn/exec.rs is two levels deep: super:: is conn, super::super:: the root.
    files[2] =
        ("src/conn/exec.rs", "use super::Conn;\nfn f() { super::super::conn::Error; super::super::session::x() }\n");
    let rule = "layers are listed in src/lib.rs";
    assert_eq!(
        check(SYNTHETIC_LIB, &crate_of(&files)),
        [
            format!("src/text.rs:1: super::session::open: text (layer 1) may not use session (layer 3); {rule}"),
            format!(
                "src/conn/exec.rs:2: super::super::session::x: conn (layer 2) may not use session (layer 3); {rule}"
            ),
        ]
    );
}

#[test]
fn self_check_the_list_must_name_every_module() {
    let mut files = LAYERED.to_vec();
    files.push(("src/pool.rs", "use crate::text;\n"));
    let lib = format!("{SYNTHETIC_LIB}mod pool;\n");
    let mut all = vec![("src/lib.rs".to_string(), lib.clone())];
    all.extend(files.iter().map(|(p, t)| (p.to_string(), t.to_string())));
    assert_eq!(
        check(&lib, &all),
        [
            "src/lib.rs:16: mod pool is not in the layer list; give it its place there",
            "src/pool.rs: module pool is not in the layer list in src/lib.rs",
        ]
    );
    let unlisted = SYNTHETIC_LIB.replace("//! 2. `conn`", "//! 2. `connection`");
    let problems = check(&unlisted, &crate_of(LAYERED));
    assert!(
        problems.contains(&"src/lib.rs: layer 2 `connection` has no src/connection.rs or src/connection/mod.rs".into())
    );
    assert!(problems.contains(&"src/lib.rs:8: mod conn is not in the layer list; give it its place there".into()));
}
