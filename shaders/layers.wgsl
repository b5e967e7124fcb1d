// The network's layers other than the convolution (kernels/src/ops/layers.rs): activations and their
// gradients, 2 x 2 max pooling, nearest 2x upsampling, channel slices, spatial zero padding, the complex
// combination amp·e^{iφ}, and the NCHW <-> NHWC transposes. One invocation per output element; every
// backward pass is a gather (the pooling gradient recomputes the window's first maximum), so no atomics.
// The host prepends WORKGROUP_SIZE.

struct Params {
    len: u32,
    row_invocations: u32,
    // Spatial size and channels of the tensor named in each entry point's comment.
    h: u32,
    w: u32,
    c: u32,
    c_out: u32,
    start: u32,
    pad: u32,
    scale: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
};

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> out2: array<f32>;
@group(0) @binding(4) var<storage, read> z: array<vec2<f32>>;
@group(0) @binding(5) var<storage, read_write> out_complex: array<vec2<f32>>;
@group(0) @binding(6) var<uniform> params: Params;

fn index(gid: vec3<u32>) -> u32 {
    return gid.x + gid.y * params.row_invocations;
}

// (x, y, b, channel) of flat element i of an NHWC tensor whose images are w x h with params.c channels.
fn nhwc(i: u32, w: u32, h: u32) -> vec4<u32> {
    let p = i / params.c;
    return vec4<u32>(p % w, (p / w) % h, p / (w * h), i % params.c);
}

fn sigmoid(v: f32) -> f32 {
    if v >= 0.0 {
        return 1.0 / (1.0 + exp(-v));
    }
    let e = exp(v);
    return e / (1.0 + e);
}

