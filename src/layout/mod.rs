//! The layout check: every fact that pyimmortal assumes about the target's
//! headers is compared, at compile time, with the headers themselves. A
//! difference stops the build with a message naming the fact; no layout is
//! ever guessed.
//!
//! This module is on the side of the crate: nothing calls into it at run
//! time. The facts live in `src/refcount/`, each declared once in a table:
//!
//! - `facts!`: constants. A row `NAME: TYPE = VALUE => "C expression";`
//!   becomes the constant `NAME`, a C enumerator in the probe that `build.rs`
//!   generates from the same row (`build/layout_probe.rs`), which bindgen
//!   evaluates with clang into `oracle::NAME`, and an assertion that the
//!   two are equal. A row that the probe lacks has no `oracle::NAME` and does
//!   not compile.
//! - `object_head!`: the `PyObject` header. The struct's size and alignment,
//!   and every field's offset and size, are compared with bindgen's reading
//!   of `PyObject`.
//!
//! A unit test below checks that nothing in `src/` declares a header fact
//! outside these tables.

/// bindgen's reading of the target's `Python.h` and of the generated probe
/// (`PyObject`, and one constant per `facts!` row).
#[allow(
    dead_code,
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    clippy::all
)]
pub(crate) mod oracle {
    include!(concat!(env!("OUT_DIR"), "/cpython_oracle.rs"));
}

// The headers are those of the version the library is built for.
const _: () = assert!(
    oracle::PY_MINOR_VERSION as i128
        == crate::abi::parse_decimal(env!("PYIMMORTAL_TARGET_MINOR")) as i128,
    "pyimmortal: PY_MINOR_VERSION of the headers read by bindgen differs from the target's"
);

