//! Interpreter discovery and the table of supported CPython targets.
//!
//! This file is shared by `build.rs`, `systest/build.rs` and the crate's unit
//! tests (`src/lib.rs` includes it under `cfg(test)`). The interpreter is
//! asked by `build/probe.py`, the one probe script of the repository, and the
//! supported versions are read from the one table,
//! `[package.metadata.cpython]` in `Cargo.toml`; both are embedded here at
//! compile time.

use std::collections::BTreeMap;
use std::fmt;

/// Environment variable that names the target interpreter. When unset,
/// `python3` on `PATH` is used.
pub const PYTHON_ENV: &str = "PYIMMORTAL_PYTHON";

/// `Cargo.toml`, whose `[package.metadata.cpython]` table lists the verified
/// CPython versions.
const MANIFEST: &str = include_str!("../Cargo.toml");

/// Header of the supported-version table in `Cargo.toml`.
const TABLE: &str = "[package.metadata.cpython]";

/// Oldest supported minor version of CPython 3 (`min-version`).
pub const MIN_MINOR: u32 = table_minor(MANIFEST, "min-version");
/// Newest supported minor version of CPython 3, GIL and free-threaded
/// (`max-version`).
pub const MAX_MINOR: u32 = table_minor(MANIFEST, "max-version");
/// Oldest supported free-threaded minor version (`min-free-threaded-version`).
pub const MIN_FT_MINOR: u32 = table_minor(MANIFEST, "min-free-threaded-version");

const _: () = assert!(
    MIN_MINOR <= MIN_FT_MINOR && MIN_FT_MINOR <= MAX_MINOR,
    "Cargo.toml: [package.metadata.cpython] needs min-version <= min-free-threaded-version <= max-version"
);

/// Reads `key = "3.N"` from the `[package.metadata.cpython]` table of the
/// manifest text and returns N. It is a `const fn` so that the table's
/// values are constants: a missing table or key, or a value not written
/// `"3.N"`, stops the compilation of the build script.
pub const fn table_minor(manifest: &str, key: &str) -> u32 {
    let text = manifest.as_bytes();
    let key = key.as_bytes();
    let mut in_table = false;
    let mut start = 0;
    while start < text.len() {
        let mut end = start;
        while end < text.len() && text[end] != b'\n' {
            end += 1;
        }
        let line = skip_blanks(text, start, end);
        if line < end && text[line] == b'[' {
            in_table = has_at(text, line, end, TABLE.as_bytes());
        } else if in_table && has_at(text, line, end, key) {
            let eq = skip_blanks(text, line + key.len(), end);
            // Anything else is a longer key that starts with this one.
            if eq < end && text[eq] == b'=' {
                return parse_minor(text, skip_blanks(text, eq + 1, end), end);
            }
        }
        start = end + 1;
    }
    panic!("Cargo.toml: a key of [package.metadata.cpython] is missing (min-version, max-version, min-free-threaded-version)")
}

