// 3 x 3 'same' convolution, stride 1, NHWC, kernel (ky, kx, cin, cout), as an implicit GEMM
// (kernels/src/ops/conv.rs has the formulas):
//   forward:        out[m, n] = bias[n] + Σ_k A[m, k] · K[k, n]
//                   m = (b, y, x), k = (ky, kx, i), A[m, k] = in[b, y + ky − 1, x + kx − 1, i]
//   backward input: the same with A gathering grad_out at (y − ky + 1, x − kx + 1) and the kernel read
//                   transposed in channels (mode 1)
//   weight grad:    partial[s, k, n] = Σ_{m in split s} A[m, k] · grad_out[m, n], then a reduction over
//                   the splits (no float atomics, a fixed order: deterministic)
//   bias grad:      partial[s, n] = Σ_{m in split s} grad_out[m, n], then the same reduction
// The GEMM kernels give each workgroup a 64 x 64 output tile in 16 x 16 invocations of 4 x 4 outputs,
// staging 16-deep slices of both operands in workgroup memory; loads are ordered so that neighbouring
// invocations read neighbouring channels.

const TILE: u32 = 64u;
const DEPTH: u32 = 16u;
const SLICE: u32 = 1024u; // TILE * DEPTH

struct Params {
    h: u32,
    w: u32,
    // Channels of the gathered operand A (Cin forward, Cout for the input gradient).
    a_channels: u32,
    // GEMM N: output channels (or Cout for the weight gradient).
    n: u32,
    // GEMM M: pixels B * H * W.
    m: u32,
    // GEMM K: 9 * a_channels (or the length to reduce).
    k: u32,
    tiles_m: u32,
    tiles_n: u32,
    // 0: forward with bias; 1: input gradient.
    mode: u32,
    // Pixels per split of the weight and bias gradients.
    split_len: u32,
    splits: u32,
    _pad: u32,
};

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read> second: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

var<workgroup> a_tile: array<f32, SLICE>;
var<workgroup> b_tile: array<f32, SLICE>;

// A[m, k], zero outside the image, the GEMM or `m_end`.
fn gather(m: u32, k: u32, m_end: u32) -> f32 {
    if m >= m_end || k >= params.k {
        return 0.0;
    }
    let hw = params.h * params.w;
    let b = m / hw;
    let p = m % hw;
    let y = i32(p / params.w);
    let x = i32(p % params.w);
    let tap = k / params.a_channels;
    let c = k % params.a_channels;
    let ky = i32(tap / 3u);
    let kx = i32(tap % 3u);
    var sy = y + ky - 1;
    var sx = x + kx - 1;
    if params.mode == 1u {
        sy = y - ky + 1;
        sx = x - kx + 1;
    }
    if sy < 0 || sx < 0 || sy >= i32(params.h) || sx >= i32(params.w) {
        return 0.0;
    }
    return src[((b * params.h + u32(sy)) * params.w + u32(sx)) * params.a_channels + c];
}

// The kernel as the GEMM's right operand, K[k, n].
fn kernel_at(k: u32, n: u32) -> f32 {
    if k >= params.k || n >= params.n {
        return 0.0;
    }
    if params.mode == 1u {
        let tap = k / params.a_channels;
        let c = k % params.a_channels;
        return second[(tap * params.n + n) * params.a_channels + c];
    }
    return second[k * params.n + n];
}

