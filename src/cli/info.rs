//! `ptycho info`: adapters, the chosen one, its limits and features.

use serde::Serialize;

use ptycho_kernels::gpu::context::{enumerate_adapters, summarize, wanted_features};
use ptycho_kernels::gpu::GpuBackend;

use super::device::AdapterArgs;

#[derive(Serialize)]
struct Adapter {
    index: usize,
    name: String,
    backend: String,
    device_type: String,
    driver: String,
    driver_info: String,
}

#[derive(Serialize)]
struct Limits {
    max_storage_buffer_binding_size: u64,
    max_buffer_size: u64,
    max_compute_workgroup_storage_size: u32,
    max_compute_invocations_per_workgroup: u32,
    max_compute_workgroup_size_x: u32,
    max_compute_workgroups_per_dimension: u32,
    max_storage_buffers_per_shader_stage: u32,
}

#[derive(Serialize)]
struct Chosen {
    index: usize,
    name: String,
    backend: String,
    limits: Limits,
    /// The optional features we use, and whether this device has each.
    features: Vec<(String, bool)>,
}

#[derive(Serialize)]
struct Info {
    adapters: Vec<Adapter>,
    chosen: Option<Chosen>,
    /// Why no adapter was chosen, and what `--device auto` then does.
    note: Option<String>,
}

fn gather(args: &AdapterArgs) -> anyhow::Result<Info> {
    let selection = args.selection();
    let adapters = summarize(&enumerate_adapters(&selection)?)
        .into_iter()
        .map(|a| Adapter {
            index: a.index,
            name: a.name,
            backend: a.backend,
            device_type: a.device_type,
            driver: a.driver,
            driver_info: a.driver_info,
        })
        .collect();
    let (chosen, note) = match GpuBackend::new(&selection) {
        Ok(gpu) => {
            let l = gpu.limits();
            let features = wanted_features()
                .iter_names()
                .map(|(name, flag)| (name.to_ascii_lowercase(), gpu.features().contains(flag)))
                .collect();
            let info = gpu.adapter_info();
            let chosen = Chosen {
                index: gpu.adapter_index(),
                name: info.name.clone(),
                backend: ptycho_kernels::gpu::context::backend_name(info.backend).to_string(),
                limits: Limits {
                    max_storage_buffer_binding_size: l.max_storage_buffer_binding_size,
                    max_buffer_size: l.max_buffer_size,
                    max_compute_workgroup_storage_size: l.max_compute_workgroup_storage_size,
                    max_compute_invocations_per_workgroup: l.max_compute_invocations_per_workgroup,
                    max_compute_workgroup_size_x: l.max_compute_workgroup_size_x,
                    max_compute_workgroups_per_dimension: l.max_compute_workgroups_per_dimension,
                    max_storage_buffers_per_shader_stage: l.max_storage_buffers_per_shader_stage,
                },
                features,
            };
            (Some(chosen), None)
        }
        Err(e) => (
            None,
            Some(format!("{e}; --device auto will use the CPU backend")),
        ),
    };
    Ok(Info {
        adapters,
        chosen,
        note,
    })
}

pub fn run(args: &AdapterArgs, json: bool) -> anyhow::Result<()> {
    let info = gather(args)?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&info)?);
        return Ok(());
    }
    outln!("adapters:");
    if info.adapters.is_empty() {
        outln!("  (none)");
    }
    for a in &info.adapters {
        outln!(
            "  [{}] {} ({}, {}, driver: {} {})",
            a.index,
            a.name,
            a.backend,
            a.device_type,
            a.driver,
            a.driver_info
        );
    }
    if let Some(c) = &info.chosen {
        outln!("chosen: [{}] {} ({})", c.index, c.name, c.backend);
        let l = &c.limits;
        outln!("limits:");
        outln!(
            "  max_storage_buffer_binding_size     {}",
            l.max_storage_buffer_binding_size
        );
        outln!(
            "  max_buffer_size                     {}",
            l.max_buffer_size
        );
        outln!(
            "  max_compute_workgroup_storage_size  {}",
            l.max_compute_workgroup_storage_size
        );
        outln!(
            "  max_compute_invocations_per_workgroup {}",
            l.max_compute_invocations_per_workgroup
        );
        outln!(
            "  max_compute_workgroup_size_x        {}",
            l.max_compute_workgroup_size_x
        );
        outln!(
            "  max_compute_workgroups_per_dimension {}",
            l.max_compute_workgroups_per_dimension
        );
        outln!(
            "  max_storage_buffers_per_shader_stage {}",
            l.max_storage_buffers_per_shader_stage
        );
        let features: Vec<String> = c
            .features
            .iter()
            .map(|(name, has)| format!("{name}: {}", if *has { "yes" } else { "no" }))
            .collect();
        outln!("features: {}", features.join(", "));
    }
    if let Some(note) = &info.note {
        outln!("note: {note}");
    }
    Ok(())
}