/// Whether `text[at..end]` starts with `word`.
const fn has_at(text: &[u8], at: usize, end: usize, word: &[u8]) -> bool {
    if end - at < word.len() {
        return false;
    }
    let mut i = 0;
    while i < word.len() {
        if text[at + i] != word[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The first index from `at` on that is not a space or a tab.
const fn skip_blanks(text: &[u8], mut at: usize, end: usize) -> usize {
    while at < end && (text[at] == b' ' || text[at] == b'\t') {
        at += 1;
    }
    at
}

/// N from `"3.N"` at `text[at..]`; what follows the closing quote is not read.
const fn parse_minor(text: &[u8], at: usize, end: usize) -> u32 {
    if !has_at(text, at, end, b"\"3.") {
        panic!("Cargo.toml: [package.metadata.cpython] values must be written \"3.N\"");
    }
    let mut i = at + 3;
    let mut minor = 0;
    while i < end && text[i].is_ascii_digit() {
        minor = minor * 10 + (text[i] - b'0') as u32;
        i += 1;
    }
    if i == at + 3 || i >= end || text[i] != b'"' {
        panic!("Cargo.toml: [package.metadata.cpython] values must be written \"3.N\"");
    }
    minor
}

/// `build/probe.py`: Python code run by the target interpreter
/// (`python -I -c PROBE_SCRIPT`). It prints `key=value` lines.
pub const PROBE_SCRIPT: &str = include_str!("probe.py");

/// What `build.rs` learns from the target interpreter: the keys of
/// `build/probe.py` that the build needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterpreterConfig {
    pub version_hex: u32,
    /// `free_threaded`
    pub gil_disabled: bool,
    /// `debug`
    pub py_debug: bool,
    pub pointer_width: u32,
    pub little_endian: bool,
    pub include: String,
    pub platinclude: String,
    pub executable: String,
    /// Directory and file name of libpython (used only to link unit tests).
    pub libdir: String,
    pub ldlibrary: String,
}

impl InterpreterConfig {
    /// Runs [`PROBE_SCRIPT`] on `python` and parses what it prints. The
    /// error is the message to show, starting with `error:`.
    pub fn probe(python: &str) -> Result<Self, String> {
        let out = std::process::Command::new(python)
            .args(["-I", "-c", PROBE_SCRIPT])
            .output()
            .map_err(|e| {
                format!(
                    "error: cannot run the target interpreter `{python}`: {e}\n  = help: set {PYTHON_ENV}=/path/to/python"
                )
            })?;
        if !out.status.success() {
            return Err(format!(
                "error: the target interpreter `{python}` failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Self::parse(&String::from_utf8_lossy(&out.stdout))
            .map_err(|e| format!("error: {e} (interpreter `{python}`)"))
    }

    /// Parses the output of [`PROBE_SCRIPT`].
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut map = BTreeMap::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| format!("malformed probe line `{line}`"))?;
            map.insert(k.to_string(), v.to_string());
        }
        let get = |k: &str| {
            map.get(k)
                .cloned()
                .ok_or_else(|| format!("the interpreter probe did not report `{k}`"))
        };
        let flag = |k: &str| -> Result<bool, String> {
            match get(k)?.as_str() {
                "0" => Ok(false),
                "1" => Ok(true),
                other => Err(format!("`{k}` must be 0 or 1, got `{other}`")),
            }
        };
        let num = |k: &str| -> Result<u32, String> {
            get(k)?
                .parse()
                .map_err(|e| format!("`{k}` is not a number: {e}"))
        };
        Ok(Self {
            version_hex: num("version_hex")?,
            gil_disabled: flag("free_threaded")?,
            py_debug: flag("debug")?,
            pointer_width: num("pointer_width")?,
            little_endian: match get("byteorder")?.as_str() {
                "little" => true,
                "big" => false,
                other => return Err(format!("unknown byte order `{other}`")),
            },
            include: get("include")?,
            platinclude: get("platinclude")?,
            executable: get("executable")?,
            libdir: map.get("libdir").cloned().unwrap_or_default(),
            ldlibrary: map.get("ldlibrary").cloned().unwrap_or_default(),
        })
    }

    pub fn major(&self) -> u32 {
        self.version_hex >> 24
    }

    pub fn minor(&self) -> u32 {
        (self.version_hex >> 16) & 0xff
    }

    /// `3.14t`-style name of the target.
    pub fn target_name(&self) -> String {
        let t = if self.gil_disabled { "t" } else { "" };
        format!("{}.{}{}", self.major(), self.minor(), t)
    }

    /// Symbol that the library defines and that `pyimmortal.h` references,
    /// so that a library built for one target cannot link silently into an
    /// extension compiled for another.
    pub fn abi_symbol(&self) -> String {
        let t = if self.gil_disabled { "t" } else { "" };
        format!(
            "pyimmortal_abi_cpython_{}_{}{}",
            self.major(),
            self.minor(),
            t
        )
    }

    /// `-l` name of libpython (`python3.14t` for `libpython3.14t.so`).
    pub fn libpython_link_name(&self) -> Option<String> {
        let stem = self.ldlibrary.strip_prefix("lib")?;
        let name = stem.split(".so").next()?.split(".a").next()?;
        (!name.is_empty()).then(|| name.to_string())
    }

    /// Refuses every target whose layout facts were not verified.
    pub fn check_supported(&self) -> Result<(), UnsupportedTarget> {
        let mut problems = Vec::new();
        if self.major() != 3 || self.minor() < MIN_MINOR || self.minor() > MAX_MINOR {
            problems.push(format!(
                "CPython {}.{} is outside the verified range 3.{MIN_MINOR}..=3.{MAX_MINOR}; \
                 its object header, immortal constants and refcount encoding are unverified",
                self.major(),
                self.minor()
            ));
        }
        if self.gil_disabled && self.minor() < MIN_FT_MINOR {
            problems.push(format!(
                "a free-threaded build of CPython 3.{} does not exist upstream; \
                 its layout is unverified",
                self.minor()
            ));
        }
        if self.pointer_width != 64 {
            problems.push(format!(
                "{}-bit targets are unverified: the immortal constants and the split \
                 refcount differ there",
                self.pointer_width
            ));
        }
        if !self.little_endian {
            problems.push(
                "big-endian targets are unverified: the order of the split refcount \
                 fields flips there"
                    .to_string(),
            );
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(UnsupportedTarget {
                target: self.target_name(),
                executable: self.executable.clone(),
                problems,
            })
        }
    }

    /// Cumulative version cfgs: `Py_3_9` up to the target's minor version.
    pub fn version_cfgs(&self) -> Vec<String> {
        (MIN_MINOR..=self.minor().min(MAX_MINOR))
            .map(|m| format!("Py_3_{m}"))
            .collect()
    }

    /// Every cfg that `build.rs` may emit, for `rustc-check-cfg`.
    pub fn all_known_cfgs() -> Vec<String> {
        let mut v: Vec<String> = (MIN_MINOR..=MAX_MINOR)
            .map(|m| format!("Py_3_{m}"))
            .collect();
        v.push("Py_GIL_DISABLED".into());
        v
    }

    /// The cfgs for this target.
    pub fn cfgs(&self) -> Vec<String> {
        let mut v = self.version_cfgs();
        if self.gil_disabled {
            v.push("Py_GIL_DISABLED".into());
        }
        v
    }
}

/// A target that pyimmortal refuses to build for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsupportedTarget {
    pub target: String,
    pub executable: String,
    pub problems: Vec<String>,
}

impl fmt::Display for UnsupportedTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "error: pyimmortal cannot be built for CPython {} ({})",
            self.target, self.executable
        )?;
        for p in &self.problems {
            writeln!(f, "  = note: {p}")?;
        }
        writeln!(
            f,
            "  = help: verified targets are CPython 3.{MIN_MINOR}..=3.{MAX_MINOR} (GIL) and \
             3.{MIN_FT_MINOR}t..=3.{MAX_MINOR}t (free-threaded) on 64-bit little-endian machines"
        )?;
        write!(
            f,
            "  = help: set {PYTHON_ENV}=/path/to/python to build for another interpreter"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(version_hex: u32, gil_disabled: bool) -> String {
        format!(
            "version_hex={version_hex}\nfree_threaded={}\ndebug=0\npointer_width=64\n\
             byteorder=little\ninclude=/inc\nplatinclude=/pinc\nexecutable=/bin/python\n",
            gil_disabled as u8
        )
    }

    #[test]
    fn parses_probe_output() {
        let c = InterpreterConfig::parse(&sample(0x030E0AF0, true)).unwrap();
        assert_eq!((c.major(), c.minor()), (3, 14));
        assert!(c.gil_disabled && !c.py_debug && c.little_endian);
        assert_eq!(c.include, "/inc");
        assert_eq!(c.target_name(), "3.14t");
        assert_eq!(c.abi_symbol(), "pyimmortal_abi_cpython_3_14t");
        assert_eq!(c.libpython_link_name(), None);
        let with_lib = sample(0x030E0AF0, true) + "ldlibrary=libpython3.14t.so\nlibdir=/l\n";
        let c = InterpreterConfig::parse(&with_lib).unwrap();
        assert_eq!(c.libpython_link_name().as_deref(), Some("python3.14t"));
    }

    #[test]
    fn missing_and_malformed_keys_are_errors() {
        assert!(InterpreterConfig::parse("version_hex=1").is_err());
        assert!(InterpreterConfig::parse("garbage").is_err());
        let bad_flag = sample(0x030C01F0, false).replace("free_threaded=0", "free_threaded=2");
        assert!(InterpreterConfig::parse(&bad_flag).is_err());
    }

    #[test]
    fn version_table() {
        for minor in MIN_MINOR..=MAX_MINOR {
            let c = InterpreterConfig::parse(&sample(0x03000000 | (minor << 16), false)).unwrap();
            assert!(c.check_supported().is_ok(), "3.{minor}");
            assert_eq!(c.version_cfgs().len() as u32, minor - MIN_MINOR + 1);
            assert_eq!(c.version_cfgs().last().unwrap(), &format!("Py_3_{minor}"));
        }
        for minor in [MIN_MINOR - 1, MAX_MINOR + 1, MAX_MINOR + 2] {
            let c = InterpreterConfig::parse(&sample(0x03000000 | (minor << 16), false)).unwrap();
            let err = c.check_supported().unwrap_err().to_string();
            assert!(err.contains("outside the verified range"), "{err}");
            assert!(err.contains("unverified"), "{err}");
        }
        for minor in MIN_FT_MINOR..=MAX_MINOR {
            let c = InterpreterConfig::parse(&sample(0x03000000 | (minor << 16), true)).unwrap();
            assert!(c.check_supported().is_ok(), "3.{minor}t");
            assert!(c.cfgs().contains(&"Py_GIL_DISABLED".to_string()));
        }
        let c = InterpreterConfig::parse(&sample(0x03000000 | ((MIN_FT_MINOR - 1) << 16), true))
            .unwrap();
        assert!(c.check_supported().is_err(), "3.{}t", MIN_FT_MINOR - 1);
    }

    #[test]
    fn refuses_unverified_machines() {
        let s = sample(0x030D00F0, false)
            .replace("pointer_width=64", "pointer_width=32")
            .replace("byteorder=little", "byteorder=big");
        let err = InterpreterConfig::parse(&s)
            .unwrap()
            .check_supported()
            .unwrap_err();
        assert_eq!(err.problems.len(), 2);
    }

    #[test]
    fn every_emitted_cfg_is_registered() {
        let known = InterpreterConfig::all_known_cfgs();
        let mut s = sample(0x030F00F0, true);
        s = s.replace("debug=0", "debug=1");
        for cfg in InterpreterConfig::parse(&s).unwrap().cfgs() {
            assert!(known.contains(&cfg), "{cfg}");
        }
    }

    #[test]
    fn probe_script_reports_every_key_the_build_reads() {
        for key in [
            "version_hex",
            "free_threaded",
            "debug",
            "pointer_width",
            "byteorder",
            "include",
            "platinclude",
            "executable",
            "libdir",
            "ldlibrary",
        ] {
            assert!(
                PROBE_SCRIPT.contains(&format!("(\"{key}\", ")),
                "build/probe.py does not print `{key}`"
            );
        }
    }

    #[test]
    fn reads_the_version_table() {
        let manifest = "[package]\nname = \"x\"\nmax-version = \"3.99\"\n\n\
                        [package.metadata.cpython]\n# comment\n\
                        min-version = \"3.9\"\n  max-version=\"3.15\" # inclusive\n\
                        min-version-extra = \"3.1\"\n\
                        [package.metadata.other]\nmin-free-threaded-version = \"3.1\"\n\
                        [package.metadata.cpython]\nmin-free-threaded-version = \"3.13\"";
        assert_eq!(table_minor(manifest, "min-version"), 9);
        assert_eq!(table_minor(manifest, "max-version"), 15);
        assert_eq!(table_minor(manifest, "min-free-threaded-version"), 13);
    }

    #[test]
    #[should_panic(expected = "is missing")]
    fn a_missing_table_entry_is_an_error() {
        table_minor(
            "[package.metadata.cpython]\nmin-version = \"3.9\"\n",
            "max-version",
        );
    }

    #[test]
    #[should_panic(expected = "must be written")]
    fn a_malformed_table_entry_is_an_error() {
        table_minor(
            "[package.metadata.cpython]\nmax-version = 15\n",
            "max-version",
        );
    }

    /// `include/pyimmortal.h` cannot read Cargo.toml: its `#error` range is
    /// written in cbindgen.toml's `after_includes` and must say what the
    /// table says.
    #[test]
    fn header_range_matches_the_version_table() {
        let header = include_str!("../include/pyimmortal.h");
        for line in [
            format!(
                "#if PY_MAJOR_VERSION != 3 || PY_MINOR_VERSION < {MIN_MINOR} || PY_MINOR_VERSION > {MAX_MINOR}"
            ),
            format!(
                "#  error \"pyimmortal supports CPython 3.{MIN_MINOR} to 3.{MAX_MINOR}; this Python.h is outside that range\""
            ),
            format!("#if defined(Py_GIL_DISABLED) && PY_MINOR_VERSION < {MIN_FT_MINOR}"),
            format!(
                "#  error \"pyimmortal: free-threaded CPython exists from 3.{MIN_FT_MINOR} on\""
            ),
        ] {
            assert!(
                header.lines().any(|l| l == line),
                "include/pyimmortal.h lacks `{line}`, which Cargo.toml's \
                 [package.metadata.cpython] implies: edit the range in cbindgen.toml \
                 and run scripts/regen-header.sh"
            );
        }
    }
}
