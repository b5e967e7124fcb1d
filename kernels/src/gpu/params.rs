//! The uniform parameter blocks of the WGSL kernels, laid out byte for byte as the shaders declare
//! them (`#[repr(C)]`, 16-byte multiples).

use bytemuck::{Pod, Zeroable};

use crate::ops::layers::Nhwc;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct LaneConvParams {
    pub(super) h: u32,
    pub(super) w: u32,
    pub(super) a_channels: u32,
    pub(super) n: u32,
    pub(super) m: u32,
    pub(super) k: u32,
    pub(super) row_blocks: u32,
    pub(super) mode: u32,
    pub(super) chunk_begin: u32,
    pub(super) chunk_end: u32,
    pub(super) window_base: u32,
    pub(super) len: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct FftParams {
    pub(super) workgroups: u32,
    pub(super) pad: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct ElementwiseParams {
    pub(super) len: u32,
    pub(super) b_len: u32,
    pub(super) row_invocations: u32,
    pub(super) scale: f32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct ConvParams {
    pub(super) h: u32,
    pub(super) w: u32,
    pub(super) a_channels: u32,
    pub(super) n: u32,
    pub(super) m: u32,
    pub(super) k: u32,
    pub(super) tiles_m: u32,
    pub(super) tiles_n: u32,
    pub(super) mode: u32,
    pub(super) split_len: u32,
    pub(super) splits: u32,
    pub(super) _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Default, Pod, Zeroable)]
pub(super) struct LayerParams {
    pub(super) len: u32,
    pub(super) row_invocations: u32,
    pub(super) h: u32,
    pub(super) w: u32,
    pub(super) c: u32,
    pub(super) c_out: u32,
    pub(super) start: u32,
    pub(super) pad: u32,
    pub(super) scale: f32,
    pub(super) _pad: [u32; 3],
}

impl LayerParams {
    pub(super) fn of(d: &Nhwc) -> Self {
        Self {
            h: d.h as u32,
            w: d.w as u32,
            c: d.c as u32,
            ..Self::default()
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct PeakParams {
    pub(super) lanes: u32,
    pub(super) row_invocations: u32,
    pub(super) iterations: u32,
    pub(super) _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct AdamParams {
    pub(super) len: u32,
    pub(super) row_invocations: u32,
    pub(super) alpha: f32,
    pub(super) beta1: f32,
    pub(super) beta2: f32,
    pub(super) epsilon: f32,
    pub(super) _pad: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct TranslateParams {
    pub(super) h: u32,
    pub(super) w: u32,
    pub(super) len: u32,
    pub(super) row_invocations: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct LayoutParams {
    pub(super) in_h: u32,
    pub(super) in_w: u32,
    pub(super) out_h: u32,
    pub(super) out_w: u32,
    pub(super) len: u32,
    pub(super) channels: u32,
    pub(super) row_invocations: u32,
    pub(super) pad: u32,
}

impl LayoutParams {
    /// [in_h, in_w, out_h, out_w], output elements, channels; the grid is filled in at dispatch.
    pub(super) fn new(sizes: [usize; 4], len: usize, channels: usize) -> Self {
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
pub(super) struct LossParams {
    pub(super) len: u32,
    pub(super) row_invocations: u32,
    pub(super) scale: f32,
    pub(super) pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct CopyParams {
    pub(super) len: u32,
    pub(super) row_invocations: u32,
    pub(super) pad: [u32; 2],
}
