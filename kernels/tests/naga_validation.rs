//! Every WGSL kernel variant parses and validates with naga: no GPU needed.

use std::path::Path;

use ptycho_kernels::gpu::shaders::{all_sources, SHADER_FILES};

#[test]
fn every_shader_variant_validates() {
    let sources = all_sources();
    assert!(
        sources.len() > 80,
        "expected every FFT variant plus the elementwise and copy kernels"
    );
    for (name, source, entry_points) in sources {
        let module = naga::front::wgsl::parse_str(&source)
            .unwrap_or_else(|e| panic!("{name}: WGSL parse error:\n{}", e.emit_to_string(&source)));
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::default(),
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name}: validation error:\n{}", e.emit_to_string(&source)));
        for entry in entry_points {
            assert!(
                module.entry_points.iter().any(|e| e.name == entry),
                "{name}: no entry point '{entry}'"
            );
        }
    }
}

/// A new .wgsl file must be registered in SHADER_FILES (and so composed and validated above).
#[test]
fn every_file_under_shaders_is_registered() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shaders");
    let mut found = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "wgsl") {
                found.push(
                    path.strip_prefix(&root)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/"),
                );
            }
        }
    }
    found.sort();
    let mut registered: Vec<String> = SHADER_FILES.iter().map(|s| s.to_string()).collect();
    registered.sort();
    assert_eq!(found, registered);
}
