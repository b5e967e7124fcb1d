// Batched complex 2-D FFT: one pass along one axis of every N x N image.
//
// The host prepends shaders/common/complex.wgsl and these constants (one pipeline per variant):
//   N: u32           transform length (power of two, 32..=512)
//   LINES: u32       lines (rows or columns) per workgroup; LINES * N == SHARED
//   SHARED: u32      complex elements held in workgroup memory per buffer
//   COLUMNS: bool    false: transform along rows (contiguous); true: along columns (stride N)
//   SIGN: f32        -1 forward (exp(-2 pi i k n / N)), +1 inverse
//   SCALE: f32       applied to every output (1/N per pass for the inverse, 1 for the forward)
//   SHIFT_IN: bool   read index k from (k + N/2) mod N  (ifftshift of the input along this axis)
//   SHIFT_OUT: bool  write index k to (k + N/2) mod N   (fftshift of the output along this axis)
//   RADIX2_FIRST: bool  log2(N) is odd: one radix-2 stage, then radix-4 stages
//   R4_STAGES: u32   number of radix-4 stages (1..=4)
//   R4_NS0: u32      sub-transform size before the first radix-4 stage (2 after a radix-2 stage, else 1)
//
// Stockham autosort: every stage reads R inputs strided by N/R, applies twiddles and an R-point DFT in
// registers, and writes to (j / Ns) * Ns * R + j % Ns + r * Ns. The first stage reads global memory and
// the last writes global memory, so a transform of S stages costs S - 1 workgroup barriers and one read
// and one write of the array.

const WORKGROUP: u32 = 64u;

struct Params {
    // Total lines in the batch divided by LINES.
    workgroups: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
};

@group(0) @binding(0) var<storage, read> src: array<vec2<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec2<f32>>;
// exp(-2 pi i k / N) for k in 0..N, computed in f64 on the host.
@group(0) @binding(2) var<storage, read> twiddles: array<vec2<f32>>;
@group(0) @binding(3) var<uniform> params: Params;

var<workgroup> buf_a: array<vec2<f32>, SHARED>;
var<workgroup> buf_b: array<vec2<f32>, SHARED>;

// Address in global memory of element k of line `line` (0..LINES) of this workgroup.
fn global_index(first_line: u32, line: u32, k: u32) -> u32 {
    let g = first_line + line;
    let image = g / N;
    let within = g % N;
    if COLUMNS {
        return image * N * N + k * N + within;
    }
    return image * N * N + within * N + k;
}

// Butterfly number t of this workgroup (0..LINES * N / R) as (line, j). Consecutive t walk along the
// contiguous axis of global memory so that first-stage reads and last-stage writes coalesce.
fn butterfly_line(t: u32, per_line: u32) -> vec2<u32> {
    if COLUMNS {
        return vec2<u32>(t % LINES, t / LINES);
    }
    return vec2<u32>(t / per_line, t % per_line);
}

fn twiddle(index: u32) -> vec2<f32> {
    let w = twiddles[index];
    return vec2<f32>(w.x, -SIGN * w.y);
}

fn load(first: bool, first_line: u32, line: u32, k: u32, from_a: bool) -> vec2<f32> {
    if first {
        var kk = k;
        if SHIFT_IN {
            kk = (k + N / 2u) % N;
        }
        return src[global_index(first_line, line, kk)];
    }
    if from_a {
        return buf_a[line * N + k];
    }
    return buf_b[line * N + k];
}

fn store(last: bool, first_line: u32, line: u32, k: u32, to_a: bool, v: vec2<f32>) {
    if last {
        var kk = k;
        if SHIFT_OUT {
            kk = (k + N / 2u) % N;
        }
        dst[global_index(first_line, line, kk)] = v * SCALE;
        return;
    }
    if to_a {
        buf_a[line * N + k] = v;
    } else {
        buf_b[line * N + k] = v;
    }
}

fn radix2_stage(tid: u32, first_line: u32, ns: u32, first: bool, last: bool, from_a: bool) {
    let per_line = N / 2u;
    for (var t = tid; t < LINES * per_line; t += WORKGROUP) {
        let lj = butterfly_line(t, per_line);
        let line = lj.x;
        let j = lj.y;
        var v0 = load(first, first_line, line, j, from_a);
        var v1 = load(first, first_line, line, j + per_line, from_a);
        let m = j % ns;
        v1 = c_mul(v1, twiddle(m * (N / (ns * 2u))));
        let out = (j / ns) * ns * 2u + m;
        store(last, first_line, line, out, !from_a, v0 + v1);
        store(last, first_line, line, out + ns, !from_a, v0 - v1);
    }
}

fn radix4_stage(tid: u32, first_line: u32, ns: u32, first: bool, last: bool, from_a: bool) {
    let per_line = N / 4u;
    for (var t = tid; t < LINES * per_line; t += WORKGROUP) {
        let lj = butterfly_line(t, per_line);
        let line = lj.x;
        let j = lj.y;
        var v0 = load(first, first_line, line, j, from_a);
        var v1 = load(first, first_line, line, j + per_line, from_a);
        var v2 = load(first, first_line, line, j + 2u * per_line, from_a);
        var v3 = load(first, first_line, line, j + 3u * per_line, from_a);
        let m = j % ns;
        let step = N / (ns * 4u);
        v1 = c_mul(v1, twiddle(m * step));
        v2 = c_mul(v2, twiddle(2u * m * step));
        v3 = c_mul(v3, twiddle(3u * m * step));
        let a0 = v0 + v2;
        let a1 = v0 - v2;
        let a2 = v1 + v3;
        let a3 = c_mul_i(v1 - v3, SIGN);
        let out = (j / ns) * ns * 4u + m;
        store(last, first_line, line, out, !from_a, a0 + a2);
        store(last, first_line, line, out + ns, !from_a, a1 + a3);
        store(last, first_line, line, out + 2u * ns, !from_a, a0 - a2);
        store(last, first_line, line, out + 3u * ns, !from_a, a1 - a3);
    }
}

// The stages are spelled out with constant arguments (rather than looped) so that shader compilers fold
// the first/last branches of load and store away: twice as fast on lavapipe.
@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) tid: u32,
) {
    let group = wid.x + wid.y * nwg.x;
    if group >= params.workgroups {
        return;
    }
    let fl = group * LINES;
    // The radix-2 stage (when log2 N is odd) writes buf_a; radix-4 stage k then reads buf_a for even k
    // and buf_b for odd k. Without it, the first radix-4 stage reads global memory and writes buf_a.
    if RADIX2_FIRST {
        radix2_stage(tid, fl, 1u, true, false, false);
        workgroupBarrier();
    }
    radix4_stage(tid, fl, R4_NS0, !RADIX2_FIRST, R4_STAGES == 1u, RADIX2_FIRST);
    if R4_STAGES > 1u {
        workgroupBarrier();
        radix4_stage(tid, fl, R4_NS0 * 4u, false, R4_STAGES == 2u, !RADIX2_FIRST);
    }
    if R4_STAGES > 2u {
        workgroupBarrier();
        radix4_stage(tid, fl, R4_NS0 * 16u, false, R4_STAGES == 3u, RADIX2_FIRST);
    }
    if R4_STAGES > 3u {
        workgroupBarrier();
        radix4_stage(tid, fl, R4_NS0 * 64u, false, true, !RADIX2_FIRST);
    }
}
