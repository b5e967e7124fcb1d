//! The shader table against the WGSL it names, with naga and no GPU: every variant parses and
//! validates, every file under shaders/ is registered, the entry points are the module's, and the
//! Rust↔WGSL boundary (binding indices, the `Params` block's size, member offsets and types) agrees.

use std::collections::BTreeMap;
use std::path::Path;

use ptycho_kernels::gpu::shaders::{Shader, SHADERS};
use ptycho_kernels::gpu::FftPass;

fn parse(name: &str, source: &str) -> naga::Module {
    let module = naga::front::wgsl::parse_str(source)
        .unwrap_or_else(|e| panic!("{name}: WGSL parse error:\n{}", e.emit_to_string(source)));
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::default(),
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("{name}: validation error:\n{}", e.emit_to_string(source)));
    module
}

fn shader_modules() -> Vec<(&'static Shader, naga::Module)> {
    SHADERS
        .iter()
        .map(|&shader| (shader, parse(shader.name, &(shader.source)())))
        .collect()
}

#[test]
fn every_fft_variant_validates() {
    let passes = FftPass::all();
    assert!(passes.len() >= 48, "{} FFT variants", passes.len());
    for pass in passes {
        parse(&pass.name(), &pass.source());
    }
}

#[test]
fn every_shader_has_exactly_the_entry_points_of_its_row() {
    for (shader, module) in shader_modules() {
        let mut in_wgsl: Vec<&str> = module
            .entry_points
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        let mut in_table = shader.entry_points.to_vec();
        in_wgsl.sort();
        in_table.sort();
        assert_eq!(in_wgsl, in_table, "{}: entry points", shader.name);
    }
}

#[test]
fn binding_indices_agree_with_the_wgsl() {
    for (shader, module) in shader_modules() {
        let in_wgsl: BTreeMap<String, u32> = module
            .global_variables
            .iter()
            .filter_map(|(_, var)| {
                let binding = var.binding.as_ref()?;
                assert_eq!(
                    binding.group, 0,
                    "{}: {:?} not in group 0",
                    shader.name, var.name
                );
                Some((var.name.clone().unwrap_or_default(), binding.binding))
            })
            .collect();
        let in_table: BTreeMap<String, u32> = shader
            .bindings
            .iter()
            .map(|&(name, index)| (name.to_string(), index))
            .collect();
        assert_eq!(
            in_wgsl, in_table,
            "{}: bindings (name -> index)",
            shader.name
        );
    }
}

#[test]
fn params_blocks_agree_with_the_wgsl() {
    for (shader, module) in shader_modules() {
        let rust = (shader.params)();
        let params = module
            .global_variables
            .iter()
            .find(|(_, var)| var.name.as_deref() == Some("params"))
            .unwrap_or_else(|| panic!("{}: no `params` uniform", shader.name))
            .1;
        assert_eq!(params.space, naga::AddressSpace::Uniform, "{}", shader.name);
        let ty = &module.types[params.ty];
        let naga::TypeInner::Struct { members, span } = &ty.inner else {
            panic!("{}: `params` is not a struct", shader.name);
        };
        let what = format!(
            "{}: WGSL {:?} vs Rust {}",
            shader.name, ty.name, rust.rust_name
        );
        assert_eq!(*span as usize, rust.size, "{what}: size in bytes");

        let wgsl_members: Vec<(String, usize, String)> = members
            .iter()
            .map(|m| {
                let scalar = match module.types[m.ty].inner {
                    naga::TypeInner::Scalar(s) => match s.kind {
                        naga::ScalarKind::Uint => "u32",
                        naga::ScalarKind::Float => "f32",
                        _ => "other",
                    },
                    _ => "not a scalar",
                };
                (
                    m.name.clone().unwrap_or_default(),
                    m.offset as usize,
                    scalar.to_string(),
                )
            })
            .filter(|(name, _, _)| !name.starts_with('_'))
            .collect();
        let rust_members: Vec<(String, usize, String)> = rust
            .members
            .iter()
            .filter(|(name, _, _)| !name.starts_with('_'))
            .map(|&(name, offset, ty)| (name.to_string(), offset, ty.to_string()))
            .collect();
        assert_eq!(
            wgsl_members, rust_members,
            "{what}: (member, offset, type) of every member that is not padding"
        );
    }
}

/// A new .wgsl file must be named by a row of the shader table (and so composed and checked above),
/// and each row's source must hold the text of every file it names.
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
    let mut registered: Vec<String> = SHADERS
        .iter()
        .flat_map(|s| s.files.iter().map(|f| f.to_string()))
        .collect();
    registered.sort();
    registered.dedup();
    assert_eq!(found, registered);

    for shader in SHADERS {
        let source = (shader.source)();
        for file in shader.files {
            let text = std::fs::read_to_string(root.join(file)).unwrap();
            assert!(
                source.contains(&text),
                "{}: its source does not hold {file}",
                shader.name
            );
        }
    }
}
