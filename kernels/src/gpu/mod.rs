//! The wgpu backend: device, pipeline cache, buffer pool, recording, and the [`Backend`] impl that
//! dispatches the WGSL kernels of shaders/.

pub mod context;
mod pool;
mod recorder;
pub mod shaders;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytemuck::{Pod, Zeroable};
use wgpu::util::DeviceExt;

pub use context::{AdapterSummary, GpuSelection};
pub use pool::PooledBuffer;
pub use recorder::RecorderStats;

use crate::ops::conv::ConvGeometry;
use crate::ops::elementwise::{require_complex, BinaryGeometry, BinaryOp, ComplexRealPair, RealOp};
use crate::ops::fft::{FftDirection, FftGeometry, FftShift};
use crate::ops::layers::{check_same, check_slice, crop_geometry, require_shape, Activation, Nhwc};
use crate::ops::layout::{ChannelGeometry, RecenterGeometry};
use crate::ops::loss::{check_pair, LossKind};
use crate::ops::optim::{check_adam, AdamConfig};
use crate::ops::translate::{TranslateDirection, TranslateGeometry};
use crate::ops::{check_host_len, require_dtype, Backend, BackendKind, ConvParamGrads};
use crate::{Complex32, Dtype, KernelError, Result, Tensor};
use pool::{BufferPool, STORAGE_USAGE};
use recorder::{Binding, Recorder};
use shaders::{FftPass, ELEMENTS_PER_INVOCATION, ELEMENTWISE_WORKGROUP_SIZE};

pub type GpuTensor = Tensor<PooledBuffer>;

pub struct GpuBackend {
    device: wgpu::Device,
    info: wgpu::AdapterInfo,
    index: usize,
    limits: wgpu::Limits,
    features: wgpu::Features,
    pool: Arc<BufferPool>,
    pipelines: Mutex<HashMap<String, Arc<wgpu::ComputePipeline>>>,
    twiddles: Mutex<HashMap<usize, Arc<wgpu::Buffer>>>,
    recorder: Mutex<Recorder>,
    /// Which convolution kernels run: shaders/conv_lanes.wgsl on CPU-type adapters, conv.wgsl elsewhere.
    lane_convs: AtomicBool,
}

/// The two families of convolution kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvKernels {
    /// shaders/conv.wgsl: 64 x 64 output tiles staged in workgroup memory, for GPUs.
    Tiled,
    /// shaders/conv_lanes.wgsl: one GEMM row per invocation against a uniform window of the shared
    /// operand, for CPU-type adapters (lavapipe, llvmpipe, WARP).
    Lanes,
}

