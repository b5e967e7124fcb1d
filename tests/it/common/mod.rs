//! Helpers shared by the application's integration tests: python3 as an independent reference.
#![allow(dead_code)]

use std::io::{Read, Write};
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

/// The reference's bilinear translation (physics-and-model.md §4.1) in numpy, with the shift rounded to
/// float32 as our kernels take it: `bilinear.py` in `dir`, for the scripts that check our physics.
pub fn write_numpy_bilinear(dir: &Path) {
    std::fs::write(
        dir.join("bilinear.py"),
        "import numpy as np\n\
         def translate(img, tx, ty):\n\
         \x20   H, W = img.shape\n\
         \x20   ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)\n\
         \x20   sx, sy = xs - np.float32(tx), ys - np.float32(ty)\n\
         \x20   x0, y0 = np.floor(sx).astype(int), np.floor(sy).astype(int)\n\
         \x20   wx, wy = sx - x0, sy - y0\n\
         \x20   def at(r, c):\n\
         \x20       ok = (r >= 0) & (r < H) & (c >= 0) & (c < W)\n\
         \x20       return np.where(ok, img[np.clip(r, 0, H - 1), np.clip(c, 0, W - 1)], 0)\n\
         \x20   return ((1 - wx) * (1 - wy) * at(y0, x0) + wx * (1 - wy) * at(y0, x0 + 1)\n\
         \x20           + (1 - wx) * wy * at(y0 + 1, x0) + wx * wy * at(y0 + 1, x0 + 1))\n",
    )
    .unwrap();
}

/// Run `ptycho` with `args`, which must succeed; its standard output.
pub fn ptycho_ok(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ptycho"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run `ptycho` with `args`, which must fail; its standard error.
pub fn ptycho_err(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ptycho"))
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A zip archive with each entry changed by `change(name, bytes)` (None: dropped), in the same order.
pub fn rewrite_zip(
    archive: Vec<u8>,
    mut change: impl FnMut(&str, Vec<u8>) -> Option<Vec<u8>>,
) -> Vec<u8> {
    let mut from = zip::ZipArchive::new(std::io::Cursor::new(archive)).unwrap();
    let mut to = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for i in 0..from.len() {
        let mut entry = from.by_index(i).unwrap();
        let name = entry.name().unwrap().to_string();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        if let Some(bytes) = change(&name, bytes) {
            to.start_file(name, zip::write::SimpleFileOptions::default())
                .unwrap();
            to.write_all(&bytes).unwrap();
        }
    }
    to.finish().unwrap().into_inner()
}

/// [`rewrite_zip`] of the file at `path`, in place.
pub fn rewrite(path: &Path, change: impl FnMut(&str, Vec<u8>) -> Option<Vec<u8>>) {
    let bytes = rewrite_zip(std::fs::read(path).unwrap(), change);
    std::fs::write(path, bytes).unwrap();
}
