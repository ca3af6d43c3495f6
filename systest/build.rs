//! Generates the ctest 0.5 checks: every item of `../src/abi.rs` against
//! `../include/pyimmortal.h`, compiled with the target interpreter's headers
//! (the header includes `Python.h`), which `build/probe.py` reports.

#[path = "../build/python_config.rs"]
#[allow(dead_code)]
mod python_config;

use python_config::{InterpreterConfig, PYTHON_ENV};

fn main() {
    println!("cargo:rerun-if-env-changed={PYTHON_ENV}");
    println!("cargo:rerun-if-changed=../src/abi.rs");
    println!("cargo:rerun-if-changed=../include/pyimmortal.h");
    let python = std::env::var(PYTHON_ENV).unwrap_or_else(|_| "python3".into());
    let config = InterpreterConfig::probe(&python).unwrap_or_else(|e| panic!("{e}"));

    let mut cfg = ctest::TestGenerator::new();
    cfg.header("pyimmortal.h").include("../include");
    // Only public items reach C. The private `const _: () = assert!(...)`
    // items of abi.rs are compile-time checks, not constants to compare.
    cfg.skip_private(true);
    cfg.include(&config.include).include(&config.platinclude);
    ctest::generate_test(&mut cfg, "../src/abi.rs", "ctest_output.rs").expect("generate ctest");
}
