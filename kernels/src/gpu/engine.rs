//! The engine of the wgpu backend: device, pipeline cache, buffer pool, recording, dispatch and the
//! grid arithmetic every op family shares. The op families (their Params, bindings and dispatch code)
//! live in the sibling modules, and `backend.rs` maps the [`Backend`](crate::Backend) trait onto them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use wgpu::util::DeviceExt;

use super::context;
use super::conv::{lane_convs_fit, lanes_rows_per_window};
use super::pool::{BufferPool, PooledBuffer, STORAGE_USAGE};
use super::recorder::{Binding, Recorder, RecorderStats};
use super::shaders::{Shader, ELEMENTS_PER_INVOCATION, ELEMENTWISE_WORKGROUP_SIZE};
use super::GpuSelection;
use crate::{Dtype, KernelError, Result, Tensor};

pub type GpuTensor = Tensor<PooledBuffer>;

pub struct GpuBackend {
    pub(super) device: wgpu::Device,
    pub(super) info: wgpu::AdapterInfo,
    pub(super) index: usize,
    pub(super) limits: wgpu::Limits,
    pub(super) features: wgpu::Features,
    pub(super) pool: Arc<BufferPool>,
    pub(super) pipelines: Mutex<HashMap<String, Arc<wgpu::ComputePipeline>>>,
    pub(super) twiddles: Mutex<HashMap<usize, Arc<wgpu::Buffer>>>,
    pub(super) recorder: Mutex<Recorder>,
    /// Which convolution kernels run: shaders/conv_lanes.wgsl on CPU-type adapters, conv.wgsl elsewhere.
    pub(super) lane_convs: AtomicBool,
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

/// A read-back in flight (see [`Backend::start_read_f32`](crate::Backend::start_read_f32)); None for an empty tensor.
pub struct PendingRead(Option<InFlight>);

struct InFlight {
    staging: wgpu::Buffer,
    index: Option<wgpu::SubmissionIndex>,
    receiver: std::sync::mpsc::Receiver<std::result::Result<(), wgpu::BufferAsyncError>>,
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
        Self::from_adapter(index, adapter)
    }

    /// Open `adapter`, which `--adapter INDEX` names as `index`.
    pub fn from_adapter(index: usize, adapter: wgpu::Adapter) -> Result<Self> {
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
    pub(super) fn uses_lane_convs(&self, n: usize) -> bool {
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

    pub(super) fn recorder(&self) -> MutexGuard<'_, Recorder> {
        self.recorder.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The pipeline of `entry` in a row of the shader table.
    pub(super) fn kernel(
        &self,
        shader: &Shader,
        entry: &str,
    ) -> Result<Arc<wgpu::ComputePipeline>> {
        self.pipeline(shader.name, entry, shader.source)
    }

    /// The pipeline of `entry` in the module `source` builds, cached under `name`.
    pub(super) fn pipeline(
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
    pub(super) fn twiddles(&self, n: usize) -> Arc<wgpu::Buffer> {
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

    pub(super) fn check_size(&self, op: &'static str, bytes: u64) -> Result<()> {
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

    pub(super) fn alloc(
        &self,
        op: &'static str,
        shape: &[usize],
        dtype: Dtype,
    ) -> Result<GpuTensor> {
        let bytes = (shape.iter().product::<usize>() * dtype.size_bytes()) as u64;
        self.check_size(op, bytes)?;
        Ok(Tensor::new(
            shape.to_vec(),
            dtype,
            self.pool.take(bytes, STORAGE_USAGE, op),
        ))
    }

    pub(super) fn upload_bytes(
        &self,
        shape: &[usize],
        dtype: Dtype,
        bytes: &[u8],
    ) -> Result<GpuTensor> {
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

    pub(super) fn download_bytes(&self, t: &GpuTensor) -> Result<Vec<u8>> {
        self.finish_read_bytes(self.start_read_bytes(t)?)
    }

    /// Record a copy of `t` into a mapped-on-completion staging buffer and submit everything recorded,
    /// without waiting.
    pub(super) fn start_read_bytes(&self, t: &GpuTensor) -> Result<PendingRead> {
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
    pub(super) fn finish_read_bytes(&self, pending: PendingRead) -> Result<Vec<u8>> {
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

    pub(super) fn dispatch(
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
    pub(super) fn grid(&self, invocations: u64) -> (u64, u32) {
        let workgroups = invocations.max(1).div_ceil(ELEMENTWISE_WORKGROUP_SIZE);
        let max_x = self.limits.max_compute_workgroups_per_dimension as u64;
        let row_invocations = (workgroups.min(max_x) * ELEMENTWISE_WORKGROUP_SIZE) as u32;
        (workgroups, row_invocations)
    }

    /// The grid for a strided kernel where each invocation handles ELEMENTS_PER_INVOCATION of `len`.
    pub(super) fn elementwise_grid(&self, len: u64) -> (u64, u32) {
        self.grid(len.div_ceil(ELEMENTS_PER_INVOCATION))
    }
}

/// Tensor `t` at storage binding `index`.
pub(super) fn bind(index: u32, t: &GpuTensor) -> Binding<'_> {
    Binding {
        index,
        buffer: t.storage.buffer(),
        offset: 0,
        size: binding_size(t),
    }
}

/// Bytes a kernel may touch: the tensor rounded up to 16 bytes (the copy kernel moves vec4s), never
/// past the pooled buffer; at least 16 so that empty tensors still bind.
fn binding_size(t: &GpuTensor) -> u64 {
    (t.size_bytes().div_ceil(16) * 16)
        .max(16)
        .min(t.storage.buffer().size())
}

pub(super) fn check_u32(op: &'static str, len: usize) -> Result<()> {
    if len > u32::MAX as usize {
        return Err(KernelError::Shape {
            op,
            expected: "fewer than 2^32 elements".into(),
            found: vec![len],
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Backend;

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
