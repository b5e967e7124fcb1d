// The ops of the iterative engines (kernels/src/ops/ptycho.rs).
//
// extract: patch j pixel (r, c) = the object at (y0_j + r, x0_j + c), bilinear, each corner zero
//   outside the object; with k = floor(origin) and f = origin - k:
//   out = (1-fx)(1-fy) O[ky+r, kx+c] + fx(1-fy) O[ky+r, kx+c+1] + (1-fx)fy O[ky+r+1, kx+c] + fx fy O[ky+r+1, kx+c+1]
// scatter: its adjoint, gathered per object pixel over the patches its bin lists (no atomics):
//   out[py, px] = Σ_j Σ_{dy,dx} w_j(dy, dx) patch_j[py-ky-dy, px-kx-dx]
// modulus_project: a Ψ/|Ψ| (a where Ψ = 0) and the residual (|Ψ| - a)².
// pattern_dot: Σ conj(a)·b over each pattern of a stack, one workgroup per pattern (a tree sum in
//   workgroup memory, no atomics).
// The host prepends WORKGROUP_SIZE and shaders/common/complex.wgsl.

struct Params {
    n: u32,
    h: u32,
    w: u32,
    // Side of an index bin in object pixels, and bins per row.
    bin: u32,
    bins_x: u32,
    // Bins in all (where the entries start in `index`).
    bins: u32,
    // 1: one patch shared by every origin.
    shared_patch: u32,
    // Output elements (pattern_dot: patterns).
    len: u32,
    // Invocations per row of the dispatch grid.
    row_invocations: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
};

// The object (extract), the patches (scatter), or the spectra (modulus_project).
@group(0) @binding(0) var<storage, read> src: array<vec2<f32>>;
// (x0, y0) per patch.
@group(0) @binding(1) var<storage, read> origins: array<vec2<f32>>;
// The bins' starts then their entries (patch numbers), exact integers in float32.
@group(0) @binding(2) var<storage, read> index: array<f32>;
@group(0) @binding(3) var<storage, read_write> out_complex: array<vec2<f32>>;
@group(0) @binding(4) var<storage, read_write> out_real: array<f32>;
@group(0) @binding(5) var<storage, read> amplitude: array<f32>;
@group(0) @binding(6) var<uniform> params: Params;
// The second operand of pattern_dot.
@group(0) @binding(7) var<storage, read> other: array<vec2<f32>>;

var<workgroup> partial_dot: array<vec2<f32>, WORKGROUP_SIZE>;

fn flat(gid: vec3<u32>) -> u32 {
    return gid.x + gid.y * params.row_invocations;
}

fn object_at(r: i32, c: i32) -> vec2<f32> {
    if r < 0 || c < 0 || r >= i32(params.h) || c >= i32(params.w) {
        return vec2<f32>(0.0);
    }
    return src[u32(r) * params.w + u32(c)];
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn extract(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = flat(gid);
    if i >= params.len {
        return;
    }
    let nn = params.n * params.n;
    let j = i / nn;
    let within = i % nn;
    let origin = origins[j];
    let k = floor(origin);
    let f = origin - k;
    let y = i32(k.y) + i32(within / params.n);
    let x = i32(k.x) + i32(within % params.n);
    out_complex[i] = object_at(y, x) * ((1.0 - f.x) * (1.0 - f.y)) + object_at(y, x + 1) * (f.x * (1.0 - f.y))
        + object_at(y + 1, x) * ((1.0 - f.x) * f.y) + object_at(y + 1, x + 1) * (f.x * f.y);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn scatter(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = flat(gid);
    if i >= params.len {
        return;
    }
    let py = i32(i / params.w);
    let px = i32(i % params.w);
    let b = (u32(py) / params.bin) * params.bins_x + u32(px) / params.bin;
    let first = u32(index[b]);
    let last = u32(index[b + 1u]);
    let n = i32(params.n);
    let nn = params.n * params.n;
    var sum = vec2<f32>(0.0);
    for (var e = first; e < last; e++) {
        let j = u32(index[params.bins + 1u + e]);
        let origin = origins[j];
        let k = floor(origin);
        let f = origin - k;
        var base = j * nn;
        if params.shared_patch == 1u {
            base = 0u;
        }
        for (var dy = 0; dy < 2; dy++) {
            let r = py - i32(k.y) - dy;
            if r < 0 || r >= n {
                continue;
            }
            var wy = 1.0 - f.y;
            if dy == 1 {
                wy = f.y;
            }
            for (var dx = 0; dx < 2; dx++) {
                let c = px - i32(k.x) - dx;
                if c < 0 || c >= n {
                    continue;
                }
                var wx = 1.0 - f.x;
                if dx == 1 {
                    wx = f.x;
                }
                sum += src[base + u32(r * n + c)] * (wx * wy);
            }
        }
    }
    out_complex[i] = sum;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn modulus_project(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = flat(gid);
    if i >= params.len {
        return;
    }
    let s = src[i];
    let a = amplitude[i];
    let m = length(s);
    if m > 0.0 {
        out_complex[i] = s * (a / m);
    } else {
        out_complex[i] = vec2<f32>(a, 0.0);
    }
    out_real[i] = (m - a) * (m - a);
}

// params.n: elements per pattern; params.len: patterns.
@compute @workgroup_size(WORKGROUP_SIZE)
fn pattern_dot(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) tid: u32,
) {
    let j = wid.x + wid.y * nwg.x;
    // Grid cells past the last pattern (a 2-D grid rounds up) write nothing.
    if j >= params.len {
        return;
    }
    let base = j * params.n;
    var acc = vec2<f32>(0.0);
    for (var i = tid; i < params.n; i += WORKGROUP_SIZE) {
        acc += c_mul_conj(other[base + i], src[base + i]);
    }
    partial_dot[tid] = acc;
    workgroupBarrier();
    for (var stride = WORKGROUP_SIZE / 2u; stride > 0u; stride = stride / 2u) {
        if tid < stride {
            partial_dot[tid] += partial_dot[tid + stride];
        }
        workgroupBarrier();
    }
    if tid == 0u {
        out_complex[j] = partial_dot[0];
    }
}