/// Floats in the uniform window of shaders/conv_lanes.wgsl (64 KiB, wgpu's default binding limit;
/// adapters below it keep the tiled kernels).
const LANES_WINDOW: usize = 16384;
/// Window starts are multiples of this many floats: 256 bytes, the largest uniform offset alignment
/// wgpu allows.
const LANES_WINDOW_ALIGN: usize = 64;
/// The last block of 16 columns reads up to 15 floats past its row.
const LANES_WINDOW_SLACK: usize = 16;
/// Invocations per workgroup in shaders/conv_lanes.wgsl.
const LANES: usize = 64;
/// Output columns per invocation in shaders/conv_lanes.wgsl.
const LANE_COLUMNS: usize = 16;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct LaneConvParams {
    h: u32,
    w: u32,
    a_channels: u32,
    n: u32,
    m: u32,
    k: u32,
    row_blocks: u32,
    mode: u32,
    chunk_begin: u32,
    chunk_end: u32,
    window_base: u32,
    len: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct FftParams {
    workgroups: u32,
    pad: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ElementwiseParams {
    len: u32,
    b_len: u32,
    row_invocations: u32,
    scale: f32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ConvParams {
    h: u32,
    w: u32,
    a_channels: u32,
    n: u32,
    m: u32,
    k: u32,
    tiles_m: u32,
    tiles_n: u32,
    mode: u32,
    split_len: u32,
    splits: u32,
    _pad: u32,
}

/// Output tile side of the conv GEMM kernels (shaders/conv.wgsl).
const CONV_TILE: usize = 64;
/// Pixels per split of the conv parameter gradients.
const CONV_SPLIT_PIXELS: usize = 1024;

#[repr(C)]
#[derive(Clone, Copy, Default, Pod, Zeroable)]
struct LayerParams {
    len: u32,
    row_invocations: u32,
    h: u32,
    w: u32,
    c: u32,
    c_out: u32,
    start: u32,
    pad: u32,
    scale: f32,
    _pad: [u32; 3],
}

impl LayerParams {
    fn of(d: &Nhwc) -> Self {
        Self {
            h: d.h as u32,
            w: d.w as u32,
            c: d.c as u32,
            ..Self::default()
        }
    }
}

/// A read-back in flight (see [`Backend::start_read_f32`]); None for an empty tensor.
pub struct PendingRead(Option<InFlight>);

struct InFlight {
    staging: wgpu::Buffer,
    index: Option<wgpu::SubmissionIndex>,
    receiver: std::sync::mpsc::Receiver<std::result::Result<(), wgpu::BufferAsyncError>>,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct PeakParams {
    lanes: u32,
    row_invocations: u32,
    iterations: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct AdamParams {
    len: u32,
    row_invocations: u32,
    alpha: f32,
    beta1: f32,
    beta2: f32,
    epsilon: f32,
    _pad: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct TranslateParams {
    h: u32,
    w: u32,
    len: u32,
    row_invocations: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct LayoutParams {
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    len: u32,
    channels: u32,
    row_invocations: u32,
    pad: u32,
}

impl LayoutParams {
    /// [in_h, in_w, out_h, out_w], output elements, channels; the grid is filled in at dispatch.
    fn new(sizes: [usize; 4], len: usize, channels: usize) -> Self {
        let [in_h, in_w, out_h, out_w] = sizes.map(|v| v as u32);
        Self {
            in_h,
            in_w,
            out_h,
            out_w,
            len: len as u32,
            channels: channels as u32,
            row_invocations: 0,
            pad: 0,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct LossParams {
    len: u32,
    row_invocations: u32,
    scale: f32,
    pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct CopyParams {
    len: u32,
    row_invocations: u32,
    pad: [u32; 2],
}

/// Validation and out-of-memory errors raised while `f` records GPU work, as a Rust error naming `kernel`.
fn capture<T>(device: &wgpu::Device, kernel: &str, f: impl FnOnce() -> T) -> Result<T> {
    let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let value = f();
    let errors = [
        pollster::block_on(validation.pop()),
        pollster::block_on(oom.pop()),
    ];
    match errors.into_iter().flatten().next() {
        Some(error) => Err(KernelError::Gpu {
            kernel: kernel.to_string(),
            message: error.to_string(),
        }),
        None => Ok(value),
    }
}

impl GpuBackend {
    /// Open the adapter the selection names (or the preferred one) with its own limits.
    pub fn new(selection: &GpuSelection) -> Result<Self> {
        let (index, adapter) = context::choose_adapter(selection)?;
        let (device, queue) = context::open_device(&adapter)?;
        device.on_uncaptured_error(Arc::new(|error| {
            eprintln!("wgpu error outside an error scope: {error}")
        }));
        let limits = device.limits();
        let pool = BufferPool::new(device.clone(), limits.max_buffer_size);
        let recorder = Recorder::new(device.clone(), queue, pool.clone(), &limits);
        let info = adapter.get_info();
        let lane_convs = info.device_type == wgpu::DeviceType::Cpu && lane_convs_fit(&limits);
        Ok(Self {
            info,
            lane_convs: AtomicBool::new(lane_convs),
            index,
            features: device.features(),
            limits,
            pool,
            pipelines: Mutex::new(HashMap::new()),
            twiddles: Mutex::new(HashMap::new()),
            recorder: Mutex::new(recorder),
            device,
        })
    }

    /// The convolution kernels in use.
    pub fn conv_kernels(&self) -> ConvKernels {
        if self.lane_convs.load(Ordering::Relaxed) {
            ConvKernels::Lanes
        } else {
            ConvKernels::Tiled
        }
    }

    /// Whether a convolution with `n` output columns runs on the lane kernels: they are chosen and a
    /// row of `n` floats fits one uniform window (wider ones take the tiled kernels).
    fn uses_lane_convs(&self, n: usize) -> bool {
        self.conv_kernels() == ConvKernels::Lanes && lanes_rows_per_window(n) > 0
    }

    /// Choose the convolution kernels (the adapter type chooses by default); both compute the same
    /// sums, so tests and benchmarks can run either on any adapter whose limits allow it.
    pub fn set_conv_kernels(&self, kernels: ConvKernels) -> Result<()> {
        if kernels == ConvKernels::Lanes && !lane_convs_fit(&self.limits) {
            return Err(KernelError::Gpu {
                kernel: "conv_lanes".into(),
                message: format!(
                    "needs 64 KiB uniform bindings at 256-byte offsets; the adapter allows {} bytes at {}",
                    self.limits.max_uniform_buffer_binding_size,
                    self.limits.min_uniform_buffer_offset_alignment
                ),
            });
        }
        self.lane_convs
            .store(kernels == ConvKernels::Lanes, Ordering::Relaxed);
        Ok(())
    }

    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }

    /// Position of this adapter in the list `ptycho info` prints.
    pub fn adapter_index(&self) -> usize {
        self.index
    }

    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    pub fn features(&self) -> wgpu::Features {
        self.features
    }

    pub fn stats(&self) -> RecorderStats {
        self.recorder().stats
    }

    /// Bytes held idle in the buffer pool.
    pub fn pooled_bytes(&self) -> u64 {
        self.pool.idle_bytes()
    }

    /// Give idle pooled buffers back to the driver.
    pub fn trim_pool(&self) {
        self.pool.trim();
    }

    /// Submit recorded work without waiting for it.
    pub fn flush(&self) -> Result<()> {
        let mut recorder = self.recorder();
        capture(&self.device, "submit", || recorder.submit()).map(drop)
    }

    fn recorder(&self) -> MutexGuard<'_, Recorder> {
        self.recorder.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pipeline(
        &self,
        name: &str,
        entry: &str,
        source: impl FnOnce() -> String,
    ) -> Result<Arc<wgpu::ComputePipeline>> {
        let key = format!("{name}::{entry}");
        if let Some(p) = self
            .pipelines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(p.clone());
        }
        let source = source();
        let pipeline = capture(&self.device, &key, || {
            let module = self
                .device
                .create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(name),
                    source: wgpu::ShaderSource::Wgsl(source.into()),
                });
            self.device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(&key),
                    layout: None,
                    module: &module,
                    entry_point: Some(entry),
                    compilation_options: Default::default(),
                    cache: None,
                })
        })?;
        let pipeline = Arc::new(pipeline);
        self.pipelines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, pipeline.clone());
        Ok(pipeline)
    }

    /// exp(-2 pi i k / n) for k in 0..n, computed in f64 and rounded once to f32.
    fn twiddles(&self, n: usize) -> Arc<wgpu::Buffer> {
        let mut cache = self.twiddles.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .entry(n)
            .or_insert_with(|| {
                let table: Vec<[f32; 2]> = (0..n)
                    .map(|k| {
                        let angle = -2.0 * std::f64::consts::PI * k as f64 / n as f64;
                        [angle.cos() as f32, angle.sin() as f32]
                    })
                    .collect();
                Arc::new(
                    self.device
                        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                            label: Some("fft twiddles"),
                            contents: bytemuck::cast_slice(&table),
                            usage: wgpu::BufferUsages::STORAGE,
                        }),
                )
            })
            .clone()
    }

    fn check_size(&self, op: &'static str, bytes: u64) -> Result<()> {
        let binding = self.limits.max_storage_buffer_binding_size;
        if bytes > binding {
            return Err(KernelError::TooLarge {
                op,
                bytes,
                limit: binding,
                what: "max_storage_buffer_binding_size",
            });
        }
        if bytes > self.limits.max_buffer_size {
            let limit = self.limits.max_buffer_size;
            return Err(KernelError::TooLarge {
                op,
                bytes,
                limit,
                what: "max_buffer_size",
            });
        }
        Ok(())
    }

    fn alloc(&self, op: &'static str, shape: &[usize], dtype: Dtype) -> Result<GpuTensor> {
        let bytes = (shape.iter().product::<usize>() * dtype.size_bytes()) as u64;
        self.check_size(op, bytes)?;
        Ok(Tensor::new(
            shape.to_vec(),
            dtype,
            self.pool.take(bytes, STORAGE_USAGE, op),
        ))
    }

    fn upload_bytes(&self, shape: &[usize], dtype: Dtype, bytes: &[u8]) -> Result<GpuTensor> {
        let tensor = self.alloc("upload", shape, dtype)?;
        if bytes.is_empty() {
            return Ok(tensor);
        }
        // Staged through the encoder rather than queue.write_buffer, so that the copy is ordered after
        // earlier recorded work that may still read a recycled buffer.
        let staging = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("upload staging"),
                contents: bytes,
                usage: wgpu::BufferUsages::COPY_SRC,
            });
        let mut recorder = self.recorder();
        let dst = tensor.storage.buffer();
        capture(&self.device, "upload", || {
            recorder
                .encoder()
                .copy_buffer_to_buffer(&staging, 0, dst, 0, bytes.len() as u64)
        })?;
        Ok(tensor)
    }

    fn download_bytes(&self, t: &GpuTensor) -> Result<Vec<u8>> {
        self.finish_read_bytes(self.start_read_bytes(t)?)
    }

    /// Record a copy of `t` into a mapped-on-completion staging buffer and submit everything recorded,
    /// without waiting.
    fn start_read_bytes(&self, t: &GpuTensor) -> Result<PendingRead> {
        let bytes = t.size_bytes();
        if bytes == 0 {
            return Ok(PendingRead(None));
        }
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback staging"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let index = {
            let mut recorder = self.recorder();
            let src = t.storage.buffer();
            capture(&self.device, "readback", || {
                recorder
                    .encoder()
                    .copy_buffer_to_buffer(src, 0, &staging, 0, bytes);
                recorder.submit()
            })?
        };
        let (sender, receiver) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = sender.send(r);
        });
        Ok(PendingRead(Some(InFlight {
            staging,
            index,
            receiver,
        })))
    }

    /// Wait for the submission that holds the copy (not for later ones) and take the bytes.
    fn finish_read_bytes(&self, pending: PendingRead) -> Result<Vec<u8>> {
        let Some(InFlight {
            staging,
            index,
            receiver,
        }) = pending.0
        else {
            return Ok(Vec::new());
        };
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: index,
                timeout: None,
            })
            .map_err(|e| KernelError::Readback(e.to_string()))?;
        receiver
            .recv()
            .map_err(|e| KernelError::Readback(e.to_string()))?
            .map_err(|e| KernelError::Readback(e.to_string()))?;
        let data = staging
            .get_mapped_range(..)
            .map_err(|e| KernelError::Readback(e.to_string()))?
            .to_vec();
        staging.unmap();
        Ok(data)
    }

    fn dispatch(
        &self,
        kernel: &str,
        pipeline: &wgpu::ComputePipeline,
        bindings: &[Binding<'_>],
        params_binding: u32,
        params: &[u8],
        workgroups: u64,
    ) -> Result<()> {
        let workgroups = u32::try_from(workgroups).map_err(|_| KernelError::Gpu {
            kernel: kernel.to_string(),
            message: format!("{workgroups} workgroups exceed one dispatch"),
        })?;
        let mut recorder = self.recorder();
        capture(&self.device, kernel, || {
            recorder.dispatch(
                kernel,
                pipeline,
                bindings,
                params_binding,
                params,
                workgroups,
            )
        })
    }

    /// Workgroups, and invocations per grid row, for `invocations` invocations of a kernel with
    /// ELEMENTWISE_WORKGROUP_SIZE invocations per workgroup.
    fn grid(&self, invocations: u64) -> (u64, u32) {
        let workgroups = invocations.max(1).div_ceil(ELEMENTWISE_WORKGROUP_SIZE);
        let max_x = self.limits.max_compute_workgroups_per_dimension as u64;
        let row_invocations = (workgroups.min(max_x) * ELEMENTWISE_WORKGROUP_SIZE) as u32;
        (workgroups, row_invocations)
    }

    /// The grid for a strided kernel where each invocation handles ELEMENTS_PER_INVOCATION of `len`.
    fn elementwise_grid(&self, len: u64) -> (u64, u32) {
        self.grid(len.div_ceil(ELEMENTS_PER_INVOCATION))
    }

    /// One dispatch of a shaders/elementwise.wgsl kernel over out's elements. `inputs` are (binding,
    /// tensor): 0 complex a, 1 complex b (indexed modulo b_len), 5 real a.
    fn elementwise(
        &self,
        entry: &'static str,
        inputs: &[(u32, &GpuTensor)],
        b_len: usize,
        scale: f32,
        out: &GpuTensor,
    ) -> Result<()> {
        check_u32(entry, out.len())?;
        let pipeline = self.pipeline("elementwise", entry, shaders::elementwise_source)?;
        let len = out.len() as u64;
        let (workgroups, row_invocations) = self.elementwise_grid(len);
        let params = ElementwiseParams {
            len: len as u32,
            b_len: b_len as u32,
            row_invocations,
            scale,
        };
        let mut bindings: Vec<Binding<'_>> =
            inputs.iter().map(|(index, t)| bind(*index, t)).collect();
        let out_index = if out.dtype() == Dtype::C64 { 2 } else { 3 };
        bindings.push(bind(out_index, out));
        self.dispatch(
            entry,
            &pipeline,
            &bindings,
            4,
            bytemuck::bytes_of(&params),
            workgroups,
        )
    }

    /// One dispatch of a shaders/layout.wgsl kernel `op` (its complex or real entry) from x to out.
    fn layout(
        &self,
        op: &'static str,
        x: &GpuTensor,
        out: &GpuTensor,
        mut params: LayoutParams,
    ) -> Result<()> {
        check_u32(op, x.len().max(out.len()))?;
        let complex = x.dtype() == Dtype::C64;
        let entry = format!("{op}_{}", if complex { "complex" } else { "real" });
        let pipeline = self.pipeline("layout", &entry, shaders::layout_source)?;
        let (workgroups, row_invocations) = self.grid(out.len() as u64);
        params.row_invocations = row_invocations;
        let (src_index, out_index) = if complex { (0, 2) } else { (1, 3) };
        let bindings = [bind(src_index, x), bind(out_index, out)];
        self.dispatch(
            &entry,
            &pipeline,
            &bindings,
            4,
            bytemuck::bytes_of(&params),
            workgroups,
        )
    }

    /// The implicit-GEMM convolution of shaders/conv.wgsl: `a_channels` channels gathered from
    /// `inputs[0]`, `n` output channels, mode 0 (forward, `inputs[2]` the bias) or 1 (input gradient);
    /// `inputs[1]` the kernel.
    fn conv_gemm(
        &self,
        op: &'static str,
        g: &ConvGeometry,
        (a_channels, n, mode): (usize, usize, u32),
        inputs: [&GpuTensor; 3],
        out: &GpuTensor,
    ) -> Result<()> {
        check_u32(op, g.pixels() * a_channels.max(n))?;
        if self.uses_lane_convs(n) {
            return self.lanes_gemm(op, g, (a_channels, n, mode), inputs, out);
        }
        let m = g.pixels();
        let params = ConvParams {
            h: g.h as u32,
            w: g.w as u32,
            a_channels: a_channels as u32,
            n: n as u32,
            m: m as u32,
            k: (9 * a_channels) as u32,
            tiles_m: m.div_ceil(CONV_TILE) as u32,
            tiles_n: n.div_ceil(CONV_TILE) as u32,
            mode,
            split_len: 0,
            splits: 0,
            _pad: 0,
        };
        let pipeline = self.pipeline("conv", "forward", shaders::conv_source)?;
        self.dispatch(
            op,
            &pipeline,
            &[
                bind(0, inputs[0]),
                bind(1, inputs[1]),
                bind(2, inputs[2]),
                bind(3, out),
            ],
            4,
            bytemuck::bytes_of(&params),
            params.tiles_m as u64 * params.tiles_n as u64,
        )
    }

    /// One dispatch of a shaders/layers.wgsl kernel over `len` output elements, with exactly the
    /// bindings the entry point uses.
    fn layer(
        &self,
        entry: &'static str,
        inputs: &[(u32, &GpuTensor)],
        outputs: &[(u32, &GpuTensor)],
        mut params: LayerParams,
        len: usize,
    ) -> Result<()> {
        check_u32(entry, len)?;
        let pipeline = self.pipeline("layers", entry, shaders::layers_source)?;
        let (workgroups, row_invocations) = self.grid(len as u64);
        params.len = len as u32;
        params.row_invocations = row_invocations;
        let bindings: Vec<Binding<'_>> = inputs
            .iter()
            .chain(outputs)
            .map(|(index, t)| bind(*index, t))
            .collect();
        self.dispatch(
            entry,
            &pipeline,
            &bindings,
            6,
            bytemuck::bytes_of(&params),
            workgroups,
        )
    }

    /// out[j] = Σ_s partial[s, j] over `params.splits` splits of length `params.k` (the reduction reads
    /// the length from the GEMM's k field).
    /// Copy of `src` (mode 2) or the input gradient's rearranged kernel (mode 3) with room for a
    /// whole uniform window past any aligned start inside it.
    fn lanes_stage(
        &self,
        op: &'static str,
        src: &GpuTensor,
        mode: u32,
        (a_channels, n): (usize, usize),
    ) -> Result<GpuTensor> {
        let len = src.len();
        let floats = len.next_multiple_of(LANES_WINDOW_ALIGN) + LANES_WINDOW;
        check_u32(op, floats)?;
        self.check_size(op, 4 * floats as u64)?;
        let staged = Tensor::new(
            vec![floats],
            Dtype::F32,
            self.pool.take(
                4 * floats as u64,
                wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::UNIFORM,
                op,
            ),
        );
        let params = LaneConvParams {
            a_channels: a_channels as u32,
            n: n as u32,
            mode,
            len: len as u32,
            ..Zeroable::zeroed()
        };
        let pipeline = self.pipeline("conv_lanes", "stage", shaders::conv_lanes_source)?;
        self.dispatch(
            "conv_lanes stage",
            &pipeline,
            &[bind(0, src), bind(3, &staged)],
            4,
            bytemuck::bytes_of(&params),
            (len as u64).div_ceil(LANES as u64),
        )?;
        Ok(staged)
    }

    /// The reduction of a shaders/conv_lanes.wgsl kernel in chunks whose rows of the shared operand
    /// (`n` floats each) fit one uniform window: one dispatch per chunk, each after the first adding
    /// to `out`.
    fn lanes_chunks(
        &self,
        entry: &'static str,
        staged: &GpuTensor,
        bindings: &[Binding<'_>],
        mut params: LaneConvParams,
        rows: usize,
        workgroups: u64,
    ) -> Result<()> {
        let n = params.n as usize;
        let per_chunk = lanes_rows_per_window(n);
        let pipeline = self.pipeline("conv_lanes", entry, shaders::conv_lanes_source)?;
        for begin in (0..rows).step_by(per_chunk) {
            let base = begin * n / LANES_WINDOW_ALIGN * LANES_WINDOW_ALIGN;
            params.chunk_begin = begin as u32;
            params.chunk_end = (begin + per_chunk).min(rows) as u32;
            params.window_base = base as u32;
            let mut all = bindings.to_vec();
            all.push(Binding {
                index: 1,
                buffer: staged.storage.buffer(),
                offset: 4 * base as u64,
                size: 4 * LANES_WINDOW as u64,
            });
            self.dispatch(
                entry,
                &pipeline,
                &all,
                4,
                bytemuck::bytes_of(&params),
                workgroups,
            )?;
        }
        Ok(())
    }

    /// The forward (mode 0) or input gradient (mode 1) on shaders/conv_lanes.wgsl.
    fn lanes_gemm(
        &self,
        op: &'static str,
        g: &ConvGeometry,
        (a_channels, n, mode): (usize, usize, u32),
        inputs: [&GpuTensor; 3],
        out: &GpuTensor,
    ) -> Result<()> {
        let m = g.pixels();
        let k = 9 * a_channels;
        let staged = self.lanes_stage(op, inputs[1], 2 + mode, (a_channels, n))?;
        let row_blocks = m.div_ceil(LANES);
        let params = LaneConvParams {
            h: g.h as u32,
            w: g.w as u32,
            a_channels: a_channels as u32,
            n: n as u32,
            m: m as u32,
            k: k as u32,
            row_blocks: row_blocks as u32,
            mode,
            ..Zeroable::zeroed()
        };
        self.lanes_chunks(
            "gemm_pixels",
            &staged,
            &[bind(0, inputs[0]), bind(2, inputs[2]), bind(3, out)],
            params,
            k,
            (row_blocks * n.div_ceil(LANE_COLUMNS)) as u64,
        )
    }

    /// The kernel gradient on shaders/conv_lanes.wgsl, summed over the pixels in chunks.
    fn lanes_weight_grad(
        &self,
        op: &'static str,
        g: &ConvGeometry,
        x: &GpuTensor,
        grad_out: &GpuTensor,
        grad_kernel: &GpuTensor,
    ) -> Result<()> {
        let k = 9 * g.cin;
        let staged = self.lanes_stage(op, grad_out, 2, (g.cin, g.cout))?;
        let row_blocks = k.div_ceil(LANES);
        let params = LaneConvParams {
            h: g.h as u32,
            w: g.w as u32,
            a_channels: g.cin as u32,
            n: g.cout as u32,
            m: g.pixels() as u32,
            k: k as u32,
            row_blocks: row_blocks as u32,
            ..Zeroable::zeroed()
        };
        self.lanes_chunks(
            "weight_grad_rows",
            &staged,
            // The bias binding is unused here; x stands in for it.
            &[bind(0, x), bind(2, x), bind(3, grad_kernel)],
            params,
            g.pixels(),
            (row_blocks * g.cout.div_ceil(LANE_COLUMNS)) as u64,
        )
    }

    fn conv_reduce(&self, partial: &GpuTensor, out: &GpuTensor, params: ConvParams) -> Result<()> {
        let pipeline = self.pipeline("conv", "reduce_splits", shaders::conv_source)?;
        self.dispatch(
            "conv reduce_splits",
            &pipeline,
            &[bind(0, partial), bind(3, out)],
            4,
            bytemuck::bytes_of(&params),
            (params.k as u64).div_ceil(ELEMENTWISE_WORKGROUP_SIZE),
        )
    }

    /// One dispatch of a shaders/loss.wgsl per-element kernel over `len` elements.
    fn loss_kernel(
        &self,
        entry: &'static str,
        inputs: &[&GpuTensor],
        scale: f32,
        out: &GpuTensor,
        len: usize,
    ) -> Result<()> {
        check_u32(entry, len)?;
        let pipeline = self.pipeline("loss", entry, shaders::loss_source)?;
        let (workgroups, row_invocations) = self.grid(len as u64);
        let params = LossParams {
            len: len as u32,
            row_invocations,
            scale,
            pad: 0,
        };
        let mut bindings: Vec<Binding<'_>> = inputs
            .iter()
            .enumerate()
            .map(|(i, t)| bind(i as u32, t))
            .collect();
        bindings.push(bind(2, out));
        self.dispatch(
            entry,
            &pipeline,
            &bindings,
            3,
            bytemuck::bytes_of(&params),
            workgroups,
        )
    }

    /// One level of the tree sum: `len` values of x into ceil(len / (4 WORKGROUP_SIZE)) partial sums.
    fn sum_level(&self, x: &GpuTensor, out: &GpuTensor, len: usize) -> Result<()> {
        check_u32("sum", len)?;
        let pipeline = self.pipeline("loss", "sum_level", shaders::loss_source)?;
        let workgroups = out.len() as u64;
        let max_x = self.limits.max_compute_workgroups_per_dimension as u64;
        let params = LossParams {
            len: len as u32,
            row_invocations: (workgroups.min(max_x) * ELEMENTWISE_WORKGROUP_SIZE) as u32,
            scale: 1.0,
            pad: 0,
        };
        let bindings = [bind(0, x), bind(2, out)];
        self.dispatch(
            "sum_level",
            &pipeline,
            &bindings,
            3,
            bytemuck::bytes_of(&params),
            workgroups,
        )
    }

    fn binary(&self, op: BinaryOp, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
        let geometry = BinaryGeometry::of(op, a, b)?;
        let out = self.alloc(op.name(), a.shape(), Dtype::C64)?;
        check_u32(op.name(), geometry.len)?;
        self.elementwise(op.name(), &[(0, a), (1, b)], geometry.b_len, 1.0, &out)?;
        Ok(out)
    }

    fn real(&self, op: RealOp, a: &GpuTensor) -> Result<GpuTensor> {
        require_complex(op.name(), a)?;
        check_u32(op.name(), a.len())?;
        let out = self.alloc(op.name(), a.shape(), Dtype::F32)?;
        self.elementwise(op.name(), &[(0, a)], 1, 1.0, &out)?;
        Ok(out)
    }
}

/// Tensor `t` at storage binding `index`.
fn bind(index: u32, t: &GpuTensor) -> Binding<'_> {
    Binding {
        index,
        buffer: t.storage.buffer(),
        offset: 0,
        size: binding_size(t),
    }
}

