// A unit of VEC elements (kernels that read a row or group 4 elements at a time when VEC4): VT is
// its storage type (T = f32 | f16), VF the f32 type it is widened to, hsum the sum of its lanes.
#if VEC4
alias VT = vec4<${T}>;
alias VF = vec4<f32>;
fn hsum(v: VF) -> f32 { return dot(v, VF(1.0)); }
#else
alias VT = ${T};
alias VF = f32;
fn hsum(v: VF) -> f32 { return v; }
#endif
