//! The per-op profile behind `ptycho bench train --profile` and `ptycho bench infer`: [`Profiled`]
//! wraps a backend and times every call the unchanged training step or inference makes, each with its
//! work (FLOP for the convolutions from their shapes; bytes read and written for the rest). On a GPU
//! every call is followed by a synchronisation, so its time is the op's own (dispatch and wait
//! included) rather than its share of a pipelined submission; the profiled step is therefore slower
//! than the plain one, which the report gives beside it.
//!
//! [`Profile::table`] groups the calls: each convolution geometry (forward, input gradient, kernel
//! gradient) named by the layers that have it, and the other ops by family (activations, pooling and
//! upsampling, channel slicing and padding, the physics: merge and extraction, FFT, probe, modulus;
//! the loss; the optimizer; host transfers), with GFLOP/s or GB/s and the share of the step.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

use ptycho_kernels::ops::{
    fft, layers, loss, optim, ptycho, translate, BackendKind, ConvParamGrads,
};
use ptycho_kernels::{Backend, Complex32, Result, Tensor};

use crate::model::{Layer, Op};

/// One timed call.
#[derive(Clone, Debug)]
struct Call {
    op: &'static str,
    /// The convolution geometry "H×W cin→cout", empty for other ops.
    geometry: String,
    flops: f64,
    bytes: f64,
    seconds: f64,
}

/// A backend whose every call is timed.
pub struct Profiled<'a, B: Backend> {
    inner: &'a B,
    calls: Mutex<Vec<Call>>,
    sync: bool,
}

/// Bytes of what a call returns.
trait OutBytes {
    fn out_bytes(&self) -> u64;
}

impl<S> OutBytes for Tensor<S> {
    fn out_bytes(&self) -> u64 {
        self.size_bytes()
    }
}

impl<S> OutBytes for ConvParamGrads<S> {
    fn out_bytes(&self) -> u64 {
        self.0.size_bytes() + self.1.size_bytes()
    }
}

impl OutBytes for () {
    fn out_bytes(&self) -> u64 {
        0
    }
}

impl<T> OutBytes for Vec<T> {
    fn out_bytes(&self) -> u64 {
        std::mem::size_of_val(self.as_slice()) as u64
    }
}

/// "H×W cin→cout" of a convolution over `activations` (B, H, W, ·) with `kernel` (3, 3, cin, cout),
/// and its FLOP (2 per multiply-add; the same for the forward and both gradients).
fn conv_geometry(activations: &[usize], kernel: &[usize]) -> (String, f64) {
    let (b, h, w) = (activations[0], activations[1], activations[2]);
    let (cin, cout) = (kernel[2], kernel[3]);
    (
        format!("{h}x{w} {cin}->{cout}"),
        2.0 * 9.0 * (b * h * w * cin * cout) as f64,
    )
}

impl<'a, B: Backend> Profiled<'a, B> {
    pub fn new(inner: &'a B) -> Self {
        Self {
            inner,
            calls: Mutex::new(Vec::new()),
            sync: inner.kind() != BackendKind::Cpu,
        }
    }

    fn timed<T: OutBytes>(
        &self,
        op: &'static str,
        geometry: String,
        flops: f64,
        in_bytes: u64,
        f: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let start = Instant::now();
        let out = f()?;
        if self.sync {
            self.inner.synchronize()?;
        }
        let seconds = start.elapsed().as_secs_f64();
        let bytes = (in_bytes + out.out_bytes()) as f64;
        self.calls.lock().expect("not poisoned").push(Call {
            op,
            geometry,
            flops,
            bytes,
            seconds,
        });
        Ok(out)
    }

    fn plain<T: OutBytes>(
        &self,
        op: &'static str,
        inputs: &[&Tensor<B::Storage>],
        f: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let in_bytes = inputs.iter().map(|t| t.size_bytes()).sum();
        self.timed(op, String::new(), 0.0, in_bytes, f)
    }

