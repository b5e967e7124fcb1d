use thiserror::Error;

pub type Result<T, E = KernelError> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum KernelError {
    #[error(
        "no GPU adapter found{filter}. Install a Vulkan driver (on Debian/Ubuntu `apt-get install \
         mesa-vulkan-drivers` gives a software device), or run with `--device cpu`"
    )]
    NoAdapter { filter: String },

    #[error("no GPU adapter matches '{selector}'; available: {available}")]
    AdapterNotFound { selector: String, available: String },

    #[error("unknown wgpu backend '{0}': expected one of vulkan, metal, dx12, gl")]
    UnknownBackend(String),

    #[error("unknown device '{0}': expected auto, gpu or cpu")]
    UnknownDevice(String),

    #[error("could not open adapter '{adapter}': {message}")]
    RequestDevice { adapter: String, message: String },

    #[error("{op}: FFT size {n} is not supported; supported sizes are {supported:?}")]
    UnsupportedFftSize {
        op: &'static str,
        n: usize,
        supported: &'static [usize],
    },

    #[error("{op}: expected {expected}, found shape {found:?}")]
    Shape {
        op: &'static str,
        expected: String,
        found: Vec<usize>,
    },

    #[error("{op}: expected dtype {expected}, found {found}")]
    Dtype {
        op: &'static str,
        expected: &'static str,
        found: &'static str,
    },

    #[error("upload: shape {shape:?} needs {expected} values, got {found}")]
    HostLength {
        shape: Vec<usize>,
        expected: usize,
        found: usize,
    },

    #[error(
        "{op}: {bytes} bytes exceed this adapter's limit of {limit} bytes per buffer ({what})"
    )]
    TooLarge {
        op: &'static str,
        bytes: u64,
        limit: u64,
        what: &'static str,
    },

    #[error("GPU kernel '{kernel}' failed: {message}")]
    Gpu { kernel: String, message: String },

    #[error("reading back from the GPU failed: {0}")]
    Readback(String),
}
