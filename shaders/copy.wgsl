// Plain device copy, 16 bytes per element: the bandwidth yardstick that kernel benchmarks compare with.
// The host prepends the constants WORKGROUP_SIZE and ELEMENTS_PER_INVOCATION.

struct Params {
    // vec4 elements to copy.
    len: u32,
    row_invocations: u32,
    _pad0: u32,
    _pad1: u32,
};

@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let s = params.row_invocations * nwg.y;
    var i = gid.x + gid.y * params.row_invocations;
    for (var e = 0u; e < ELEMENTS_PER_INVOCATION && i < params.len; e++) {
        dst[i] = src[i];
        i += s;
    }
}