fn softplus(v: f32) -> f32 {
    return max(v, 0.0) + log(1.0 + exp(-abs(v)));
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn relu(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i < params.len {
        out[i] = max(x[i], 0.0);
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn sigmoid_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i < params.len {
        out[i] = sigmoid(x[i]);
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn scaled_tanh(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i < params.len {
        out[i] = params.scale * tanh(x[i]);
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn swish(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i < params.len {
        out[i] = x[i] * sigmoid(x[i]);
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn softplus_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i < params.len {
        out[i] = softplus(x[i]);
    }
}

// Gradients from the activation's input x and the output gradient y.
@compute @workgroup_size(WORKGROUP_SIZE)
fn relu_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i < params.len {
        out[i] = select(0.0, y[i], x[i] > 0.0);
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn sigmoid_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i < params.len {
        let s = sigmoid(x[i]);
        out[i] = y[i] * s * (1.0 - s);
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn scaled_tanh_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i < params.len {
        let t = tanh(x[i]);
        out[i] = y[i] * params.scale * (1.0 - t * t);
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn swish_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i < params.len {
        let s = sigmoid(x[i]);
        out[i] = y[i] * (s + x[i] * s * (1.0 - s));
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn softplus_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i < params.len {
        out[i] = y[i] * sigmoid(x[i]);
    }
}

// (h, w, c): the input x (B, H, W, C); out is (B, H/2, W/2, C).
@compute @workgroup_size(WORKGROUP_SIZE)
fn max_pool(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i >= params.len {
        return;
    }
    let ow = params.w / 2u;
    let oh = params.h / 2u;
    let e = nhwc(i, ow, oh);
    let ch = e.w;
    let ox = e.x;
    let oy = e.y;
    let b = e.z;
    let base = ((b * params.h + 2u * oy) * params.w + 2u * ox) * params.c + ch;
    let row = params.w * params.c;
    out[i] = max(max(x[base], x[base + params.c]), max(x[base + row], x[base + row + params.c]));
}

// (h, w, c): the pooling input x; y is the output gradient (B, H/2, W/2, C); out is (B, H, W, C). The
// gradient goes to the first maximum of each window in row-major order.
@compute @workgroup_size(WORKGROUP_SIZE)
fn max_pool_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i >= params.len {
        return;
    }
    let e = nhwc(i, params.w, params.h);
    let ch = e.w;
    let xx = e.x;
    let yy = e.y;
    let b = e.z;
    let base = ((b * params.h + (yy & ~1u)) * params.w + (xx & ~1u)) * params.c + ch;
    let row = params.w * params.c;
    let v = array<f32, 4>(x[base], x[base + params.c], x[base + row], x[base + row + params.c]);
    var best = 0u;
    for (var k = 1u; k < 4u; k++) {
        if v[k] > v[best] {
            best = k;
        }
    }
    var g = 0.0;
    if best == (yy % 2u) * 2u + xx % 2u {
        let ow = params.w / 2u;
        let oh = params.h / 2u;
        g = y[((b * oh + yy / 2u) * ow + xx / 2u) * params.c + ch];
    }
    out[i] = g;
}

// (h, w, c): the input x (B, H, W, C); out is (B, 2H, 2W, C), out[2y + a, 2x + b] = x[y, x].
@compute @workgroup_size(WORKGROUP_SIZE)
fn upsample(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i >= params.len {
        return;
    }
    let e = nhwc(i, 2u * params.w, 2u * params.h);
    let ch = e.w;
    let xx = e.x;
    let yy = e.y;
    let b = e.z;
    out[i] = x[((b * params.h + yy / 2u) * params.w + xx / 2u) * params.c + ch];
}

// (h, w, c): the upsampling input's size; x is the output gradient (B, 2H, 2W, C); out (B, H, W, C) sums
// each 2 x 2 block.
@compute @workgroup_size(WORKGROUP_SIZE)
fn upsample_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i >= params.len {
        return;
    }
    let e = nhwc(i, params.w, params.h);
    let ch = e.w;
    let xx = e.x;
    let yy = e.y;
    let b = e.z;
    let w2 = 2u * params.w;
    let base = ((b * 2u * params.h + 2u * yy) * w2 + 2u * xx) * params.c + ch;
    let row = w2 * params.c;
    out[i] = x[base] + x[base + params.c] + x[base + row] + x[base + row + params.c];
}

// c: channels of x; c_out of them from `start` go to out.
@compute @workgroup_size(WORKGROUP_SIZE)
fn slice_channels(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i < params.len {
        out[i] = x[(i / params.c_out) * params.c + params.start + i % params.c_out];
    }
}

// c: channels of out; x is the slice's gradient with c_out channels.
@compute @workgroup_size(WORKGROUP_SIZE)
fn slice_channels_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i >= params.len {
        return;
    }
    let j = i % params.c;
    var g = 0.0;
    if j >= params.start && j < params.start + params.c_out {
        g = x[(i / params.c) * params.c_out + j - params.start];
    }
    out[i] = g;
}

// (h, w, c): the input x; out is (B, H + 2 pad, W + 2 pad, C), zero outside.
@compute @workgroup_size(WORKGROUP_SIZE)
fn pad_spatial(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i >= params.len {
        return;
    }
    let oh = params.h + 2u * params.pad;
    let ow = params.w + 2u * params.pad;
    let e = nhwc(i, ow, oh);
    let ch = e.w;
    let xx = i32(e.x) - i32(params.pad);
    let yy = i32(e.y) - i32(params.pad);
    let b = e.z;
    var v = 0.0;
    if xx >= 0 && yy >= 0 && xx < i32(params.w) && yy < i32(params.h) {
        v = x[((b * params.h + u32(yy)) * params.w + u32(xx)) * params.c + ch];
    }
    out[i] = v;
}

// (h, w, c): the output (B, H, W, C) cut from x (B, H + 2 pad, W + 2 pad, C).
@compute @workgroup_size(WORKGROUP_SIZE)
fn crop_spatial(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i >= params.len {
        return;
    }
    let ih = params.h + 2u * params.pad;
    let iw = params.w + 2u * params.pad;
    let e = nhwc(i, params.w, params.h);
    let ch = e.w;
    let xx = e.x;
    let yy = e.y;
    let b = e.z;
    out[i] = x[((b * ih + yy + params.pad) * iw + xx + params.pad) * params.c + ch];
}

// (h, w, c): amp x and phase y (B, H, W, C); out_complex (B, C, H, W) = amp·(cos φ, sin φ).
@compute @workgroup_size(WORKGROUP_SIZE)
fn combine_complex(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i >= params.len {
        return;
    }
    let xx = i % params.w;
    let yy = (i / params.w) % params.h;
    let ch = (i / (params.w * params.h)) % params.c;
    let b = i / (params.w * params.h * params.c);
    let j = ((b * params.h + yy) * params.w + xx) * params.c + ch;
    out_complex[i] = x[j] * vec2<f32>(cos(y[j]), sin(y[j]));
}

// (h, w, c): amp x, phase y (B, H, W, C) and the complex gradient z (B, C, H, W); out = ∂L/∂amp and
// out2 = ∂L/∂φ, both (B, H, W, C).
@compute @workgroup_size(WORKGROUP_SIZE)
fn combine_complex_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i >= params.len {
        return;
    }
    let e = nhwc(i, params.w, params.h);
    let ch = e.w;
    let xx = e.x;
    let yy = e.y;
    let b = e.z;
    let g = z[((b * params.c + ch) * params.h + yy) * params.w + xx];
    let cs = cos(y[i]);
    let sn = sin(y[i]);
    out[i] = g.x * cs + g.y * sn;
    out2[i] = x[i] * (g.y * cs - g.x * sn);
}

// (h, w, c): x (B, C, H, W) -> out (B, H, W, C).
@compute @workgroup_size(WORKGROUP_SIZE)
fn to_channels_last(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i >= params.len {
        return;
    }
    let e = nhwc(i, params.w, params.h);
    let ch = e.w;
    let xx = e.x;
    let yy = e.y;
    let b = e.z;
    out[i] = x[((b * params.c + ch) * params.h + yy) * params.w + xx];
}

// (h, w, c): x (B, H, W, C) -> out (B, C, H, W).
@compute @workgroup_size(WORKGROUP_SIZE)
fn to_channels_first(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i >= params.len {
        return;
    }
    let xx = i % params.w;
    let yy = (i / params.w) % params.h;
    let ch = (i / (params.w * params.h)) % params.c;
    let b = i / (params.w * params.h * params.c);
    out[i] = x[((b * params.h + yy) * params.w + xx) * params.c + ch];
}

// out = x + y, float32 of one length (gradient accumulation where a tensor feeds two layers).
@compute @workgroup_size(WORKGROUP_SIZE)
fn add_real(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i < params.len {
        out[i] = x[i] + y[i];
    }
}
