//! Build script: finds the target CPython, refuses unverified targets, emits
//! the version cfgs, runs bindgen on that interpreter's own headers and on
//! the probe generated from the fact tables in `src/refcount/` (the layout
//! check of `src/layout/`), and compiles the small C shim for the
//! free-threaded thread id.

#[path = "build/layout_probe.rs"]
mod layout_probe;
#[path = "build/python_config.rs"]
mod python_config;

use python_config::{InterpreterConfig, PYTHON_ENV};
use std::env;
use std::path::PathBuf;
use std::process::exit;

/// Reads an environment variable and tells cargo to rerun when it changes.
fn env_var(name: &str) -> Option<String> {
    println!("cargo:rerun-if-env-changed={name}");
    env::var(name).ok().filter(|v| !v.is_empty())
}

fn fail(msg: &str) -> ! {
    eprintln!("{msg}");
    exit(1);
}

/// Asks the target interpreter with `build/probe.py` (see `build/python_config.rs`).
fn probe(python: &str) -> InterpreterConfig {
    InterpreterConfig::probe(python).unwrap_or_else(|e| fail(&e))
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=build/python_config.rs");
    println!("cargo:rerun-if-changed=build/layout_probe.rs");
    println!("cargo:rerun-if-changed=src/layout/probe.h");
    println!("cargo:rerun-if-changed=src/refcount");
    println!("cargo:rerun-if-changed=src/cpython/thread_id.c");

    for cfg in InterpreterConfig::all_known_cfgs() {
        println!("cargo:rustc-check-cfg=cfg({cfg})");
    }

    let python = env_var(PYTHON_ENV).unwrap_or_else(|| "python3".to_string());
    let mut config = probe(&python);
    // Layout check only: read this GIL interpreter's headers as the
    // free-threaded build of the same version would (Py_GIL_DISABLED
    // defined). The library built this way cannot be used with `python`.
    if env_var("PYIMMORTAL_ASSUME_FREE_THREADED").as_deref() == Some("1") {
        config.gil_disabled = true;
    }
    if env_var("PYIMMORTAL_PRINT_CONFIG").is_some() {
        fail(&format!("{config:#?}"));
    }
    if let Err(e) = config.check_supported() {
        fail(&e.to_string());
    }
    let target_width = env::var("CARGO_CFG_TARGET_POINTER_WIDTH").unwrap_or_default();
    if target_width != config.pointer_width.to_string() {
        fail(&format!(
            "error: the Rust target is {target_width}-bit but {} is {}-bit",
            config.executable, config.pointer_width
        ));
    }

    for cfg in config.cfgs() {
        println!("cargo:rustc-cfg={cfg}");
    }
    println!("cargo:rustc-env=PYIMMORTAL_TARGET={}", config.target_name());
    println!("cargo:rustc-env=PYIMMORTAL_TARGET_MINOR={}", config.minor());
    println!(
        "cargo:rustc-env=PYIMMORTAL_TARGET_VERSION_HEX={}",
        config.version_hex
    );

    // Unit tests start a real interpreter, so their binaries link libpython.
    // The static library itself never does: extensions resolve Py* symbols
    // from the interpreter that loads them.
    if let Some(lib) = config.libpython_link_name() {
        println!("cargo:rustc-link-arg=-L{}", config.libdir);
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", config.libdir);
        println!("cargo:rustc-link-arg=-l{lib}");
    }

    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    println!("cargo:include={}", manifest.join("include").display());

    // The symbol that ties the library to one target (see include/pyimmortal.h).
    std::fs::write(
        out.join("abi_symbol.rs"),
        format!(
            "/// Defined only in a library built for CPython {}.\n\
             #[no_mangle]\npub static {}: u8 = 1;\n",
            config.target_name(),
            config.abi_symbol()
        ),
    )
    .unwrap();

    // The layout check: the probe generated from the fact tables, read by
    // bindgen with the target's own headers (see src/layout/mod.rs).
    let probe = layout_probe::probe(
        &manifest.join("src/refcount"),
        &manifest.join("src/layout/probe.h"),
        &config.cfgs(),
    )
    .unwrap_or_else(|e| fail(&format!("error: cannot read the fact tables: {e}")));
    let probe_path = out.join("layout_probe.h");
    std::fs::write(&probe_path, probe).expect("write the layout probe");
    let mut clang_args = vec![
        format!("-I{}", config.include),
        format!("-I{}", config.platinclude),
    ];
    if config.gil_disabled {
        // pyconfig.h defines it already; repeating it keeps the check honest
        // for headers whose pyconfig.h comes from elsewhere.
        clang_args.push("-DPy_GIL_DISABLED=1".into());
    }
    let bindings = bindgen::Builder::default()
        .header(probe_path.to_string_lossy())
        .clang_args(&clang_args)
        .allowlist_type("PyObject")
        .allowlist_var(format!("{}.*", layout_probe::PREFIX))
        .parse_callbacks(Box::new(StripProbePrefix))
        .layout_tests(true)
        .use_core()
        .derive_debug(false)
        .derive_copy(true)
        .generate_comments(false)
        .generate()
        .unwrap_or_else(|e| {
            fail(&format!(
                "error: bindgen could not read the headers of {}: {e}\n  = help: install libclang (Debian: libclang-dev)",
                config.executable
            ))
        });
    bindings
        .write_to_file(out.join("cpython_oracle.rs"))
        .expect("write bindings");

    if config.gil_disabled {
        let mut build = cc::Build::new();
        build
            .file("src/cpython/thread_id.c")
            .include(&config.include)
            .include(&config.platinclude)
            .define("Py_GIL_DISABLED", "1")
            .warnings(true)
            .extra_warnings(true)
            .warnings_into_errors(true);
        build.compile("pyimmortal_thread_id");
    }
}

/// Names the probe's enumerators after their table rows: bindgen turns
/// `pyimmortal_oracle_NAME` into `NAME`.
#[derive(Debug)]
struct StripProbePrefix;

impl bindgen::callbacks::ParseCallbacks for StripProbePrefix {
    fn enum_variant_name(
        &self,
        _enum_name: Option<&str>,
        name: &str,
        _value: bindgen::callbacks::EnumVariantValue,
    ) -> Option<String> {
        name.strip_prefix(layout_probe::PREFIX).map(str::to_string)
    }
}