/// Rows of `n` floats of the shared operand that one uniform window holds from any aligned start.
fn lanes_rows_per_window(n: usize) -> usize {
    (LANES_WINDOW - LANES_WINDOW_ALIGN - LANES_WINDOW_SLACK) / n
}

/// Whether the adapter's limits allow the uniform windows of shaders/conv_lanes.wgsl.
fn lane_convs_fit(limits: &wgpu::Limits) -> bool {
    limits.max_uniform_buffer_binding_size as usize >= 4 * LANES_WINDOW
        && limits.min_uniform_buffer_offset_alignment as usize <= 4 * LANES_WINDOW_ALIGN
}

/// Bytes a kernel may touch: the tensor rounded up to 16 bytes (the copy kernel moves vec4s), never
/// past the pooled buffer; at least 16 so that empty tensors still bind.
fn binding_size(t: &GpuTensor) -> u64 {
    (t.size_bytes().div_ceil(16) * 16)
        .max(16)
        .min(t.storage.buffer().size())
}

fn check_u32(op: &'static str, len: usize) -> Result<()> {
    if len > u32::MAX as usize {
        return Err(KernelError::Shape {
            op,
            expected: "fewer than 2^32 elements".into(),
            found: vec![len],
        });
    }
    Ok(())
}

impl Backend for GpuBackend {
    type Storage = PooledBuffer;
    type PendingRead = PendingRead;

