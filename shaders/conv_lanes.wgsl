// 3 x 3 'same' convolution for CPU-type adapters (lavapipe, llvmpipe, WARP): the same implicit GEMM as
// conv.wgsl, out[m, n] = Σ_k A[m, k] · K[k, n], laid out for a SIMD CPU rather than a GPU.
//
// Such a driver runs a workgroup as a loop over SIMD vectors of invocations. A storage-buffer load
// whose address differs between invocations becomes a scalar loop over the lanes (Mesa 22.3 llvmpipe:
// about 300 cycles per vector load), and workgroup memory is no cheaper; uniform-buffer loads at an
// address all lanes share cost one scalar load. So each invocation owns one row of the GEMM (a pixel,
// or a kernel row for the weight gradient) and 16 of its columns, reads its row operand from storage
// (one load per 16 FMAs), and reads the shared operand through a 64 KiB uniform window. The window is
// a slice of a staged copy of that operand (`stage`); the host walks it over the reduction in chunks,
// one dispatch each, and every dispatch after the first adds to the output, so the sum runs in a fixed
// order: deterministic, with no atomics.

const LANES: u32 = 64u;
const COLUMNS: u32 = 16u;
const WINDOW_VEC4S: u32 = 4096u;

struct Params {
    h: u32,
    w: u32,
    // Channels of the gathered operand A (Cin forward and for the weight gradient, Cout for the input
    // gradient).
    a_channels: u32,
    // Columns of the output: GEMM N.
    n: u32,
    // Pixels B * H * W.
    m: u32,
    // GEMM K: 9 * a_channels.
    k: u32,
    // Row blocks of LANES.
    row_blocks: u32,
    // 0: forward with bias; 1: input gradient; 2: stage a copy; 3: stage the kernel transposed in
    // channels for the input gradient.
    mode: u32,
    // The chunk of the reduction this dispatch covers: GEMM rows k (forward, input gradient) or pixels
    // (weight gradient).
    chunk_begin: u32,
    chunk_end: u32,
    // Float index, in the staged operand, where the uniform window starts.
    window_base: u32,
    // Elements to stage.
    len: u32,
};

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<uniform> window: array<vec4<f32>, WINDOW_VEC4S>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

fn shared_at(i: u32) -> f32 {
    return window[i / 4u][i % 4u];
}

// Sixteen consecutive values of the shared operand from float index `i` of the window.
fn shared16(i: u32, cols: ptr<function, array<vec4<f32>, 4>>) {
    for (var q = 0u; q < 4u; q++) {
        (*cols)[q] = vec4<f32>(
            shared_at(i + 4u * q),
            shared_at(i + 4u * q + 1u),
            shared_at(i + 4u * q + 2u),
            shared_at(i + 4u * q + 3u),
        );
    }
}

fn block_id(wg: vec3<u32>, groups: vec3<u32>) -> u32 {
    return wg.x + wg.y * groups.x;
}

// Blocks of COLUMNS output columns.
fn column_blocks() -> u32 {
    return (params.n + COLUMNS - 1u) / COLUMNS;
}

// Index of input pixel (b, sy, sx) clamped into the image, and whether it lies inside (outside it is
// the zero padding).
struct Source {
    pixel: u32,
    inside: bool,
};

fn source(b: u32, sy: i32, sx: i32) -> Source {
    let inside = sy >= 0 && sx >= 0 && sy < i32(params.h) && sx < i32(params.w);
    let pixel = (b * params.h + u32(clamp(sy, 0, i32(params.h) - 1))) * params.w
        + u32(clamp(sx, 0, i32(params.w) - 1));
    return Source(pixel, inside);
}

// Output row `row`, columns n0 .. n0 + COLUMNS: written by the first chunk (plus the bias when asked),
// added to by the others.
fn store_columns(row: u32, n0: u32, acc: array<vec4<f32>, 4>, add_bias: bool) {
    for (var j = 0u; j < COLUMNS; j++) {
        let n = n0 + j;
        if n < params.n {
            var v = acc[j / 4u][j % 4u];
            let o = row * params.n + n;
            if params.chunk_begin > 0u {
                v += out[o];
            } else if add_bias {
                v += bias[n];
            }
            out[o] = v;
        }
    }
}

