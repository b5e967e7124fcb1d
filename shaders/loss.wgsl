// Per-element loss terms and gradients of the PINN losses (physics-and-model.md §7), over predicted
// amplitudes Â (pred) and target amplitudes T = s·X (observed), and a sum reduction. The host prepends
// WORKGROUP_SIZE. Î = Â² and Y = T²; Î is clamped to MIN_INTENSITY before the log (the reference
// requires Î > 0), and the gradient treats Â the same way.
//   poisson:  Î − Y·log Î                 (TF log_poisson_loss without the Stirling term)
//   deviance: Î − Y − Y·log(Î/Y), 0·log 0 = 0 (same gradient, better conditioned)
//   mae:      |T − Â|
// Gradients are of the mean: ∂/∂Â = scale · (2Â − 2Y/Â) for poisson and deviance, scale · sign(Â − T)
// for mae, with scale = 1/M.

const MIN_INTENSITY: f32 = 1e-12;

struct Params {
    len: u32,
    row_invocations: u32,
    scale: f32,
    _pad: u32,
};

@group(0) @binding(0) var<storage, read> pred: array<f32>;
@group(0) @binding(1) var<storage, read> observed: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

var<workgroup> partial: array<f32, WORKGROUP_SIZE>;

fn index(gid: vec3<u32>) -> u32 {
    return gid.x + gid.y * params.row_invocations;
}

fn intensity(a: f32) -> f32 {
    return max(a * a, MIN_INTENSITY);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn poisson_terms(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i >= params.len {
        return;
    }
    let t = observed[i];
    let p = intensity(pred[i]);
    out[i] = p - t * t * log(p);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn deviance_terms(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i >= params.len {
        return;
    }
    let y = observed[i] * observed[i];
    let p = intensity(pred[i]);
    var v = p - y;
    if y > 0.0 {
        v -= y * log(p / y);
    }
    out[i] = v;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn mae_terms(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i >= params.len {
        return;
    }
    out[i] = abs(observed[i] - pred[i]);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn poisson_grad(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i >= params.len {
        return;
    }
    let a = max(abs(pred[i]), sqrt(MIN_INTENSITY)) * select(-1.0, 1.0, pred[i] >= 0.0);
    let y = observed[i] * observed[i];
    out[i] = params.scale * (2.0 * a - 2.0 * y / a);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn mae_grad(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i >= params.len {
        return;
    }
    out[i] = params.scale * sign(pred[i] - observed[i]);
}

// One level of the sum: workgroup w adds pred[w*WORKGROUP_SIZE*4 .. +WORKGROUP_SIZE*4) into out[w]
// as a tree, so no float atomics are needed; the host repeats it until one value is left.
@compute @workgroup_size(WORKGROUP_SIZE)
fn sum_level(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) tid: u32,
) {
    let group = wid.x + wid.y * nwg.x;
    let per_group = WORKGROUP_SIZE * 4u;
    // Grid cells past the last group (a 2-D grid rounds up) write nothing.
    if group >= max(1u, (params.len + per_group - 1u) / per_group) {
        return;
    }
    let base = group * per_group;
    var acc = 0.0;
    for (var k = 0u; k < 4u; k++) {
        let i = base + k * WORKGROUP_SIZE + tid;
        if i < params.len {
            acc += pred[i];
        }
    }
    partial[tid] = acc;
    workgroupBarrier();
    for (var stride = WORKGROUP_SIZE / 2u; stride > 0u; stride = stride / 2u) {
        if tid < stride {
            partial[tid] += partial[tid + stride];
        }
        workgroupBarrier();
    }
    if tid == 0u {
        out[group] = partial[0];
    }
}