    fn kind(&self) -> BackendKind {
        BackendKind::Gpu
    }

    fn describe(&self) -> String {
        format!(
            "{} ({}, {:?}, driver {} {})",
            self.info.name,
            context::backend_name(self.info.backend),
            self.info.device_type,
            self.info.driver,
            self.info.driver_info
        )
    }

    fn upload_c64(&self, shape: &[usize], data: &[Complex32]) -> Result<GpuTensor> {
        check_host_len(shape, data.len())?;
        self.upload_bytes(shape, Dtype::C64, bytemuck::cast_slice(data))
    }

    fn upload_f32(&self, shape: &[usize], data: &[f32]) -> Result<GpuTensor> {
        check_host_len(shape, data.len())?;
        self.upload_bytes(shape, Dtype::F32, bytemuck::cast_slice(data))
    }

    fn download_c64(&self, t: &GpuTensor) -> Result<Vec<Complex32>> {
        require_dtype("download_c64", t, Dtype::C64)?;
        Ok(bytemuck::pod_collect_to_vec(&self.download_bytes(t)?))
    }

    fn download_f32(&self, t: &GpuTensor) -> Result<Vec<f32>> {
        require_dtype("download_f32", t, Dtype::F32)?;
        Ok(bytemuck::pod_collect_to_vec(&self.download_bytes(t)?))
    }