    /// A convolution pass over `activations` (B, H, W, ·) with a kernel of shape `kernel`.
    fn convolution<T: OutBytes>(
        &self,
        op: &'static str,
        (activations, kernel): (&[usize], &[usize]),
        inputs: &[&Tensor<B::Storage>],
        f: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let (geometry, flops) = conv_geometry(activations, kernel);
        let in_bytes = inputs.iter().map(|t| t.size_bytes()).sum();
        self.timed(op, geometry, flops, in_bytes, f)
    }

    /// The calls so far, and forget them.
    pub fn take(&self) -> Profile {
        Profile {
            calls: std::mem::take(&mut *self.calls.lock().expect("not poisoned")),
        }
    }
}

/// The family an op is reported under (convolutions are reported per geometry instead).
fn family(op: &str) -> &'static str {
    match op {
        "activation" | "activation_backward" => "activations and their gradients",
        "max_pool2"
        | "max_pool2_backward"
        | "max_pool2_backward_relu"
        | "upsample2"
        | "upsample2_backward" => "pooling, upsampling and their gradients",
        "slice_channels"
        | "slice_channels_backward"
        | "pad_spatial"
        | "crop_spatial"
        | "add_real"
        | "copy"
        | "scale" => "channel slices, padding, sums, copies",
        "translate" | "recenter" | "sum_channels" | "repeat_channels" | "div_real" | "offset"
        | "extract_patches" | "scatter_patches" => "physics: merge and extraction",
        "fft2" => "physics: FFT",
        "mul"
        | "mul_conj"
        | "abs"
        | "abs2"
        | "modulus_grad"
        | "combine_complex"
        | "combine_complex_backward"
        | "add"
        | "pattern_dot"
        | "modulus_project" => "physics: probe, modulus, complex object",
        "to_channels_last" | "to_channels_first" => "layout changes",
        "loss_terms" | "loss_grad" | "sum" => "loss",
        "adam_update" => "optimizer (Adam)",
        _ => "host transfers",
    }
}

/// One row of the profile, per training step (or per inference).
#[derive(Clone, Debug, Serialize)]
pub struct ProfileRow {
    /// "conv forward", "conv input grad", "conv kernel grad", or "other".
    pub part: &'static str,
    /// The layers of a convolution geometry, or the op family.
    pub what: String,
    pub calls: f64,
    pub ms: f64,
    pub share: f64,
    pub gflops_per_s: Option<f64>,
    pub gb_per_s: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ProfileTable {
    /// The profiled step (or inference), ms.
    pub step_ms: f64,
    pub rows: Vec<ProfileRow>,
    /// The step's time outside any backend call (host work between ops), ms.
    pub host_ms: f64,
}

/// A group's running totals: part, calls, seconds, FLOP, bytes.
#[derive(Default)]
struct Totals {
    part: &'static str,
    calls: f64,
    seconds: f64,
    flops: f64,
    bytes: f64,
}

/// What one profiled run recorded.
pub struct Profile {
    calls: Vec<Call>,
}

impl Profile {
    /// The calls grouped into rows, per `repeats` (the profiled steps), as shares of `seconds` (their
    /// total time); convolution geometries are named by the layers in `layers` that have them.
    pub fn table(&self, repeats: usize, seconds: f64, layers: &[Layer]) -> ProfileTable {
        let names = |geometry: &str| -> String {
            let found: Vec<&str> = layers
                .iter()
                .filter_map(|l| match l.op {
                    Op::Conv { cin, cout, .. }
                        if format!("{}x{} {cin}->{cout}", l.output[0], l.output[1]) == geometry =>
                    {
                        Some(l.name.as_str())
                    }
                    _ => None,
                })
                .collect();
            if found.is_empty() {
                geometry.to_string()
            } else {
                format!("{geometry}: {}", found.join(", "))
            }
        };
        let mut groups: BTreeMap<(u8, String), Totals> = BTreeMap::new();
        for c in &self.calls {
            let (order, part, what) = match c.op {
                "conv forward" => (0, c.op, names(&c.geometry)),
                "conv input grad" => (1, c.op, names(&c.geometry)),
                "conv kernel grad" => (2, c.op, names(&c.geometry)),
                op => (3, "other", family(op).to_string()),
            };
            let t = groups.entry((order, what)).or_default();
            t.part = part;
            t.calls += 1.0;
            t.seconds += c.seconds;
            t.flops += c.flops;
            t.bytes += c.bytes;
        }
        let per = repeats.max(1) as f64;
        let mut rows: Vec<ProfileRow> = groups
            .into_iter()
            .map(|((_, what), t)| ProfileRow {
                part: t.part,
                what,
                calls: t.calls / per,
                ms: 1e3 * t.seconds / per,
                share: t.seconds / seconds,
                gflops_per_s: (t.flops > 0.0).then(|| t.flops / t.seconds / 1e9),
                gb_per_s: (t.flops == 0.0 && t.bytes > 0.0).then(|| t.bytes / t.seconds / 1e9),
            })
            .collect();
        rows.sort_by(|a, b| {
            (a.part == "other")
                .cmp(&(b.part == "other"))
                .then(b.ms.total_cmp(&a.ms))
        });
        let ops: f64 = self.calls.iter().map(|c| c.seconds).sum();
        ProfileTable {
            step_ms: 1e3 * seconds / per,
            rows,
            host_ms: 1e3 * (seconds - ops).max(0.0) / per,
        }
    }
}

impl ProfileTable {
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "  {:<17} {:<58} {:>6} {:>9} {:>6} {:>12}\n",
            "part", "layers / ops", "calls", "ms", "share", "rate"
        );
        for r in &self.rows {
            let rate = match (r.gflops_per_s, r.gb_per_s) {
                (Some(f), _) => format!("{f:.1} GFLOP/s"),
                (_, Some(b)) => format!("{b:.2} GB/s"),
                _ => String::new(),
            };
            let what: String = r.what.chars().take(58).collect();
            out += &format!(
                "  {:<17} {:<58} {:>6.0} {:>9.2} {:>5.1}% {:>12}\n",
                r.part,
                what,
                r.calls,
                r.ms,
                100.0 * r.share,
                rate
            );
        }
        out += &format!(
            "  {:<17} {:<58} {:>6} {:>9.2} {:>5.1}%\n  total {:.2} ms\n",
            "host",
            "work between backend calls",
            "",
            self.host_ms,
            100.0 * self.host_ms / self.step_ms,
            self.step_ms
        );
        out
    }
}

