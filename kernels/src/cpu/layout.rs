use std::ops::Add;

use crate::ops::layout::{ChannelGeometry, RecenterGeometry};

/// Centred pad/crop of each image, exactly as shaders/layout.wgsl.
pub(super) fn recenter<T: Copy + Default>(x: &[T], g: RecenterGeometry) -> Vec<T> {
    let oy = (g.in_h as i64 - g.out_h as i64) / 2;
    let ox = (g.in_w as i64 - g.out_w as i64) / 2;
    let mut out = vec![T::default(); g.images * g.out_h * g.out_w];
    for b in 0..g.images {
        for y in 0..g.out_h {
            for x_ in 0..g.out_w {
                let (sy, sx) = (y as i64 + oy, x_ as i64 + ox);
                if sy >= 0 && sx >= 0 && (sy as usize) < g.in_h && (sx as usize) < g.in_w {
                    out[(b * g.out_h + y) * g.out_w + x_] =
                        x[(b * g.in_h + sy as usize) * g.in_w + sx as usize];
                }
            }
        }
    }
    out
}

pub(super) fn sum_channels<T: Copy + Default + Add<Output = T>>(
    x: &[T],
    g: ChannelGeometry,
) -> Vec<T> {
    let hw = g.h * g.w;
    let mut out = vec![T::default(); g.groups * hw];
    for b in 0..g.groups {
        for c in 0..g.channels {
            let src = &x[(b * g.channels + c) * hw..(b * g.channels + c + 1) * hw];
            for (o, &v) in out[b * hw..(b + 1) * hw].iter_mut().zip(src) {
                *o = *o + v;
            }
        }
    }
    out
}

pub(super) fn repeat_channels<T: Copy>(x: &[T], g: ChannelGeometry) -> Vec<T> {
    let hw = g.h * g.w;
    let mut out = Vec::with_capacity(g.groups * g.channels * hw);
    for b in 0..g.groups {
        for _ in 0..g.channels {
            out.extend_from_slice(&x[b * hw..(b + 1) * hw]);
        }
    }
    out
}