    fn start_read_f32(&self, t: &GpuTensor) -> Result<PendingRead> {
        require_dtype("start_read_f32", t, Dtype::F32)?;
        self.start_read_bytes(t)
    }

    fn finish_read_f32(&self, pending: PendingRead) -> Result<Vec<f32>> {
        Ok(bytemuck::pod_collect_to_vec(
            &self.finish_read_bytes(pending)?,
        ))
    }

    fn fft2(&self, x: &GpuTensor, direction: FftDirection, shift: FftShift) -> Result<GpuTensor> {
        let geometry = FftGeometry::of(x)?;
        let n = geometry.n;
        let rows = FftPass {
            n,
            columns: false,
            direction,
            shift_in: shift.input,
            shift_out: shift.output,
        };
        let columns = FftPass {
            columns: true,
            ..rows
        };
        let tmp = self.alloc("fft2", x.shape(), Dtype::C64)?;
        let out = self.alloc("fft2", x.shape(), Dtype::C64)?;
        let twiddles = self.twiddles(n);
        let workgroups = (geometry.batch * n / rows.lines_per_workgroup()) as u64;
        let params = FftParams {
            workgroups: workgroups as u32,
            pad: [0; 3],
        };
        for (pass, src, dst) in [(rows, x, &tmp), (columns, &tmp, &out)] {
            let name = pass.name();
            let pipeline = self.pipeline(&name, "main", || pass.source())?;
            let bindings = [
                bind(0, src),
                bind(1, dst),
                Binding {
                    index: 2,
                    buffer: &twiddles,
                    offset: 0,
                    size: twiddles.size(),
                },
            ];
            self.dispatch(
                &name,
                &pipeline,
                &bindings,
                3,
                bytemuck::bytes_of(&params),
                workgroups,
            )?;
        }
        Ok(out)
    }

    fn mul(&self, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
        self.binary(BinaryOp::Mul, a, b)
    }

    fn mul_conj(&self, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
        self.binary(BinaryOp::MulConj, a, b)
    }

    fn add(&self, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
        self.binary(BinaryOp::Add, a, b)
    }

    fn scale(&self, a: &GpuTensor, s: f32) -> Result<GpuTensor> {
        let out = self.alloc("scale", a.shape(), a.dtype())?;
        match a.dtype() {
            Dtype::C64 => self.elementwise("scale", &[(0, a)], 1, s, &out)?,
            Dtype::F32 => self.elementwise("scale_real", &[(5, a)], 1, s, &out)?,
        }
        Ok(out)
    }

    fn modulus_grad(&self, a: &GpuTensor, g: &GpuTensor, s: f32) -> Result<GpuTensor> {
        ComplexRealPair::of("modulus_grad", a, g)?;
        let out = self.alloc("modulus_grad", a.shape(), Dtype::C64)?;
        self.elementwise("modulus_grad", &[(0, a), (5, g)], 1, s, &out)?;
        Ok(out)
    }

