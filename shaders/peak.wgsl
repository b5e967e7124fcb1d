// The adapter's FP32 multiply-add rate: each invocation runs 32 independent chains a ← fma(a, m, c)
// (eight vec4 registers) `iterations` times, so the work is 64 FLOP per lane per iteration with no
// memory traffic, and writes the sum so the compiler keeps it. The host prepends WORKGROUP_SIZE.

struct Params {
    lanes: u32,
    row_invocations: u32,
    iterations: u32,
    _pad: u32,
};

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<uniform> params: Params;

const MULTIPLIER: f32 = 0.999;
const INCREMENT: f32 = 0.001;

fn start(i: u32, j: u32) -> vec4<f32> {
    let base = 4u * j;
    return 0.01 * vec4<f32>(
        f32((i + base) % 13u),
        f32((i + base + 1u) % 13u),
        f32((i + base + 2u) % 13u),
        f32((i + base + 3u) % 13u),
    );
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn fma_chain(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * params.row_invocations;
    if i >= params.lanes {
        return;
    }
    var a0 = start(i, 0u);
    var a1 = start(i, 1u);
    var a2 = start(i, 2u);
    var a3 = start(i, 3u);
    var a4 = start(i, 4u);
    var a5 = start(i, 5u);
    var a6 = start(i, 6u);
    var a7 = start(i, 7u);
    let m = vec4<f32>(MULTIPLIER);
    let c = vec4<f32>(INCREMENT);
    for (var k = 0u; k < params.iterations; k++) {
        a0 = fma(a0, m, c);
        a1 = fma(a1, m, c);
        a2 = fma(a2, m, c);
        a3 = fma(a3, m, c);
        a4 = fma(a4, m, c);
        a5 = fma(a5, m, c);
        a6 = fma(a6, m, c);
        a7 = fma(a7, m, c);
    }
    let s = (a0 + a1) + (a2 + a3) + (a4 + a5) + (a6 + a7);
    out[i] = (s.x + s.y) + (s.z + s.w);
}
