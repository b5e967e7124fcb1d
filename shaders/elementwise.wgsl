// Complex elementwise ops over flat arrays of vec2<f32> = (re, im). The host prepends
// shaders/common/complex.wgsl and the constants WORKGROUP_SIZE and ELEMENTS_PER_INVOCATION. Each
// invocation handles ELEMENTS_PER_INVOCATION elements, strided by the total number of invocations so that
// neighbouring invocations touch neighbouring addresses.

struct Params {
    // Elements of the output.
    len: u32,
    // Elements of `b`; b is indexed modulo b_len, which broadcasts a shared factor (a probe) over a batch.
    b_len: u32,
    // Invocations per row of the dispatch grid (x workgroups * WORKGROUP_SIZE).
    row_invocations: u32,
    scale: f32,
};

@group(0) @binding(0) var<storage, read> a: array<vec2<f32>>;
@group(0) @binding(1) var<storage, read> b: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read_write> out_complex: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read_write> out_real: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;
@group(0) @binding(5) var<storage, read> a_real: array<f32>;

fn first_index(gid: vec3<u32>) -> u32 {
    return gid.x + gid.y * params.row_invocations;
}

fn stride(nwg: vec3<u32>) -> u32 {
    return params.row_invocations * nwg.y;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn mul(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let s = stride(nwg);
    var i = first_index(gid);
    for (var e = 0u; e < ELEMENTS_PER_INVOCATION && i < params.len; e++) {
        out_complex[i] = c_mul(a[i], b[i % params.b_len]);
        i += s;
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn mul_conj(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let s = stride(nwg);
    var i = first_index(gid);
    for (var e = 0u; e < ELEMENTS_PER_INVOCATION && i < params.len; e++) {
        out_complex[i] = c_mul_conj(a[i], b[i % params.b_len]);
        i += s;
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let s = stride(nwg);
    var i = first_index(gid);
    for (var e = 0u; e < ELEMENTS_PER_INVOCATION && i < params.len; e++) {
        out_complex[i] = a[i] + b[i % params.b_len];
        i += s;
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn scale(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let s = stride(nwg);
    var i = first_index(gid);
    for (var e = 0u; e < ELEMENTS_PER_INVOCATION && i < params.len; e++) {
        out_complex[i] = a[i] * params.scale;
        i += s;
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn abs(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let s = stride(nwg);
    var i = first_index(gid);
    for (var e = 0u; e < ELEMENTS_PER_INVOCATION && i < params.len; e++) {
        out_real[i] = length(a[i]);
        i += s;
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn abs2(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let s = stride(nwg);
    var i = first_index(gid);
    for (var e = 0u; e < ELEMENTS_PER_INVOCATION && i < params.len; e++) {
        out_real[i] = c_abs2(a[i]);
        i += s;
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn scale_real(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let s = stride(nwg);
    var i = first_index(gid);
    for (var e = 0u; e < ELEMENTS_PER_INVOCATION && i < params.len; e++) {
        out_real[i] = a_real[i] * params.scale;
        i += s;
    }
}

// The gradient of scale * |a| for an upstream real gradient g (in a_real): scale * g * a / |a|, and 0
// where a = 0 (the subgradient |a| has there).
@compute @workgroup_size(WORKGROUP_SIZE)
fn modulus_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let s = stride(nwg);
    var i = first_index(gid);
    for (var e = 0u; e < ELEMENTS_PER_INVOCATION && i < params.len; e++) {
        let m = length(a[i]);
        var v = vec2<f32>(0.0);
        if m > 0.0 {
            v = a[i] * (params.scale * a_real[i] / m);
        }
        out_complex[i] = v;
        i += s;
    }
}

// a / d for complex a and real d of the same shape (the merge's division by the overlap count).
@compute @workgroup_size(WORKGROUP_SIZE)
fn div_real(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let s = stride(nwg);
    var i = first_index(gid);
    for (var e = 0u; e < ELEMENTS_PER_INVOCATION && i < params.len; e++) {
        out_complex[i] = a[i] / a_real[i];
        i += s;
    }
}

// a + scale for real a.
@compute @workgroup_size(WORKGROUP_SIZE)
fn offset_real(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let s = stride(nwg);
    var i = first_index(gid);
    for (var e = 0u; e < ELEMENTS_PER_INVOCATION && i < params.len; e++) {
        out_real[i] = a_real[i] + params.scale;
        i += s;
    }
}