/// Declares a table of header facts: each row is a `pub(crate) const`,
/// checked against the C expression it names (see the module docs).
///
/// ```text
/// crate::layout::facts! {
///     /// `_Py_REF_SHARED_SHIFT` (`Include/refcount.h`).
///     REF_SHARED_SHIFT: u32 = 2 => "_Py_REF_SHARED_SHIFT";
/// }
/// ```
///
/// Rows are one line each, optionally preceded by doc comments and one
/// `#[cfg(...)]`, and the table starts at column 0 and ends with a `}` line:
/// `build/layout_probe.rs` reads the same text.
macro_rules! facts {
    ($(
        $(#[doc = $doc:literal])*
        $(#[cfg($cfg:meta)])?
        $name:ident: $ty:ty = $value:expr => $c:literal;
    )*) => {$(
        $(#[doc = $doc])*
        #[doc = concat!("\n\nChecked against `", $c, "` in the target's headers.")]
        $(#[cfg($cfg)])?
        pub(crate) const $name: $ty = $value;

        $(#[cfg($cfg)])?
        const _: () = assert!(
            $name as i128 == $crate::layout::oracle::$name as i128,
            concat!(
                "pyimmortal: ", stringify!($name), " = ", stringify!($value),
                " differs from ", $c, " in the target's headers"
            )
        );
    )*};
}

/// Declares the target's `PyObject` header as a `#[repr(C)]` struct and
/// checks it against bindgen's reading of `PyObject`: size, alignment, and
/// each field's offset and size. A field whose C name differs, or that sits
/// in an anonymous union, names its path in bindgen's struct after `=>`.
///
/// ```text
/// crate::layout::object_head! {
///     /// `PyObject` in CPython 3.12-3.13.
///     pub struct ObjectHead {
///         pub ob_refcnt: isize => __bindgen_anon_1.ob_refcnt,
///         pub ob_type: *mut PyObject,
///     }
/// }
/// ```
macro_rules! object_head {
    (
        $(#[doc = $doc:literal])*
        pub struct $head:ident {$(
            $(#[doc = $fdoc:literal])*
            $(#[cfg($cfg:meta)])?
            pub $field:ident: $ty:ty $(=> $($c_field:ident).+)?,
        )*}
    ) => {
        $(#[doc = $doc])*
        #[repr(C)]
        pub struct $head {$(
            $(#[doc = $fdoc])*
            $(#[cfg($cfg)])?
            pub $field: $ty,
        )*}

        const _: () = {
            use core::mem::{align_of, size_of};
            use $crate::layout::oracle::PyObject;
            assert!(
                size_of::<$head>() == size_of::<PyObject>(),
                "pyimmortal: sizeof(PyObject) differs from the target's Python.h"
            );
            assert!(
                align_of::<$head>() == align_of::<PyObject>(),
                "pyimmortal: alignof(PyObject) differs from the target's Python.h"
            );
        };
        $(
            $(#[cfg($cfg)])?
            $crate::layout::field_matches!($head, $field: $ty $(=> $($c_field).+)?);
        )*
    };
}

/// One field of [`object_head!`]: same offset and same size as in C.
macro_rules! field_matches {
    ($head:ident, $field:ident: $ty:ty) => {
        $crate::layout::field_matches!($head, $field: $ty => $field);
    };
    ($head:ident, $field:ident: $ty:ty => $($c_field:ident).+) => {
        #[allow(unused_unsafe)]
        const _: () = {
            use core::mem::{offset_of, size_of};
            use $crate::layout::oracle::PyObject;
            assert!(
                offset_of!($head, $field) == offset_of!(PyObject, $($c_field).+),
                concat!(
                    "pyimmortal: offsetof(PyObject, ", stringify!($field),
                    ") differs from the target's Python.h"
                )
            );
            assert!(
                size_of::<$ty>()
                    // SAFETY: never called; only the field's type is used.
                    == $crate::layout::size_of_field(|o: &PyObject| unsafe { &o.$($c_field).+ }),
                concat!(
                    "pyimmortal: the size of PyObject's ", stringify!($field),
                    " differs from the target's Python.h"
                )
            );
        };
    };
}

pub(crate) use {facts, field_matches, object_head};

/// The size of the field that `field` projects to, without a value.
pub(crate) const fn size_of_field<T, F>(_field: fn(&T) -> &F) -> usize {
    core::mem::size_of::<F>()
}

#[cfg(test)]
#[path = "../../build/layout_probe.rs"]
mod layout_probe;

/// Nothing in `src/` declares a header fact outside the tables, so every
/// fact is compared.
#[cfg(test)]
mod tests {
    use super::layout_probe::{compiled_files, parse_tables, probe, Tables, PREFIX};
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    /// Constants outside the tables: facts about pyimmortal, not about
    /// CPython's headers.
    const NOT_HEADER_FACTS: &[&str] = &[
        // abi.rs: pyimmortal's own version.
        "PYIMMORTAL_VERSION_MAJOR",
        "PYIMMORTAL_VERSION_MINOR",
        "PYIMMORTAL_VERSION_PATCH",
        "PYIMMORTAL_VERSION_NUMBER",
        // cpython/runtime.rs: the marker of a symbol that dlsym did not find,
        // and the states of the target check.
        "ABSENT",
        "UNCHECKED",
        "MATCHES",
        "MISMATCH",
        // api/registry.rs: the dict key of this copy's registry, and the
        // name of the capsules that hold a table.
        "KEY_PREFIX",
        "KEY_LEN",
        "CAPSULE_NAME",
        // api/target.rs: the PY_VERSION_HEX that build.rs read.
        "HEX",
    ];

    struct Source {
        path: PathBuf,
        text: String,
        tables: Tables,
    }

    impl Source {
        /// `(line number, code)` of the lines outside the tables, without
        /// comments or string literals.
        fn code_outside_tables(&self) -> Vec<(usize, String)> {
            self.text
                .lines()
                .enumerate()
                .filter(|(i, _)| !self.tables.blocks.iter().any(|b| b.contains(i)))
                .map(|(i, line)| (i + 1, code_of(line)))
                .collect()
        }

        fn name(&self) -> String {
            self.path.display().to_string()
        }
    }

    fn sources() -> Vec<Source> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    out.push(path);
                }
            }
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut paths = Vec::new();
        walk(&root.join("src"), &mut paths);
        paths.sort();
        paths
            .into_iter()
            .map(|path| {
                let text = std::fs::read_to_string(&path).unwrap();
                let tables = parse_tables(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
                let path = path.strip_prefix(root).unwrap().to_path_buf();
                Source { path, text, tables }
            })
            .collect()
    }

    /// A line without its comment and with string literals emptied.
    fn code_of(line: &str) -> String {
        let mut code = String::new();
        let mut chars = line.chars().peekable();
        let mut in_string = false;
        while let Some(c) = chars.next() {
            if in_string {
                match c {
                    '\\' => {
                        chars.next();
                    }
                    '"' => {
                        in_string = false;
                        code.push(c);
                    }
                    _ => {}
                }
            } else if c == '/' && chars.peek() == Some(&'/') {
                break;
            } else {
                in_string = c == '"';
                code.push(c);
            }
        }
        code
    }

    /// Identifiers in `code` that are words of `[A-Za-z0-9_]`.
    fn words(code: &str) -> impl Iterator<Item = &str> {
        code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty())
    }

    /// Names of the constants that `code` declares (`const NAME:`).
    fn declared_constants(code: &str) -> Vec<&str> {
        let mut names = Vec::new();
        let mut rest = code;
        while let Some(at) = rest.find("const ") {
            let after = &rest[at + "const ".len()..];
            let starts_word = at == 0 || !rest[..at].ends_with(|c: char| c.is_alphanumeric());
            let name = after
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .next();
            if let Some(name) = name {
                if starts_word && name != "_" && after[name.len()..].trim_start().starts_with(':') {
                    names.push(name);
                }
            }
            rest = after;
        }
        names
    }

    /// A word that spells a CPython flag or header constant.
    fn is_cpython_constant(word: &str) -> bool {
        let caps = |w: &str| {
            w.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        };
        word.contains("TPFLAGS_")
            || word.starts_with("Py_tp_")
            || word.starts_with("GC_BITS_")
            || word.starts_with("_PyGC_")
            || (word.starts_with("_Py_") && caps(&word[4..]))
    }

    fn table_rows(sources: &[Source]) -> BTreeSet<String> {
        sources
            .iter()
            .flat_map(|s| s.tables.rows.iter().map(|r| r.name.clone()))
            .collect()
    }

    #[test]
    fn every_constant_and_struct_in_refcount_is_in_a_table() {
        let mut found = Vec::new();
        for s in sources()
            .iter()
            .filter(|s| s.path.starts_with("src/refcount"))
        {
            for (line, code) in s.code_outside_tables() {
                for name in declared_constants(&code) {
                    found.push(format!("{}:{line}: const {name}", s.name()));
                }
                if code.contains("struct ") || code.contains("repr(C)") {
                    found.push(format!("{}:{line}: {}", s.name(), code.trim()));
                }
            }
        }
        assert!(
            found.is_empty(),
            "declare these in a facts! or object_head! table (src/layout/mod.rs):\n{}",
            found.join("\n")
        );
    }

    #[test]
    fn no_constant_elsewhere_restates_a_header_fact() {
        let mut found = Vec::new();
        for s in sources()
            .iter()
            .filter(|s| !s.path.starts_with("src/layout"))
        {
            for (line, code) in s.code_outside_tables() {
                for name in declared_constants(&code) {
                    if !NOT_HEADER_FACTS.contains(&name) {
                        found.push(format!("{}:{line}: const {name}", s.name()));
                    }
                }
            }
        }
        assert!(
            found.is_empty(),
            "a constant about CPython belongs in a facts! table under src/refcount/; \
             one about pyimmortal goes in NOT_HEADER_FACTS:\n{}",
            found.join("\n")
        );
    }

    #[test]
    fn every_cpython_flag_used_in_src_is_a_table_row() {
        let sources = sources();
        let rows = table_rows(&sources);
        let mut found = Vec::new();
        for s in sources.iter().filter(|s| !s.path.starts_with("src/layout")) {
            for (line, code) in s.code_outside_tables() {
                for word in words(&code).filter(|w| is_cpython_constant(w)) {
                    if !rows.contains(word) {
                        found.push(format!("{}:{line}: {word}", s.name()));
                    }
                }
            }
        }
        assert!(
            found.is_empty(),
            "CPython constants used without a facts! row:\n{}",
            found.join("\n")
        );
    }

    #[test]
    fn each_target_probes_its_own_table() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let refcount = root.join("src/refcount");
        let cfgs = |minor: u32, free_threaded: bool| {
            let mut v: Vec<String> = (9..=minor).map(|m| format!("Py_3_{m}")).collect();
            if free_threaded {
                v.push("Py_GIL_DISABLED".into());
            }
            v
        };
        for (minor, free_threaded, file, row, absent) in [
            (9, false, "py3_9.rs", "HAS_IMMORTALITY", "IMMORTAL_REFCNT"),
            (13, false, "py3_12.rs", "IMMORTAL_REFCNT", "IMMORTAL_FLAGS"),
            (15, false, "py3_14.rs", "IMMORTAL_FLAGS", "IMMORTAL_REFCNT"),
            (13, true, "ft.rs", "REF_MAYBE_WEAKREF", "REF_DEFERRED"),
            (14, true, "ft.rs", "REF_DEFERRED", "IMMORTAL_FLAGS"),
        ] {
            let set = cfgs(minor, free_threaded);
            let files = compiled_files(&refcount, &set).unwrap();
            assert_eq!(
                files,
                ["mod.rs", file, "common.rs", "refusal.rs"],
                "{set:?}"
            );
            let c = probe(&refcount, &root.join("src/layout/probe.h"), &set).unwrap();
            for name in [row, "TPFLAGS_DICT_SUBCLASS", "DICTS_CAN_BE_IMMORTAL"] {
                assert!(c.contains(&format!("{PREFIX}{name} = (")), "{name} in\n{c}");
            }
            assert!(
                !c.contains(&format!("{PREFIX}{absent} = (")),
                "{absent} in\n{c}"
            );
        }
    }

    #[test]
    fn the_scans_see_what_they_look_for() {
        assert_eq!(declared_constants("pub(crate) const X_1: u8 = 1;"), ["X_1"]);
        assert!(declared_constants("const _: () = ();").is_empty());
        assert!(declared_constants("const fn f() -> *const u8 {}").is_empty());
        assert_eq!(code_of(r#"let s = "a // \" b"; // c"#), r#"let s = ""; "#);
        assert!(is_cpython_constant("TPFLAGS_DICT_SUBCLASS"));
        assert!(is_cpython_constant("Py_TPFLAGS_HAVE_GC"));
        assert!(is_cpython_constant("_Py_REF_DEFERRED"));
        assert!(!is_cpython_constant("_Py_ThreadId"));
        let rows = table_rows(&sources());
        for name in ["TPFLAGS_DICT_SUBCLASS", "REF_MAYBE_WEAKREF", "REF_DEFERRED"] {
            assert!(rows.contains(name), "{name}");
        }
    }
}