    fn div_real(&self, a: &GpuTensor, d: &GpuTensor) -> Result<GpuTensor> {
        ComplexRealPair::of("div_real", a, d)?;
        let out = self.alloc("div_real", a.shape(), Dtype::C64)?;
        self.elementwise("div_real", &[(0, a), (5, d)], 1, 1.0, &out)?;
        Ok(out)
    }

    fn offset(&self, a: &GpuTensor, s: f32) -> Result<GpuTensor> {
        require_dtype("offset", a, Dtype::F32)?;
        let out = self.alloc("offset", a.shape(), Dtype::F32)?;
        self.elementwise("offset_real", &[(5, a)], 1, s, &out)?;
        Ok(out)
    }

    fn abs(&self, a: &GpuTensor) -> Result<GpuTensor> {
        self.real(RealOp::Abs, a)
    }

    fn abs2(&self, a: &GpuTensor) -> Result<GpuTensor> {
        self.real(RealOp::Abs2, a)
    }

    fn translate(
        &self,
        x: &GpuTensor,
        shifts: &GpuTensor,
        direction: TranslateDirection,
    ) -> Result<GpuTensor> {
        let geometry = TranslateGeometry::of(x, shifts)?;
        check_u32("translate", x.len())?;
        let complex = x.dtype() == Dtype::C64;
        let entry = match (direction, complex) {
            (TranslateDirection::Forward, true) => "forward_complex",
            (TranslateDirection::Forward, false) => "forward_real",
            (TranslateDirection::Backward, true) => "backward_complex",
            (TranslateDirection::Backward, false) => "backward_real",
        };
        let out = self.alloc("translate", x.shape(), x.dtype())?;
        let pipeline = self.pipeline("translate", entry, shaders::translate_source)?;
        let len = x.len() as u64;
        let (workgroups, row_invocations) = self.grid(len);
        let params = TranslateParams {
            h: geometry.h as u32,
            w: geometry.w as u32,
            len: len as u32,
            row_invocations,
        };
        let (src_index, out_index) = if complex { (0, 3) } else { (1, 4) };
        let bindings = [bind(src_index, x), bind(2, shifts), bind(out_index, &out)];
        self.dispatch(
            entry,
            &pipeline,
            &bindings,
            5,
            bytemuck::bytes_of(&params),
            workgroups,
        )?;
        Ok(out)
    }

    fn recenter(&self, x: &GpuTensor, out_h: usize, out_w: usize) -> Result<GpuTensor> {
        let g = RecenterGeometry::of(x, out_h, out_w)?;
        let out = self.alloc("recenter", &g.out_shape(x.shape()), x.dtype())?;
        let params = LayoutParams::new([g.in_h, g.in_w, g.out_h, g.out_w], out.len(), 1);
        self.layout("recenter", x, &out, params)?;
        Ok(out)
    }

    fn sum_channels(&self, x: &GpuTensor) -> Result<GpuTensor> {
        let g = ChannelGeometry::of_sum(x)?;
        let mut shape = x.shape().to_vec();
        shape.remove(shape.len() - 3);
        let out = self.alloc("sum_channels", &shape, x.dtype())?;
        let params = LayoutParams::new([g.h, g.w, g.h, g.w], out.len(), g.channels);
        self.layout("sum_channels", x, &out, params)?;
        Ok(out)
    }

    fn repeat_channels(&self, x: &GpuTensor, channels: usize) -> Result<GpuTensor> {
        let g = ChannelGeometry::of_repeat(x, channels)?;
        let mut shape = x.shape().to_vec();
        shape.insert(shape.len() - 2, channels);
        let out = self.alloc("repeat_channels", &shape, x.dtype())?;
        let params = LayoutParams::new([g.h, g.w, g.h, g.w], out.len(), channels);
        self.layout("repeat_channels", x, &out, params)?;
        Ok(out)
    }

    fn loss_terms(
        &self,
        kind: LossKind,
        pred: &GpuTensor,
        target: &GpuTensor,
    ) -> Result<GpuTensor> {
        check_pair("loss_terms", pred, target)?;
        let out = self.alloc("loss_terms", pred.shape(), Dtype::F32)?;
        self.loss_kernel(kind.terms_entry(), &[pred, target], 1.0, &out, out.len())?;
        Ok(out)
    }

    fn loss_grad(
        &self,
        kind: LossKind,
        pred: &GpuTensor,
        target: &GpuTensor,
        scale: f32,
    ) -> Result<GpuTensor> {
        check_pair("loss_grad", pred, target)?;
        let out = self.alloc("loss_grad", pred.shape(), Dtype::F32)?;
        self.loss_kernel(kind.grad_entry(), &[pred, target], scale, &out, out.len())?;
        Ok(out)
    }

    fn sum(&self, x: &GpuTensor) -> Result<GpuTensor> {
        require_dtype("sum", x, Dtype::F32)?;
        let per_group = (ELEMENTWISE_WORKGROUP_SIZE * 4) as usize;
        let mut len = x.len();
        let mut level = self.alloc("sum", &[len.div_ceil(per_group).max(1)], Dtype::F32)?;
        self.sum_level(x, &level, len)?;
        len = level.len();
        while len > 1 {
            let next = self.alloc("sum", &[len.div_ceil(per_group)], Dtype::F32)?;
            self.sum_level(&level, &next, len)?;
            level = next;
            len = level.len();
        }
        let out = self.alloc("sum", &[], Dtype::F32)?;
        self.recorder().encoder().copy_buffer_to_buffer(
            level.storage.buffer(),
            0,
            out.storage.buffer(),
            0,
            4,
        );
        Ok(out)
    }

    fn conv2d(&self, x: &GpuTensor, kernel: &GpuTensor, bias: &GpuTensor) -> Result<GpuTensor> {
        let g = ConvGeometry::of("conv2d", x, kernel)?;
        g.check_bias("conv2d", bias)?;
        let out = self.alloc("conv2d", &[g.batch, g.h, g.w, g.cout], Dtype::F32)?;
        self.conv_gemm("conv2d", &g, (g.cin, g.cout, 0), [x, kernel, bias], &out)?;
        Ok(out)
    }

    fn conv2d_backward_input(&self, grad_out: &GpuTensor, kernel: &GpuTensor) -> Result<GpuTensor> {
        const OP: &str = "conv2d_backward_input";
        let g = ConvGeometry::of_backward_input(OP, grad_out, kernel)?;
        let out = self.alloc(OP, &[g.batch, g.h, g.w, g.cin], Dtype::F32)?;
        // The bias binding is unused in this mode; the kernel stands in for it.
        self.conv_gemm(OP, &g, (g.cout, g.cin, 1), [grad_out, kernel, kernel], &out)?;
        Ok(out)
    }

