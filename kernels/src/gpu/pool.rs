//! Size-classed pool of storage buffers. Buffers come back to the pool when their tensor drops and are
//! handed out again to later ops. Reuse needs no fence: commands execute in the order they are recorded
//! and submitted, so a later op that overwrites a recycled buffer runs after every op that read it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub const STORAGE_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

const MIN_CLASS_BYTES: u64 = 256;

pub struct BufferPool {
    device: wgpu::Device,
    max_buffer: u64,
    free: Mutex<HashMap<(u64, wgpu::BufferUsages), Vec<wgpu::Buffer>>>,
}

/// A buffer on loan from the pool; it goes back on drop.
pub struct PooledBuffer {
    buffer: Option<wgpu::Buffer>,
    usage: wgpu::BufferUsages,
    pool: Arc<BufferPool>,
}

impl std::fmt::Debug for PooledBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PooledBuffer({} bytes)", self.buffer().size())
    }
}

impl PooledBuffer {
    pub fn buffer(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("present until drop")
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let Some(buffer) = self.buffer.take() {
            let key = (buffer.size(), self.usage);
            let mut free = self.pool.free.lock().unwrap_or_else(|e| e.into_inner());
            free.entry(key).or_default().push(buffer);
        }
    }
}

/// The size class of a request: the next power of two, at least 256 bytes; past `max_buffer`, the
/// request rounded up to 256 bytes.
pub fn size_class(bytes: u64, max_buffer: u64) -> u64 {
    let class = bytes.max(MIN_CLASS_BYTES).next_power_of_two();
    if class <= max_buffer {
        class
    } else {
        bytes.div_ceil(MIN_CLASS_BYTES) * MIN_CLASS_BYTES
    }
}

impl BufferPool {
    pub fn new(device: wgpu::Device, max_buffer: u64) -> Arc<Self> {
        Arc::new(Self {
            device,
            max_buffer,
            free: Mutex::new(HashMap::new()),
        })
    }

    pub fn take(
        self: &Arc<Self>,
        bytes: u64,
        usage: wgpu::BufferUsages,
        label: &str,
    ) -> PooledBuffer {
        let class = size_class(bytes, self.max_buffer);
        let recycled = {
            let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
            free.get_mut(&(class, usage)).and_then(Vec::pop)
        };
        let buffer = recycled.unwrap_or_else(|| {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: class,
                usage,
                mapped_at_creation: false,
            })
        });
        PooledBuffer {
            buffer: Some(buffer),
            usage,
            pool: self.clone(),
        }
    }

    /// Bytes held by buffers waiting in the pool.
    pub fn idle_bytes(&self) -> u64 {
        let free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        free.iter()
            .map(|((class, _), v)| class * v.len() as u64)
            .sum()
    }

    /// Release every idle buffer to the driver.
    pub fn trim(&self) {
        self.free.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}