@compute @workgroup_size(16, 16)
fn forward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let id = wg.x + wg.y * groups.x;
    // Whole workgroups leave together, so the barriers below stay in uniform control flow.
    if id >= params.tiles_m * params.tiles_n {
        return;
    }
    let m0 = (id % params.tiles_m) * TILE;
    let n0 = (id / params.tiles_m) * TILE;
    let t = lid.y * 16u + lid.x;
    var acc: array<f32, 16>;
    for (var k0 = 0u; k0 < params.k; k0 += DEPTH) {
        for (var r = 0u; r < 4u; r++) {
            let e = t + r * 256u;
            // A: depth fastest, so neighbouring invocations read neighbouring channels.
            a_tile[(e % DEPTH) * TILE + e / DEPTH] = gather(m0 + e / DEPTH, k0 + e % DEPTH, params.m);
            b_tile[e] = kernel_at(k0 + e / TILE, n0 + e % TILE);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < DEPTH; kk++) {
            let a = vec4<f32>(
                a_tile[kk * TILE + lid.y * 4u],
                a_tile[kk * TILE + lid.y * 4u + 1u],
                a_tile[kk * TILE + lid.y * 4u + 2u],
                a_tile[kk * TILE + lid.y * 4u + 3u],
            );
            let b = vec4<f32>(
                b_tile[kk * TILE + lid.x * 4u],
                b_tile[kk * TILE + lid.x * 4u + 1u],
                b_tile[kk * TILE + lid.x * 4u + 2u],
                b_tile[kk * TILE + lid.x * 4u + 3u],
            );
            for (var i = 0u; i < 4u; i++) {
                acc[i * 4u] += a[i] * b.x;
                acc[i * 4u + 1u] += a[i] * b.y;
                acc[i * 4u + 2u] += a[i] * b.z;
                acc[i * 4u + 3u] += a[i] * b.w;
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let m = m0 + lid.y * 4u + i;
        for (var j = 0u; j < 4u; j++) {
            let n = n0 + lid.x * 4u + j;
            if m < params.m && n < params.n {
                var v = acc[i * 4u + j];
                if params.mode == 0u {
                    v += bias[n];
                }
                out[m * params.n + n] = v;
            }
        }
    }
}

// One split of the weight gradient: a 64 x 64 tile of (k, n), summed over the split's pixels. `second`
// holds grad_out (M, N).
@compute @workgroup_size(16, 16)
fn weight_grad(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let id = wg.x + wg.y * groups.x;
    let tiles = params.tiles_m * params.tiles_n;
    if id >= tiles * params.splits {
        return;
    }
    let split = id / tiles;
    let tile = id % tiles;
    let k0 = (tile % params.tiles_m) * TILE;
    let n0 = (tile / params.tiles_m) * TILE;
    let m_begin = split * params.split_len;
    let m_end = min(params.m, m_begin + params.split_len);
    let t = lid.y * 16u + lid.x;
    var acc: array<f32, 16>;
    for (var m0 = m_begin; m0 < m_end; m0 += DEPTH) {
        for (var r = 0u; r < 4u; r++) {
            let e = t + r * 256u;
            let mm = e / TILE;
            let col = e % TILE;
            a_tile[e] = gather(m0 + mm, k0 + col, m_end);
            var g = 0.0;
            if m0 + mm < m_end && n0 + col < params.n {
                g = second[(m0 + mm) * params.n + n0 + col];
            }
            b_tile[e] = g;
        }
        workgroupBarrier();
        for (var mm = 0u; mm < DEPTH; mm++) {
            let a = vec4<f32>(
                a_tile[mm * TILE + lid.y * 4u],
                a_tile[mm * TILE + lid.y * 4u + 1u],
                a_tile[mm * TILE + lid.y * 4u + 2u],
                a_tile[mm * TILE + lid.y * 4u + 3u],
            );
            let g = vec4<f32>(
                b_tile[mm * TILE + lid.x * 4u],
                b_tile[mm * TILE + lid.x * 4u + 1u],
                b_tile[mm * TILE + lid.x * 4u + 2u],
                b_tile[mm * TILE + lid.x * 4u + 3u],
            );
            for (var i = 0u; i < 4u; i++) {
                acc[i * 4u] += a[i] * g.x;
                acc[i * 4u + 1u] += a[i] * g.y;
                acc[i * 4u + 2u] += a[i] * g.z;
                acc[i * 4u + 3u] += a[i] * g.w;
            }
        }
        workgroupBarrier();
    }
    let base = split * params.k * params.n;
    for (var i = 0u; i < 4u; i++) {
        let k = k0 + lid.y * 4u + i;
        for (var j = 0u; j < 4u; j++) {
            let n = n0 + lid.x * 4u + j;
            if k < params.k && n < params.n {
                out[base + k * params.n + n] = acc[i * 4u + j];
            }
        }
    }
}

fn linear_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * 256u;
}

// partial[s, n] = Σ_{m in split s} grad_out[m, n]; `src` holds grad_out.
@compute @workgroup_size(256)
fn bias_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = linear_index(gid, groups);
    if i >= params.n * params.splits {
        return;
    }
    let n = i % params.n;
    let split = i / params.n;
    let m_end = min(params.m, (split + 1u) * params.split_len);
    var sum = 0.0;
    for (var m = split * params.split_len; m < m_end; m++) {
        sum += src[m * params.n + n];
    }
    out[i] = sum;
}

// out[j] = Σ_s partial[s, j] over the splits in order; `src` holds the partials, k is the length.
@compute @workgroup_size(256)
fn reduce_splits(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let j = linear_index(gid, groups);
    if j >= params.k {
        return;
    }
    var sum = 0.0;
    for (var s = 0u; s < params.splits; s++) {
        sum += src[s * params.k + j];
    }
    out[j] = sum;
}
