// Adam as Keras 3 computes it (physics-and-model.md §8), in place over one parameter tensor:
//   m += (g − m)(1 − β1);  v += (g² − v)(1 − β2);  p −= α m / (sqrt(v) + ε)
// with α = lr · sqrt(1 − β2^t) / (1 − β1^t) computed on the host in f64. The host prepends
// WORKGROUP_SIZE.

struct Params {
    len: u32,
    row_invocations: u32,
    alpha: f32,
    beta1: f32,
    beta2: f32,
    epsilon: f32,
    _pad0: u32,
    _pad1: u32,
};

@group(0) @binding(0) var<storage, read> grad: array<f32>;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(WORKGROUP_SIZE)
fn adam(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * params.row_invocations;
    if i >= params.len {
        return;
    }
    let g = grad[i];
    let mi = m[i] + (g - m[i]) * (1.0 - params.beta1);
    let vi = v[i] + (g * g - v[i]) * (1.0 - params.beta2);
    m[i] = mi;
    v[i] = vi;
    param[i] = param[i] - params.alpha * mi / (sqrt(vi) + params.epsilon);
}
