//! Generates the ctest 0.5 checks: every item of `../src/abi.rs` against
//! `../include/pyimmortal.h`, compiled with the target interpreter's headers
//! (the header includes `Python.h`).

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=PYIMMORTAL_PYTHON");
    println!("cargo:rerun-if-changed=../src/abi.rs");
    println!("cargo:rerun-if-changed=../include/pyimmortal.h");
    let python = std::env::var("PYIMMORTAL_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python)
        .args([
            "-I",
            "-c",
            "import sysconfig; p = sysconfig.get_paths(); print(p['include']); print(p['platinclude'])",
        ])
        .output()
        .expect("run the target interpreter");
    assert!(out.status.success(), "{python} failed");
    let text = String::from_utf8(out.stdout).expect("utf-8 paths");

    let mut cfg = ctest::TestGenerator::new();
    cfg.header("pyimmortal.h").include("../include");
    // Only public items reach C. The private `const _: () = assert!(...)`
    // items of abi.rs are compile-time checks, not constants to compare.
    cfg.skip_private(true);
    for dir in text.lines() {
        cfg.include(dir);
    }
    ctest::generate_test(&mut cfg, "../src/abi.rs", "ctest_output.rs").expect("generate ctest");
}
