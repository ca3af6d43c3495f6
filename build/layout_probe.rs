//! The C probe of the layout check, generated from the fact tables.
//!
//! Each file under `src/refcount/` declares its facts once, in a
//! `crate::layout::facts!` table whose rows read
//!
//! ```text
//! /// doc
//! #[cfg(...)]                                  (optional)
//! NAME: TYPE = VALUE => "C expression";
//! ```
//!
//! one row per line. The macro (in `src/layout/mod.rs`) turns each row into
//! the Rust constant and a compile-time comparison with `oracle::NAME`;
//! this file turns the same rows into the C enumerators that bindgen reads
//! into `oracle::NAME`, for the files and rows that `src/refcount/mod.rs`
//! compiles for the target. A row that this reader missed has no
//! `oracle::NAME`, so the crate does not compile: no fact goes unchecked.
//!
//! Shared by `build.rs` and by the crate's unit tests (`src/layout/mod.rs`
//! includes it under `cfg(test)`), so it only reads files and strings.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

/// Prefix of the probe's enumerators; bindgen strips it, so that
/// `pyimmortal_oracle_NAME` becomes `oracle::NAME`.
pub const PREFIX: &str = "pyimmortal_oracle_";

/// One row of a `facts!` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The predicate of the row's `#[cfg(...)]`, if any.
    pub cfg: Option<String>,
    pub name: String,
    /// The C expression the row is compared with.
    pub c_expr: String,
    /// 1-based line number in its file.
    pub line: usize,
}

/// The layout tables of one source file.
#[derive(Debug, Default)]
pub struct Tables {
    /// The rows of its `facts!` tables.
    pub rows: Vec<Row>,
    /// The 0-based line ranges of its `facts!` and `object_head!` tables,
    /// opening and closing lines included.
    pub blocks: Vec<std::ops::Range<usize>>,
}

/// Reads the `facts!` and `object_head!` tables of a source file. A table
/// starts with a line that is exactly `crate::layout::facts! {` or
/// `crate::layout::object_head! {` (the path is optional) and ends at the
/// next line that is exactly `}`.
pub fn parse_tables(text: &str) -> Result<Tables, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut tables = Tables::default();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let opening = line.trim_start();
        let opening = opening.strip_prefix("crate::layout::").unwrap_or(opening);
        let is_facts = opening == "facts! {";
        if !(is_facts || opening == "object_head! {") {
            i += 1;
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            return Err(format!("line {}: tables must start at column 0", i + 1));
        }
        let start = i;
        let end = (start + 1..lines.len())
            .find(|&j| lines[j] == "}")
            .ok_or_else(|| format!("line {}: table without a closing `}}`", start + 1))?;
        if is_facts {
            let mut cfg = None;
            for (j, row) in lines.iter().enumerate().take(end).skip(start + 1) {
                let row = row.trim();
                if row.is_empty() || row.starts_with("//") {
                    continue;
                }
                if let Some(pred) = row
                    .strip_prefix("#[cfg(")
                    .and_then(|r| r.strip_suffix(")]"))
                {
                    cfg = Some(pred.to_string());
                    continue;
                }
                let parsed = parse_row(row).map_err(|e| format!("line {}: {e}", j + 1))?;
                let (name, c_expr) = parsed;
                tables.rows.push(Row {
                    cfg: cfg.take(),
                    name,
                    c_expr,
                    line: j + 1,
                });
            }
        }
        tables.blocks.push(start..end + 1);
        i = end + 1;
    }
    Ok(tables)
}

/// `NAME: TYPE = VALUE => "C expression";` into `(NAME, C expression)`.
fn parse_row(row: &str) -> Result<(String, String), String> {
    let bad = || format!("expected `NAME: TYPE = VALUE => \"C expression\";`, got `{row}`");
    let body = row.strip_suffix(';').ok_or_else(bad)?;
    let (rust, c) = body.rsplit_once("=>").ok_or_else(bad)?;
    let c = c.trim();
    let c_expr = c
        .strip_prefix('"')
        .and_then(|c| c.strip_suffix('"'))
        .filter(|c| !c.is_empty() && !c.contains(['"', '\\']))
        .ok_or_else(bad)?;
    let (name, _) = rust.split_once(':').ok_or_else(bad)?;
    let name = name.trim();
    let is_constant_name = name
        .chars()
        .all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit() || ch == '_');
    if name.is_empty() || !is_constant_name || !rust.contains('=') {
        return Err(bad());
    }
    Ok((name.to_string(), c_expr.to_string()))
}

/// Evaluates a `cfg` predicate (`NAME`, `not(..)`, `all(..)`, `any(..)`)
/// against the cfgs that are set.
pub fn cfg_holds(pred: &str, set: &[String]) -> Result<bool, String> {
    fn eval<'a>(s: &'a str, set: &[String]) -> Result<(bool, &'a str), String> {
        let s = s.trim_start();
        let end = s
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(s.len());
        let (name, mut rest) = s.split_at(end);
        if name.is_empty() {
            return Err(format!("expected a cfg name at `{s}`"));
        }
        let Some(args) = rest.trim_start().strip_prefix('(') else {
            return Ok((set.iter().any(|c| c == name), rest));
        };
        rest = args;
        let mut values = Vec::new();
        loop {
            rest = rest.trim_start();
            if let Some(r) = rest.strip_prefix(')') {
                rest = r;
                break;
            }
            let (v, r) = eval(rest, set)?;
            values.push(v);
            rest = r.trim_start();
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
        let v = match (name, values.as_slice()) {
            ("not", [v]) => !v,
            ("all", vs) => vs.iter().all(|&v| v),
            ("any", vs) => vs.iter().any(|&v| v),
            _ => return Err(format!("unsupported cfg predicate `{name}(..)`")),
        };
        Ok((v, rest))
    }
    match eval(pred, set)? {
        (v, rest) if rest.trim().is_empty() => Ok(v),
        (_, rest) => Err(format!("trailing `{rest}` in cfg `{pred}`")),
    }
}

