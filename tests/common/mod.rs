//! Helpers shared by the application's integration tests: python3 as an independent reference.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// Whether python3 can import `modules` (e.g. "numpy, scipy"). Under CI (which installs them) a missing
/// module fails the test; elsewhere the test is skipped with the reason printed.
pub fn python_has(modules: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("CI").is_err(),
            "CI must install python3 with {modules}"
        );
        eprintln!("skipping: python3 with {modules} is not available");
    }
    ok
}

/// Run a python3 script in `dir`; its standard output.
pub fn run_python(dir: &Path, script: &str) -> Vec<u8> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