    fn conv2d_backward_params(
        &self,
        x: &GpuTensor,
        grad_out: &GpuTensor,
    ) -> Result<ConvParamGrads<PooledBuffer>> {
        const OP: &str = "conv2d_backward_params";
        require_dtype(OP, grad_out, Dtype::F32)?;
        let cout = *grad_out.shape().last().unwrap_or(&0);
        let g = ConvGeometry::of_params(OP, x, cout)?;
        g.check_grad_out(OP, grad_out)?;
        let m = g.pixels();
        let k = 9 * g.cin;
        let splits = m.div_ceil(CONV_SPLIT_PIXELS);
        check_u32(OP, splits * k * g.cout)?;
        let mut params = ConvParams {
            h: g.h as u32,
            w: g.w as u32,
            a_channels: g.cin as u32,
            n: g.cout as u32,
            m: m as u32,
            k: k as u32,
            tiles_m: k.div_ceil(CONV_TILE) as u32,
            tiles_n: g.cout.div_ceil(CONV_TILE) as u32,
            mode: 0,
            split_len: CONV_SPLIT_PIXELS as u32,
            splits: splits as u32,
            _pad: 0,
        };
        let grad_kernel = self.alloc(OP, &[3, 3, g.cin, g.cout], Dtype::F32)?;
        if self.uses_lane_convs(g.cout) {
            self.lanes_weight_grad(OP, &g, x, grad_out, &grad_kernel)?;
        } else {
            let partial_kernel = self.alloc(OP, &[splits, k, g.cout], Dtype::F32)?;
            let pipeline = self.pipeline("conv", "weight_grad", shaders::conv_source)?;
            let tiles = params.tiles_m as u64 * params.tiles_n as u64 * splits as u64;
            self.dispatch(
                "conv weight_grad",
                &pipeline,
                &[bind(0, x), bind(1, grad_out), bind(3, &partial_kernel)],
                4,
                bytemuck::bytes_of(&params),
                tiles,
            )?;
            let reduce_kernel = ConvParams {
                k: (k * g.cout) as u32,
                ..params
            };
            self.conv_reduce(&partial_kernel, &grad_kernel, reduce_kernel)?;
        }

        let partial_bias = self.alloc(OP, &[splits, g.cout], Dtype::F32)?;
        let pipeline = self.pipeline("conv", "bias_grad", shaders::conv_source)?;
        self.dispatch(
            "conv bias_grad",
            &pipeline,
            &[bind(0, grad_out), bind(3, &partial_bias)],
            4,
            bytemuck::bytes_of(&params),
            ((splits * g.cout) as u64).div_ceil(ELEMENTWISE_WORKGROUP_SIZE),
        )?;
        let grad_bias = self.alloc(OP, &[g.cout], Dtype::F32)?;
        params.k = g.cout as u32;
        self.conv_reduce(&partial_bias, &grad_bias, params)?;
        Ok((grad_kernel, grad_bias))
    }

    fn activation(&self, kind: Activation, x: &GpuTensor) -> Result<GpuTensor> {
        require_dtype("activation", x, Dtype::F32)?;
        let out = self.alloc("activation", x.shape(), Dtype::F32)?;
        let params = LayerParams {
            scale: kind.scale(),
            ..LayerParams::default()
        };
        self.layer(
            kind.forward_entry(),
            &[(0, x)],
            &[(2, &out)],
            params,
            out.len(),
        )?;
        Ok(out)
    }

    fn activation_backward(
        &self,
        kind: Activation,
        x: &GpuTensor,
        grad_out: &GpuTensor,
    ) -> Result<GpuTensor> {
        check_same("activation_backward", x, grad_out)?;
        let out = self.alloc("activation_backward", x.shape(), Dtype::F32)?;
        let params = LayerParams {
            scale: kind.scale(),
            ..LayerParams::default()
        };
        self.layer(
            kind.backward_entry(),
            &[(0, x), (1, grad_out)],
            &[(2, &out)],
            params,
            out.len(),
        )?;
        Ok(out)
    }

    fn max_pool2(&self, x: &GpuTensor) -> Result<GpuTensor> {
        let d = Nhwc::of_even("max_pool2", x)?;
        let out = self.alloc("max_pool2", &[d.b, d.h / 2, d.w / 2, d.c], Dtype::F32)?;
        self.layer(
            "max_pool",
            &[(0, x)],
            &[(2, &out)],
            LayerParams::of(&d),
            out.len(),
        )?;
        Ok(out)
    }

    fn max_pool2_backward(&self, x: &GpuTensor, grad_out: &GpuTensor) -> Result<GpuTensor> {
        const OP: &str = "max_pool2_backward";
        let d = Nhwc::of_even(OP, x)?;
        require_shape(OP, grad_out, &[d.b, d.h / 2, d.w / 2, d.c])?;
        let out = self.alloc(OP, x.shape(), Dtype::F32)?;
        self.layer(
            "max_pool_backward",
            &[(0, x), (1, grad_out)],
            &[(2, &out)],
            LayerParams::of(&d),
            out.len(),
        )?;
        Ok(out)
    }

    fn upsample2(&self, x: &GpuTensor) -> Result<GpuTensor> {
        let d = Nhwc::of("upsample2", x)?;
        let out = self.alloc("upsample2", &[d.b, 2 * d.h, 2 * d.w, d.c], Dtype::F32)?;
        self.layer(
            "upsample",
            &[(0, x)],
            &[(2, &out)],
            LayerParams::of(&d),
            out.len(),
        )?;
        Ok(out)
    }

    fn upsample2_backward(&self, grad_out: &GpuTensor) -> Result<GpuTensor> {
        let g = Nhwc::of_even("upsample2_backward", grad_out)?;
        let d = Nhwc {
            h: g.h / 2,
            w: g.w / 2,
            ..g
        };
        let out = self.alloc("upsample2_backward", &d.shape(), Dtype::F32)?;
        self.layer(
            "upsample_backward",
            &[(0, grad_out)],
            &[(2, &out)],
            LayerParams::of(&d),
            out.len(),
        )?;
        Ok(out)
    }

    fn slice_channels(&self, x: &GpuTensor, start: usize, count: usize) -> Result<GpuTensor> {
        let d = Nhwc::of("slice_channels", x)?;
        check_slice("slice_channels", &d, start, count)?;
        let out = self.alloc("slice_channels", &[d.b, d.h, d.w, count], Dtype::F32)?;
        let params = LayerParams {
            c_out: count as u32,
            start: start as u32,
            ..LayerParams::of(&d)
        };
        self.layer("slice_channels", &[(0, x)], &[(2, &out)], params, out.len())?;
        Ok(out)
    }

    fn slice_channels_backward(
        &self,
        grad_out: &GpuTensor,
        start: usize,
        channels: usize,
    ) -> Result<GpuTensor> {
        let g = Nhwc::of("slice_channels_backward", grad_out)?;
        let d = Nhwc { c: channels, ..g };
        check_slice("slice_channels_backward", &d, start, g.c)?;
        let out = self.alloc("slice_channels_backward", &d.shape(), Dtype::F32)?;
        let params = LayerParams {
            c_out: g.c as u32,
            start: start as u32,
            ..LayerParams::of(&d)
        };
        self.layer(
            "slice_channels_backward",
            &[(0, grad_out)],
            &[(2, &out)],
            params,
            out.len(),
        )?;
        Ok(out)
    }

