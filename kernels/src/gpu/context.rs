//! Headless adapter discovery and device creation.

use crate::{KernelError, Result};

/// How the user narrowed the choice of adapter (`--adapter`, `--backend`, or their env twins).
#[derive(Clone, Debug, Default)]
pub struct GpuSelection {
    /// An index into the adapter list of `ptycho info`, or a case-insensitive part of an adapter's name.
    pub adapter: Option<String>,
    /// vulkan, metal, dx12 or gl.
    pub backend: Option<String>,
}

impl GpuSelection {
    /// The selection from `PTYCHO_ADAPTER` and `PTYCHO_BACKEND`.
    pub fn from_env() -> Self {
        let var = |name| {
            std::env::var(name)
                .ok()
                .filter(|v: &String| !v.trim().is_empty())
        };
        Self {
            adapter: var("PTYCHO_ADAPTER"),
            backend: var("PTYCHO_BACKEND"),
        }
    }
}

/// What `ptycho info` shows of one adapter.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    pub index: usize,
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
    pub is_software: bool,
}

impl AdapterSummary {
    fn of(index: usize, info: &wgpu::AdapterInfo) -> Self {
        Self {
            index,
            name: info.name.clone(),
            backend: backend_name(info.backend).to_string(),
            device_type: format!("{:?}", info.device_type),
            driver: info.driver.clone(),
            driver_info: info.driver_info.clone(),
            is_software: info.device_type == wgpu::DeviceType::Cpu,
        }
    }
}

pub fn backend_name(backend: wgpu::Backend) -> &'static str {
    match backend {
        wgpu::Backend::Vulkan => "vulkan",
        wgpu::Backend::Metal => "metal",
        wgpu::Backend::Dx12 => "dx12",
        wgpu::Backend::Gl => "gl",
        wgpu::Backend::BrowserWebGpu => "webgpu",
        _ => "other",
    }
}

pub fn parse_backends(name: Option<&str>) -> Result<wgpu::Backends> {
    Ok(
        match name.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("all") => wgpu::Backends::all(),
            Some("vulkan") | Some("vk") => wgpu::Backends::VULKAN,
            Some("metal") => wgpu::Backends::METAL,
            Some("dx12") | Some("d3d12") => wgpu::Backends::DX12,
            Some("gl") | Some("gles") | Some("opengl") => wgpu::Backends::GL,
            Some(other) => return Err(KernelError::UnknownBackend(other.to_string())),
        },
    )
}

fn instance(backends: wgpu::Backends) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = backends;
    wgpu::Instance::new(desc)
}

/// Every adapter wgpu finds for the selected backends, in a stable order: the order `--adapter INDEX`
/// refers to.
pub fn enumerate_adapters(selection: &GpuSelection) -> Result<Vec<wgpu::Adapter>> {
    let backends = parse_backends(selection.backend.as_deref())?;
    let mut adapters = pollster::block_on(instance(backends).enumerate_adapters(backends));
    adapters.sort_by_key(|a| {
        let info = a.get_info();
        (preference(&info), info.name.clone())
    });
    Ok(adapters)
}

pub fn summarize(adapters: &[wgpu::Adapter]) -> Vec<AdapterSummary> {
    adapters
        .iter()
        .enumerate()
        .map(|(i, a)| AdapterSummary::of(i, &a.get_info()))
        .collect()
}

/// Lower is better: hardware before software, then Vulkan, Metal, DX12, GL.
fn preference(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let device = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    };
    let backend = match info.backend {
        wgpu::Backend::Vulkan => 0,
        wgpu::Backend::Metal => 1,
        wgpu::Backend::Dx12 => 2,
        wgpu::Backend::Gl => 3,
        _ => 4,
    };
    (device, backend)
}

/// The adapter the selection names, or the preferred one. Returns the index too.
pub fn choose_adapter(selection: &GpuSelection) -> Result<(usize, wgpu::Adapter)> {
    let adapters = enumerate_adapters(selection)?;
    if adapters.is_empty() {
        let filter = match &selection.backend {
            Some(b) => format!(" for backend '{b}'"),
            None => String::new(),
        };
        return Err(KernelError::NoAdapter { filter });
    }
    let Some(wanted) = selection
        .adapter
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    else {
        return Ok((0, adapters.into_iter().next().expect("checked non-empty")));
    };
    let index = match wanted.parse::<usize>() {
        Ok(i) if i < adapters.len() => Some(i),
        Ok(_) => None,
        Err(_) => {
            let needle = wanted.to_ascii_lowercase();
            adapters
                .iter()
                .position(|a| a.get_info().name.to_ascii_lowercase().contains(&needle))
        }
    };
    match index {
        Some(i) => Ok((i, adapters.into_iter().nth(i).expect("index in range"))),
        None => Err(KernelError::AdapterNotFound {
            selector: wanted.to_string(),
            available: summarize(&adapters)
                .iter()
                .map(|s| format!("[{}] {} ({})", s.index, s.name, s.backend))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Optional features we use when the adapter has them.
pub fn wanted_features() -> wgpu::Features {
    wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SUBGROUP | wgpu::Features::SHADER_F16
}

/// Open a device with the adapter's own limits and whichever wanted features it has.
pub fn open_device(adapter: &wgpu::Adapter) -> Result<(wgpu::Device, wgpu::Queue)> {
    let desc = wgpu::DeviceDescriptor {
        label: Some("ptycho-wgpu"),
        required_features: adapter.features() & wanted_features(),
        required_limits: adapter.limits(),
        memory_hints: wgpu::MemoryHints::Performance,
        ..Default::default()
    };
    pollster::block_on(adapter.request_device(&desc)).map_err(|e| KernelError::RequestDevice {
        adapter: adapter.get_info().name,
        message: e.to_string(),
    })
}