/// Backend methods forwarded to the inner backend and timed by the bytes they move:
/// `name(arguments) -> output [the tensor arguments]`.
macro_rules! timed_by_bytes {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $out:ty [$($tensor:ident),*];)*) => {
        $(fn $name(&self, $($arg: $ty),*) -> Result<$out> {
            self.plain(stringify!($name), &[$($tensor),*], || self.inner.$name($($arg),*))
        })*
    };
}

impl<B: Backend> Backend for Profiled<'_, B> {
    type Storage = B::Storage;
    type PendingRead = B::PendingRead;

    timed_by_bytes! {
        download_c64(t: &Tensor<Self::Storage>) -> Vec<Complex32> [t];
        download_f32(t: &Tensor<Self::Storage>) -> Vec<f32> [t];
        fft2(x: &Tensor<Self::Storage>, direction: fft::FftDirection, shift: fft::FftShift) -> Tensor<Self::Storage> [x];
        mul(a: &Tensor<Self::Storage>, b: &Tensor<Self::Storage>) -> Tensor<Self::Storage> [a, b];
        mul_conj(a: &Tensor<Self::Storage>, b: &Tensor<Self::Storage>) -> Tensor<Self::Storage> [a, b];
        add(a: &Tensor<Self::Storage>, b: &Tensor<Self::Storage>) -> Tensor<Self::Storage> [a, b];
        scale(a: &Tensor<Self::Storage>, s: f32) -> Tensor<Self::Storage> [a];
        modulus_grad(a: &Tensor<Self::Storage>, g: &Tensor<Self::Storage>, s: f32) -> Tensor<Self::Storage> [a, g];
        div_real(a: &Tensor<Self::Storage>, d: &Tensor<Self::Storage>) -> Tensor<Self::Storage> [a, d];
        offset(a: &Tensor<Self::Storage>, s: f32) -> Tensor<Self::Storage> [a];
        abs(a: &Tensor<Self::Storage>) -> Tensor<Self::Storage> [a];
        abs2(a: &Tensor<Self::Storage>) -> Tensor<Self::Storage> [a];
        translate(x: &Tensor<Self::Storage>, shifts: &Tensor<Self::Storage>, direction: translate::TranslateDirection) -> Tensor<Self::Storage> [x, shifts];
        extract_patches(object: &Tensor<Self::Storage>, origins: &Tensor<Self::Storage>, n: usize) -> Tensor<Self::Storage> [object, origins];
        scatter_patches(patches: &Tensor<Self::Storage>, origins: &Tensor<Self::Storage>, table: &ptycho::PatchTable<Self::Storage>) -> Tensor<Self::Storage> [patches, origins];
        pattern_dot(a: &Tensor<Self::Storage>, b: &Tensor<Self::Storage>) -> Tensor<Self::Storage> [a, b];
        modulus_project(spectrum: &Tensor<Self::Storage>, amplitude: &Tensor<Self::Storage>) -> ConvParamGrads<Self::Storage> [spectrum, amplitude];
        recenter(x: &Tensor<Self::Storage>, out_h: usize, out_w: usize) -> Tensor<Self::Storage> [x];
        sum_channels(x: &Tensor<Self::Storage>) -> Tensor<Self::Storage> [x];
        repeat_channels(x: &Tensor<Self::Storage>, channels: usize) -> Tensor<Self::Storage> [x];
        loss_terms(kind: loss::LossKind, pred: &Tensor<Self::Storage>, target: &Tensor<Self::Storage>) -> Tensor<Self::Storage> [pred, target];
        loss_grad(kind: loss::LossKind, pred: &Tensor<Self::Storage>, target: &Tensor<Self::Storage>, scale: f32) -> Tensor<Self::Storage> [pred, target];
        sum(x: &Tensor<Self::Storage>) -> Tensor<Self::Storage> [x];
        activation(kind: layers::Activation, x: &Tensor<Self::Storage>) -> Tensor<Self::Storage> [x];
        activation_backward(kind: layers::Activation, x: &Tensor<Self::Storage>, grad_out: &Tensor<Self::Storage>) -> Tensor<Self::Storage> [x, grad_out];
        max_pool2(x: &Tensor<Self::Storage>) -> Tensor<Self::Storage> [x];
        max_pool2_backward(x: &Tensor<Self::Storage>, grad_out: &Tensor<Self::Storage>) -> Tensor<Self::Storage> [x, grad_out];
        max_pool2_backward_relu(x: &Tensor<Self::Storage>, grad_out: &Tensor<Self::Storage>) -> Tensor<Self::Storage> [x, grad_out];
        upsample2(x: &Tensor<Self::Storage>) -> Tensor<Self::Storage> [x];
        upsample2_backward(grad_out: &Tensor<Self::Storage>) -> Tensor<Self::Storage> [grad_out];
        slice_channels(x: &Tensor<Self::Storage>, start: usize, count: usize) -> Tensor<Self::Storage> [x];
        slice_channels_backward(grad_out: &Tensor<Self::Storage>, start: usize, channels: usize) -> Tensor<Self::Storage> [grad_out];
        pad_spatial(x: &Tensor<Self::Storage>, pad: usize) -> Tensor<Self::Storage> [x];
        crop_spatial(x: &Tensor<Self::Storage>, pad: usize) -> Tensor<Self::Storage> [x];
        combine_complex(amp: &Tensor<Self::Storage>, phase: &Tensor<Self::Storage>) -> Tensor<Self::Storage> [amp, phase];
        combine_complex_backward(amp: &Tensor<Self::Storage>, phase: &Tensor<Self::Storage>, grad: &Tensor<Self::Storage>) -> ConvParamGrads<Self::Storage> [amp, phase, grad];
        to_channels_last(x: &Tensor<Self::Storage>) -> Tensor<Self::Storage> [x];
        to_channels_first(x: &Tensor<Self::Storage>) -> Tensor<Self::Storage> [x];
        add_real(a: &Tensor<Self::Storage>, b: &Tensor<Self::Storage>) -> Tensor<Self::Storage> [a, b];
        copy(a: &Tensor<Self::Storage>) -> Tensor<Self::Storage> [a];
    }

    fn kind(&self) -> BackendKind {
        self.inner.kind()
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn upload_c64(&self, shape: &[usize], data: &[Complex32]) -> Result<Tensor<Self::Storage>> {
        self.timed("upload_c64", String::new(), 0.0, 0, || {
            self.inner.upload_c64(shape, data)
        })
    }

    fn upload_f32(&self, shape: &[usize], data: &[f32]) -> Result<Tensor<Self::Storage>> {
        self.timed("upload_f32", String::new(), 0.0, 0, || {
            self.inner.upload_f32(shape, data)
        })
    }

    fn start_read_f32(&self, t: &Tensor<Self::Storage>) -> Result<Self::PendingRead> {
        self.inner.start_read_f32(t)
    }

    fn finish_read_f32(&self, pending: Self::PendingRead) -> Result<Vec<f32>> {
        self.inner.finish_read_f32(pending)
    }

    fn conv2d(
        &self,
        x: &Tensor<Self::Storage>,
        kernel: &Tensor<Self::Storage>,
        bias: &Tensor<Self::Storage>,
    ) -> Result<Tensor<Self::Storage>> {
        let shapes = (x.shape(), kernel.shape());
        self.convolution("conv forward", shapes, &[x, kernel, bias], || {
            self.inner.conv2d(x, kernel, bias)
        })
    }

    fn conv2d_relu(
        &self,
        x: &Tensor<Self::Storage>,
        kernel: &Tensor<Self::Storage>,
        bias: &Tensor<Self::Storage>,
    ) -> Result<Tensor<Self::Storage>> {
        let shapes = (x.shape(), kernel.shape());
        self.convolution("conv forward", shapes, &[x, kernel, bias], || {
            self.inner.conv2d_relu(x, kernel, bias)
        })
    }

    fn conv2d_backward_input(
        &self,
        grad_out: &Tensor<Self::Storage>,
        kernel: &Tensor<Self::Storage>,
    ) -> Result<Tensor<Self::Storage>> {
        let shapes = (grad_out.shape(), kernel.shape());
        self.convolution("conv input grad", shapes, &[grad_out, kernel], || {
            self.inner.conv2d_backward_input(grad_out, kernel)
        })
    }

    fn conv2d_backward_input_relu(
        &self,
        grad_out: &Tensor<Self::Storage>,
        kernel: &Tensor<Self::Storage>,
        relu_out: &Tensor<Self::Storage>,
    ) -> Result<Tensor<Self::Storage>> {
        let shapes = (grad_out.shape(), kernel.shape());
        let inputs = [grad_out, kernel, relu_out];
        self.convolution("conv input grad", shapes, &inputs, || {
            self.inner
                .conv2d_backward_input_relu(grad_out, kernel, relu_out)
        })
    }

    fn conv2d_backward_params(
        &self,
        x: &Tensor<Self::Storage>,
        grad_out: &Tensor<Self::Storage>,
    ) -> Result<ConvParamGrads<Self::Storage>> {
        let kernel = [3, 3, x.shape()[3], grad_out.shape()[3]];
        self.convolution(
            "conv kernel grad",
            (x.shape(), &kernel),
            &[x, grad_out],
            || self.inner.conv2d_backward_params(x, grad_out),
        )
    }

    fn fma_chain(&self, lanes: usize, iterations: u32) -> Result<Tensor<Self::Storage>> {
        self.inner.fma_chain(lanes, iterations)
    }

    fn adam_update(
        &self,
        config: &optim::AdamConfig,
        step: u64,
        param: &mut Tensor<Self::Storage>,
        grad: &Tensor<Self::Storage>,
        m: &mut Tensor<Self::Storage>,
        v: &mut Tensor<Self::Storage>,
    ) -> Result<()> {
        let in_bytes =
            2 * (param.size_bytes() + m.size_bytes() + v.size_bytes()) + grad.size_bytes();
        self.timed("adam_update", String::new(), 0.0, in_bytes, || {
            self.inner.adam_update(config, step, param, grad, m, v)
        })
    }

    fn synchronize(&self) -> Result<()> {
        self.inner.synchronize()
    }
}
