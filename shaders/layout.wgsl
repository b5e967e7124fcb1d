// Layout ops of the physics: centred pad/crop ("recenter") and the channel sum with its transpose.
// The host prepends WORKGROUP_SIZE and shaders/common/complex.wgsl.
//
// recenter: out[b, y, x] = in[b, y + oy, x + ox], zero outside the input; oy = (in_h - out_h) / 2 (negative
//   when padding). A crop and the pad back to the same size are each other's transpose.
// sum_channels: out[b, p] = Σ_c in[b, c, p]; repeat_channels: out[b, c, p] = in[b, p] (its transpose).

struct Params {
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    // Elements of the output.
    len: u32,
    // Channels (sum/repeat).
    channels: u32,
    row_invocations: u32,
    _pad: u32,
};

@group(0) @binding(0) var<storage, read> src_complex: array<vec2<f32>>;
@group(0) @binding(1) var<storage, read> src_real: array<f32>;
@group(0) @binding(2) var<storage, read_write> out_complex: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read_write> out_real: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

fn index(gid: vec3<u32>) -> u32 {
    return gid.x + gid.y * params.row_invocations;
}

// Source index of output element i for recenter, or -1 when it falls outside the input.
fn recenter_source(i: u32) -> i32 {
    let out_hw = params.out_h * params.out_w;
    let image = i / out_hw;
    let within = i % out_hw;
    let oy = (i32(params.in_h) - i32(params.out_h)) / 2;
    let ox = (i32(params.in_w) - i32(params.out_w)) / 2;
    let y = i32(within / params.out_w) + oy;
    let x = i32(within % params.out_w) + ox;
    if y < 0 || x < 0 || y >= i32(params.in_h) || x >= i32(params.in_w) {
        return -1;
    }
    return i32(image * params.in_h * params.in_w) + y * i32(params.in_w) + x;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn recenter_complex(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i >= params.len {
        return;
    }
    let s = recenter_source(i);
    var v = vec2<f32>(0.0);
    if s >= 0 {
        v = src_complex[s];
    }
    out_complex[i] = v;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn recenter_real(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i >= params.len {
        return;
    }
    let s = recenter_source(i);
    var v = 0.0;
    if s >= 0 {
        v = src_real[s];
    }
    out_real[i] = v;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn sum_channels_complex(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i >= params.len {
        return;
    }
    let hw = params.out_h * params.out_w;
    let base = (i / hw) * params.channels * hw + i % hw;
    var acc = vec2<f32>(0.0);
    for (var c = 0u; c < params.channels; c++) {
        acc += src_complex[base + c * hw];
    }
    out_complex[i] = acc;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn sum_channels_real(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i >= params.len {
        return;
    }
    let hw = params.out_h * params.out_w;
    let base = (i / hw) * params.channels * hw + i % hw;
    var acc = 0.0;
    for (var c = 0u; c < params.channels; c++) {
        acc += src_real[base + c * hw];
    }
    out_real[i] = acc;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn repeat_channels_complex(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i >= params.len {
        return;
    }
    let hw = params.out_h * params.out_w;
    out_complex[i] = src_complex[(i / (hw * params.channels)) * hw + i % hw];
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn repeat_channels_real(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i >= params.len {
        return;
    }
    let hw = params.out_h * params.out_w;
    out_real[i] = src_real[(i / (hw * params.channels)) * hw + i % hw];
}
