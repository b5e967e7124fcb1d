// Bilinear translation of every H x W image of a batch by its own sub-pixel shift (tx, ty), with each of
// the four corners zero outside the image (physics-and-model.md §4.1), and its exact transpose.
//
// For shift t, s = -t, k = floor(s), f = s - k (the same for every pixel of an image):
//   out[y, x] = (1-fx)(1-fy) in[y+ky, x+kx] + fx(1-fy) in[y+ky, x+kx+1]
//             + (1-fx) fy in[y+ky+1, x+kx] + fx fy in[y+ky+1, x+kx+1]
// so a positive t moves content to +x (right) and +y (down). The backward pass gathers:
//   grad_in[r, c] = Σ_{dy,dx ∈ {0,1}} w(dy, dx) grad_out[r-ky-dy, c-kx-dx]
// which needs no atomics. The host prepends WORKGROUP_SIZE and shaders/common/complex.wgsl.

struct Params {
    h: u32,
    w: u32,
    // Elements of the whole batch (images * h * w).
    len: u32,
    // Invocations per row of the dispatch grid.
    row_invocations: u32,
};

@group(0) @binding(0) var<storage, read> src_complex: array<vec2<f32>>;
@group(0) @binding(1) var<storage, read> src_real: array<f32>;
// (tx, ty) per image.
@group(0) @binding(2) var<storage, read> shifts: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read_write> out_complex: array<vec2<f32>>;
@group(0) @binding(4) var<storage, read_write> out_real: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

struct Stencil {
    // Base index of the image in the flat batch.
    base: u32,
    y: i32,
    x: i32,
    ky: i32,
    kx: i32,
    // Weights of corners (0,0), (0,1), (1,0), (1,1) as (dy, dx).
    w: vec4<f32>,
};

fn stencil(i: u32) -> Stencil {
    let hw = params.h * params.w;
    let image = i / hw;
    let within = i % hw;
    let s = -shifts[image];
    let k = floor(s);
    let f = s - k;
    var st: Stencil;
    st.base = image * hw;
    st.y = i32(within / params.w);
    st.x = i32(within % params.w);
    st.kx = i32(k.x);
    st.ky = i32(k.y);
    st.w = vec4<f32>((1.0 - f.x) * (1.0 - f.y), f.x * (1.0 - f.y), (1.0 - f.x) * f.y, f.x * f.y);
    return st;
}

// Flat index of (r, c) in the image, or -1 outside it.
fn pixel(st: Stencil, r: i32, c: i32) -> i32 {
    if r < 0 || c < 0 || r >= i32(params.h) || c >= i32(params.w) {
        return -1;
    }
    return i32(st.base) + r * i32(params.w) + c;
}

fn index(gid: vec3<u32>) -> u32 {
    return gid.x + gid.y * params.row_invocations;
}

fn read_complex(p: i32) -> vec2<f32> {
    if p < 0 {
        return vec2<f32>(0.0);
    }
    return src_complex[p];
}

fn read_real(p: i32) -> f32 {
    if p < 0 {
        return 0.0;
    }
    return src_real[p];
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn forward_complex(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i >= params.len {
        return;
    }
    let st = stencil(i);
    let y0 = st.y + st.ky;
    let x0 = st.x + st.kx;
    out_complex[i] = st.w.x * read_complex(pixel(st, y0, x0)) + st.w.y * read_complex(pixel(st, y0, x0 + 1))
        + st.w.z * read_complex(pixel(st, y0 + 1, x0)) + st.w.w * read_complex(pixel(st, y0 + 1, x0 + 1));
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn forward_real(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i >= params.len {
        return;
    }
    let st = stencil(i);
    let y0 = st.y + st.ky;
    let x0 = st.x + st.kx;
    out_real[i] = st.w.x * read_real(pixel(st, y0, x0)) + st.w.y * read_real(pixel(st, y0, x0 + 1))
        + st.w.z * read_real(pixel(st, y0 + 1, x0)) + st.w.w * read_real(pixel(st, y0 + 1, x0 + 1));
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn backward_complex(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i >= params.len {
        return;
    }
    let st = stencil(i);
    let r = st.y - st.ky;
    let c = st.x - st.kx;
    out_complex[i] = st.w.x * read_complex(pixel(st, r, c)) + st.w.y * read_complex(pixel(st, r, c - 1))
        + st.w.z * read_complex(pixel(st, r - 1, c)) + st.w.w * read_complex(pixel(st, r - 1, c - 1));
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn backward_real(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i >= params.len {
        return;
    }
    let st = stencil(i);
    let r = st.y - st.ky;
    let c = st.x - st.kx;
    out_real[i] = st.w.x * read_real(pixel(st, r, c)) + st.w.y * read_real(pixel(st, r, c - 1))
        + st.w.z * read_real(pixel(st, r - 1, c)) + st.w.w * read_real(pixel(st, r - 1, c - 1));
}
