// Complex arithmetic on vec2<f32> = (re, im). Prepended to every kernel that works on complex data.

fn c_mul(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    return vec2<f32>(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x);
}

// a * conj(b)
fn c_mul_conj(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    return vec2<f32>(a.x * b.x + a.y * b.y, a.y * b.x - a.x * b.y);
}

fn c_conj(a: vec2<f32>) -> vec2<f32> {
    return vec2<f32>(a.x, -a.y);
}

// a * (-i) when sign < 0, a * (+i) when sign > 0.
fn c_mul_i(a: vec2<f32>, sign: f32) -> vec2<f32> {
    return vec2<f32>(-sign * a.y, sign * a.x);
}

fn c_abs2(a: vec2<f32>) -> f32 {
    return a.x * a.x + a.y * a.y;
}