    fn pad_spatial(&self, x: &GpuTensor, pad: usize) -> Result<GpuTensor> {
        let d = Nhwc::of("pad_spatial", x)?;
        let out = self.alloc(
            "pad_spatial",
            &[d.b, d.h + 2 * pad, d.w + 2 * pad, d.c],
            Dtype::F32,
        )?;
        let params = LayerParams {
            pad: pad as u32,
            ..LayerParams::of(&d)
        };
        self.layer("pad_spatial", &[(0, x)], &[(2, &out)], params, out.len())?;
        Ok(out)
    }

    fn crop_spatial(&self, x: &GpuTensor, pad: usize) -> Result<GpuTensor> {
        let d = crop_geometry(x, pad)?;
        let out = self.alloc("crop_spatial", &d.shape(), Dtype::F32)?;
        let params = LayerParams {
            pad: pad as u32,
            ..LayerParams::of(&d)
        };
        self.layer("crop_spatial", &[(0, x)], &[(2, &out)], params, out.len())?;
        Ok(out)
    }

    fn combine_complex(&self, amp: &GpuTensor, phase: &GpuTensor) -> Result<GpuTensor> {
        let d = Nhwc::of("combine_complex", amp)?;
        check_same("combine_complex", amp, phase)?;
        let out = self.alloc("combine_complex", &d.channels_first_shape(), Dtype::C64)?;
        self.layer(
            "combine_complex",
            &[(0, amp), (1, phase)],
            &[(5, &out)],
            LayerParams::of(&d),
            out.len(),
        )?;
        Ok(out)
    }

    fn combine_complex_backward(
        &self,
        amp: &GpuTensor,
        phase: &GpuTensor,
        grad: &GpuTensor,
    ) -> Result<ConvParamGrads<PooledBuffer>> {
        const OP: &str = "combine_complex_backward";
        let d = Nhwc::of(OP, amp)?;
        check_same(OP, amp, phase)?;
        require_dtype(OP, grad, Dtype::C64)?;
        require_shape(OP, grad, &d.channels_first_shape())?;
        let grad_amp = self.alloc(OP, &d.shape(), Dtype::F32)?;
        let grad_phase = self.alloc(OP, &d.shape(), Dtype::F32)?;
        self.layer(
            "combine_complex_backward",
            &[(0, amp), (1, phase), (4, grad)],
            &[(2, &grad_amp), (3, &grad_phase)],
            LayerParams::of(&d),
            grad_amp.len(),
        )?;
        Ok((grad_amp, grad_phase))
    }

    fn to_channels_last(&self, x: &GpuTensor) -> Result<GpuTensor> {
        let d = Nhwc::of_channels_first("to_channels_last", x)?;
        let out = self.alloc("to_channels_last", &d.shape(), Dtype::F32)?;
        self.layer(
            "to_channels_last",
            &[(0, x)],
            &[(2, &out)],
            LayerParams::of(&d),
            out.len(),
        )?;
        Ok(out)
    }

    fn to_channels_first(&self, x: &GpuTensor) -> Result<GpuTensor> {
        let d = Nhwc::of("to_channels_first", x)?;
        let out = self.alloc("to_channels_first", &d.channels_first_shape(), Dtype::F32)?;
        self.layer(
            "to_channels_first",
            &[(0, x)],
            &[(2, &out)],
            LayerParams::of(&d),
            out.len(),
        )?;
        Ok(out)
    }

    fn add_real(&self, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
        check_same("add_real", a, b)?;
        let out = self.alloc("add_real", a.shape(), Dtype::F32)?;
        self.layer(
            "add_real",
            &[(0, a), (1, b)],
            &[(2, &out)],
            LayerParams::default(),
            out.len(),
        )?;
        Ok(out)
    }

    fn fma_chain(&self, lanes: usize, iterations: u32) -> Result<GpuTensor> {
        check_u32("fma_chain", lanes)?;
        let out = self.alloc("fma_chain", &[lanes], Dtype::F32)?;
        let pipeline = self.pipeline("peak", "fma_chain", shaders::peak_source)?;
        let (workgroups, row_invocations) = self.grid(lanes as u64);
        let params = PeakParams {
            lanes: lanes as u32,
            row_invocations,
            iterations,
            _pad: 0,
        };
        self.dispatch(
            "fma_chain",
            &pipeline,
            &[bind(0, &out)],
            1,
            bytemuck::bytes_of(&params),
            workgroups,
        )?;
        Ok(out)
    }

    fn adam_update(
        &self,
        config: &AdamConfig,
        step: u64,
        param: &mut GpuTensor,
        grad: &GpuTensor,
        m: &mut GpuTensor,
        v: &mut GpuTensor,
    ) -> Result<()> {
        check_adam(param, grad, m, v)?;
        check_u32("adam_update", param.len())?;
        let pipeline = self.pipeline("optim", "adam", shaders::optim_source)?;
        let (workgroups, row_invocations) = self.grid(param.len() as u64);
        let params = AdamParams {
            len: param.len() as u32,
            row_invocations,
            alpha: config.alpha(step) as f32,
            beta1: config.beta1 as f32,
            beta2: config.beta2 as f32,
            epsilon: config.epsilon as f32,
            _pad: [0; 2],
        };
        self.dispatch(
            "adam",
            &pipeline,
            &[bind(0, grad), bind(1, param), bind(2, m), bind(3, v)],
            4,
            bytemuck::bytes_of(&params),
            workgroups,
        )
    }

    fn copy(&self, a: &GpuTensor) -> Result<GpuTensor> {
        let out = self.alloc("copy", a.shape(), a.dtype())?;
        let vec4s = a.size_bytes().div_ceil(16);
        check_u32("copy", vec4s as usize)?;
        let pipeline = self.pipeline("copy", "main", shaders::copy_source)?;
        let (workgroups, row_invocations) = self.elementwise_grid(vec4s);
        let params = CopyParams {
            len: vec4s as u32,
            row_invocations,
            pad: [0; 2],
        };
        let bindings = [bind(0, a), bind(1, &out)];
        self.dispatch(
            "copy",
            &pipeline,
            &bindings,
            2,
            bytemuck::bytes_of(&params),
            workgroups,
        )?;
        Ok(out)
    }

    fn synchronize(&self) -> Result<()> {
        self.flush()?;
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(drop)
            .map_err(|e| KernelError::Readback(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_kernel_is_an_error_naming_it() {
        let Some(gpu) = crate::testing::shared_gpu() else {
            return;
        };
        let broken = || "@compute @workgroup_size(64) fn main() { let x: u32 = 1.5; }".to_string();
        let err = gpu.pipeline("broken_kernel", "main", broken).unwrap_err();
        assert!(
            matches!(&err, KernelError::Gpu { kernel, .. } if kernel.contains("broken_kernel")),
            "{err}"
        );
        // The device is still usable afterwards.
        let t = gpu.upload_f32(&[3], &[1.0, 2.0, 3.0]).unwrap();
        assert_eq!(
            gpu.download_f32(&gpu.copy(&t).unwrap()).unwrap(),
            vec![1.0, 2.0, 3.0]
        );
    }
}