// Forward (mode 0) and input gradient (mode 1) over the chunk of GEMM rows [chunk_begin, chunk_end):
// each invocation one pixel and COLUMNS output channels.
@compute @workgroup_size(64)
fn gemm_pixels(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let id = block_id(wg, groups);
    if id >= params.row_blocks * column_blocks() {
        return;
    }
    let m = (id % params.row_blocks) * LANES + lid.x;
    let n0 = (id / params.row_blocks) * COLUMNS;
    let live = m < params.m;
    let pixel = min(m, params.m - 1u);
    let hw = params.h * params.w;
    let b = pixel / hw;
    let y = i32((pixel % hw) / params.w);
    let x = i32(pixel % params.w);
    let channels = params.a_channels;
    var acc: array<vec4<f32>, 4>;
    var cols: array<vec4<f32>, 4>;
    let tap_first = params.chunk_begin / channels;
    let tap_last = (params.chunk_end - 1u) / channels;
    for (var tap = tap_first; tap <= tap_last; tap++) {
        let dy = i32(tap / 3u) - 1;
        let dx = i32(tap % 3u) - 1;
        var sy = y + dy;
        var sx = x + dx;
        if params.mode == 1u {
            sy = y - dy;
            sx = x - dx;
        }
        let at = source(b, sy, sx);
        let c_begin = max(params.chunk_begin, tap * channels) - tap * channels;
        let c_end = min(params.chunk_end, (tap + 1u) * channels) - tap * channels;
        for (var c = c_begin; c < c_end; c++) {
            let a = select(0.0, src[at.pixel * channels + c], at.inside);
            shared16((tap * channels + c) * params.n + n0 - params.window_base, &cols);
            for (var q = 0u; q < 4u; q++) {
                acc[q] += a * cols[q];
            }
        }
    }
    if live {
        store_columns(m, n0, acc, params.mode == 0u);
    }
}

// The weight gradient over the chunk of pixels [chunk_begin, chunk_end): each invocation one kernel
// row k = (tap, input channel) and COLUMNS output channels; the window holds grad_out (M, N).
@compute @workgroup_size(64)
fn weight_grad_rows(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let id = block_id(wg, groups);
    if id >= params.row_blocks * column_blocks() {
        return;
    }
    let k = (id % params.row_blocks) * LANES + lid.x;
    let n0 = (id / params.row_blocks) * COLUMNS;
    let live = k < params.k;
    let kk = min(k, params.k - 1u);
    let channels = params.a_channels;
    let tap = kk / channels;
    let c = kk % channels;
    let dy = i32(tap / 3u) - 1;
    let dx = i32(tap % 3u) - 1;
    let hw = params.h * params.w;
    var acc: array<vec4<f32>, 4>;
    var cols: array<vec4<f32>, 4>;
    for (var m = params.chunk_begin; m < params.chunk_end; m++) {
        let b = m / hw;
        let y = i32((m % hw) / params.w);
        let x = i32(m % params.w);
        let at = source(b, y + dy, x + dx);
        let a = select(0.0, src[at.pixel * channels + c], at.inside);
        shared16(m * params.n + n0 - params.window_base, &cols);
        for (var q = 0u; q < 4u; q++) {
            acc[q] += a * cols[q];
        }
    }
    if live {
        store_columns(k, n0, acc, false);
    }
}

// The staged shared operand, out[i] for i < len: a copy of src (mode 2), or the kernel (3, 3, Cin,
// Cout) rearranged as the input gradient's K[k, n] with k = (tap, o) and n = i, that is
// out[(tap * Cout + o) * Cin + i] = kernel[tap, i, o] (mode 3; a_channels = Cout, n = Cin).
@compute @workgroup_size(64)
fn stage(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let i = block_id(wg, groups) * LANES + lid.x;
    if i >= params.len {
        return;
    }
    if params.mode == 2u {
        out[i] = src[i];
        return;
    }
    let row = i / params.n;
    let tap = row / params.a_channels;
    let o = row % params.a_channels;
    let c = i % params.n;
    out[i] = src[(tap * params.n + c) * params.a_channels + o];
}