/// The files of `refcount_dir` that `refcount_dir/mod.rs` compiles when
/// `set` holds: each `mod NAME;` (or `#[path = "FILE"]`) whose `#[cfg(..)]`,
/// if any, holds. `mod.rs` itself comes first.
pub fn compiled_files(refcount_dir: &Path, set: &[String]) -> Result<Vec<String>, String> {
    let mod_rs = refcount_dir.join("mod.rs");
    let text = fs::read_to_string(&mod_rs).map_err(|e| format!("{}: {e}", mod_rs.display()))?;
    let mut files = vec!["mod.rs".to_string()];
    let (mut cfg, mut path) = (None::<String>, None::<String>);
    for line in text.lines().map(str::trim) {
        if let Some(pred) = line
            .strip_prefix("#[cfg(")
            .and_then(|r| r.strip_suffix(")]"))
        {
            cfg = Some(pred.to_string());
        } else if let Some(p) = line
            .strip_prefix("#[path = \"")
            .and_then(|r| r.strip_suffix("\"]"))
        {
            path = Some(p.to_string());
        } else if let Some(name) = line
            .trim_start_matches("pub ")
            .strip_prefix("mod ")
            .and_then(|r| r.strip_suffix(';'))
        {
            let holds = match cfg.take() {
                Some(pred) => cfg_holds(&pred, set)?,
                None => true,
            };
            let file = path.take().unwrap_or_else(|| format!("{name}.rs"));
            if holds {
                files.push(file);
            }
        } else if !line.starts_with("//") {
            cfg = None;
            path = None;
        }
    }
    Ok(files)
}

/// The C probe for a target: `#include "prologue"`, then one enumerator
/// per `facts!` row that the crate compiles for `set`, each preceded by a
/// `#line` directive so that a C error points at the row.
pub fn probe(refcount_dir: &Path, prologue: &Path, set: &[String]) -> Result<String, String> {
    let mut c = format!(
        "/* Generated by build.rs from the facts! tables in src/refcount/. */\n#include \"{}\"\n",
        prologue.display()
    );
    for file in compiled_files(refcount_dir, set)? {
        let path = refcount_dir.join(&file);
        let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let tables = parse_tables(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        for row in tables.rows {
            let compiled = match &row.cfg {
                Some(pred) => {
                    cfg_holds(pred, set).map_err(|e| format!("{}: {e}", path.display()))?
                }
                None => true,
            };
            if compiled {
                let _ = writeln!(
                    c,
                    "#line {} \"{}\"\nenum {{ {PREFIX}{} = ({}) }};",
                    row.line,
                    path.display(),
                    row.name,
                    row.c_expr
                );
            }
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(cfgs: &[&str]) -> Vec<String> {
        cfgs.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn evaluates_cfg_predicates() {
        let s = set(&["Py_3_12", "Py_3_13", "Py_GIL_DISABLED"]);
        assert!(cfg_holds("Py_3_13", &s).unwrap());
        assert!(!cfg_holds("Py_3_14", &s).unwrap());
        assert!(cfg_holds("not(Py_3_14)", &s).unwrap());
        assert!(cfg_holds("all(Py_3_12, not(Py_3_14), Py_GIL_DISABLED)", &s).unwrap());
        assert!(!cfg_holds("all(Py_3_12, not(Py_GIL_DISABLED))", &s).unwrap());
        assert!(!cfg_holds("all(Py_3_12, not(Py_3_14), Py_3_9)", &s).unwrap());
        assert!(cfg_holds("any(test, Py_3_13)", &s).unwrap());
        assert!(cfg_holds("maybe(Py_3_13)", &s).is_err());
        assert!(cfg_holds("Py_3_13 Py_3_14", &s).is_err());
    }

    #[test]
    fn reads_rows_and_blocks() {
        let text = "use x;\n\
                    crate::layout::facts! {\n    \
                    /// doc\n    \
                    A: u8 = 1 => \"_Py_A\";\n\n    \
                    #[cfg(Py_3_14)]\n    \
                    B_2: isize = isize::MAX / 8 => \"PY_SSIZE_T_MAX / 8\";\n\
                    }\n\
                    crate::layout::object_head! {\n    \
                    pub struct ObjectHead {\n        \
                    pub ob_refcnt: isize,\n    \
                    }\n\
                    }\n";
        let t = parse_tables(text).unwrap();
        assert_eq!(t.blocks, vec![1..8, 8..13]);
        assert_eq!(t.rows.len(), 2);
        assert_eq!(
            (t.rows[0].name.as_str(), t.rows[0].c_expr.as_str()),
            ("A", "_Py_A")
        );
        assert_eq!(t.rows[0].cfg, None);
        assert_eq!(t.rows[1].cfg.as_deref(), Some("Py_3_14"));
        assert_eq!(t.rows[1].line, 7);
    }

    #[test]
    fn rejects_rows_it_cannot_read() {
        for row in [
            "A: u8 = 1;",
            "A: u8 = 1 => _Py_A;",
            "A: u8 = 1 => \"\";",
            "a: u8 = 1 => \"x\";",
            "A: u8 = 1 =>\n",
        ] {
            let text = format!("facts! {{\n{row}\n}}\n");
            assert!(parse_tables(&text).is_err(), "{row}");
        }
        assert!(parse_tables("    facts! {\n}\n").is_err());
        assert!(parse_tables("facts! {\nA: u8 = 1 => \"x\";\n").is_err());
    }
}
