//! Recording: ops append compute passes to one pending command encoder; the encoder is submitted when a
//! result is read back, when [`Recorder::flush`] is called, or after `MAX_DISPATCHES_PER_SUBMISSION`.

use std::sync::Arc;

use super::pool::{BufferPool, PooledBuffer};

/// Dispatches per submission before an automatic flush: bounds the uniform memory and the latency of
/// one command buffer.
const MAX_DISPATCHES_PER_SUBMISSION: usize = 4096;

/// Bytes of one uniform arena chunk.
const ARENA_BYTES: u64 = 64 * 1024;

/// A storage binding of one dispatch: the first `size` bytes of `buffer` at binding `index`.
#[derive(Clone, Copy)]
pub struct Binding<'a> {
    pub index: u32,
    pub buffer: &'a wgpu::Buffer,
    pub offset: u64,
    pub size: u64,
}

#[derive(Default)]
pub struct Recording {
    encoder: Option<wgpu::CommandEncoder>,
    /// Uniform chunks written in this recording; returned to the pool when it is submitted.
    arena: Vec<PooledBuffer>,
    arena_offset: u64,
    dispatches: usize,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct RecorderStats {
    pub submissions: u64,
    pub dispatches: u64,
}

pub struct Recorder {
    device: wgpu::Device,
    queue: wgpu::Queue,
    pool: Arc<BufferPool>,
    uniform_alignment: u64,
    max_workgroups_per_dimension: u32,
    pub(super) recording: Recording,
    pub(super) stats: RecorderStats,
}

const UNIFORM_USAGE: wgpu::BufferUsages =
    wgpu::BufferUsages::UNIFORM.union(wgpu::BufferUsages::COPY_DST);

impl Recorder {
    pub fn new(
        device: wgpu::Device,
        queue: wgpu::Queue,
        pool: Arc<BufferPool>,
        limits: &wgpu::Limits,
    ) -> Self {
        Self {
            device,
            queue,
            pool,
            uniform_alignment: limits.min_uniform_buffer_offset_alignment as u64,
            max_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
            recording: Recording::default(),
            stats: RecorderStats::default(),
        }
    }

    pub fn encoder(&mut self) -> &mut wgpu::CommandEncoder {
        let device = &self.device;
        self.recording.encoder.get_or_insert_with(|| {
            device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("ptycho"),
            })
        })
    }

    /// Place `params` in this recording's uniform arena; returns (chunk index, offset).
    fn push_params(&mut self, params: &[u8]) -> (usize, u64) {
        let size = params.len() as u64;
        let aligned =
            self.recording.arena_offset.div_ceil(self.uniform_alignment) * self.uniform_alignment;
        if self.recording.arena.is_empty() || aligned + size > ARENA_BYTES {
            let chunk = self.pool.take(ARENA_BYTES, UNIFORM_USAGE, "params arena");
            self.recording.arena.push(chunk);
            self.recording.arena_offset = 0;
        } else {
            self.recording.arena_offset = aligned;
        }
        let chunk = self.recording.arena.len() - 1;
        let offset = self.recording.arena_offset;
        // The arena is private to this recording and queue writes land before its submission runs.
        self.queue
            .write_buffer(self.recording.arena[chunk].buffer(), offset, params);
        self.recording.arena_offset += size;
        (chunk, offset)
    }

    /// Record one compute dispatch of `workgroups` workgroups, laid out on a 2-D grid when they exceed the
    /// per-dimension limit. Kernels linearise the grid and skip workgroups past the end.
    pub fn dispatch(
        &mut self,
        label: &str,
        pipeline: &wgpu::ComputePipeline,
        bindings: &[Binding<'_>],
        params_binding: u32,
        params: &[u8],
        workgroups: u32,
    ) {
        if self.recording.dispatches >= MAX_DISPATCHES_PER_SUBMISSION {
            self.submit();
        }
        let (chunk, offset) = self.push_params(params);
        let mut entries: Vec<wgpu::BindGroupEntry<'_>> = bindings
            .iter()
            .map(|b| wgpu::BindGroupEntry {
                binding: b.index,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: b.buffer,
                    offset: b.offset,
                    size: wgpu::BufferSize::new(b.size),
                }),
            })
            .collect();
        entries.push(wgpu::BindGroupEntry {
            binding: params_binding,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: self.recording.arena[chunk].buffer(),
                offset,
                size: wgpu::BufferSize::new(params.len() as u64),
            }),
        });
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(label),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        let (x, y) = grid(workgroups, self.max_workgroups_per_dimension);
        let encoder = self.encoder();
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(label),
            timestamp_writes: None,
        });
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(x, y, 1);
        drop(pass);
        self.recording.dispatches += 1;
        self.stats.dispatches += 1;
    }

    /// Submit everything recorded so far (nothing when nothing was recorded).
    pub fn submit(&mut self) -> Option<wgpu::SubmissionIndex> {
        let recording = std::mem::take(&mut self.recording);
        let encoder = recording.encoder?;
        let index = self.queue.submit([encoder.finish()]);
        self.stats.submissions += 1;
        // Arena chunks go back to the pool: anything recorded later is ordered after this submission.
        drop(recording.arena);
        Some(index)
    }
}

/// Split `workgroups` over (x, y) with x at most `max_x`.
pub fn grid(workgroups: u32, max_x: u32) -> (u32, u32) {
    let w = workgroups.max(1);
    if w <= max_x {
        (w, 1)
    } else {
        (max_x, w.div_ceil(max_x))
    }
}

#[cfg(test)]
mod tests {
    use super::grid;

    #[test]
    fn grid_covers_every_workgroup_within_the_limit() {
        assert_eq!(grid(0, 65535), (1, 1));
        assert_eq!(grid(10, 65535), (10, 1));
        assert_eq!(grid(65535, 65535), (65535, 1));
        assert_eq!(grid(65536, 65535), (65535, 2));
        let (x, y) = grid(1_000_000, 65535);
        assert!(
            x <= 65535
                && x as u64 * y as u64 >= 1_000_000
                && (x as u64 * (y as u64 - 1)) < 1_000_000
        );
    }
}
