// Elementwise kernels over flat tensors.
//
// Work decomposition: one invocation per element (or per 4-vector where noted), 256 invocations a
// workgroup, on the 1-D grid of common/grid1d.wgsl (more than 65535 workgroups wrap into y).
// Specializations (pipeline-cache key / profiler label): elementwise_<OP>_<T>.
//   T  : storage type of every tensor (f32 | f16).
//   OP : add (a + b, b broadcast: b index = (i / p.bdiv) % p.bn — equal shapes: bdiv 1, bn n;
//        a per-(batch, channel) bias over H×W: bdiv H·W, bn B·C),
//        mul, cfg (classifier-free guidance: a = [eps_u; eps_c], each n long:
//        eps_u + alpha·(eps_c − eps_u)), silu, gelu (erf-exact), quick_gelu (x·σ(1.702x)), scale (a·p.alpha), cast.
// Precision: arithmetic in f32 (values are widened on load and narrowed on store).

struct Params {
  n: u32,      // number of output elements
  bn: u32,     // number of elements of b (b index = i % bn); = n when shapes are equal
  alpha: f32,  // scale factor for OP scale
  bdiv: u32,   // b index = (i / bdiv) % bn
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<${T}>;
#if BINARY
@group(0) @binding(2) var<storage, read> b: array<${T}>;
@group(0) @binding(3) var<storage, read_write> y: array<${TO}>;
#else
@group(0) @binding(2) var<storage, read_write> y: array<${TO}>;
#endif

#include "grid1d.wgsl"

fn erf_approx(x: f32) -> f32 {
  // Abramowitz–Stegun 7.1.26 is too coarse (2.5e-5 abs); use the tanh-free rational
  // approximation of W. J. Cody via erfc for |x| > 0.5 and a series below: max abs error 1.2e-7.
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
    t * (-0.82215223 + t * 0.17087277)))))))));
  return select(r - 1.0, 1.0 - r, x >= 0.0);
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = grid1d_index(gid, nwg, 256u);
  if (i >= p.n) { return; }
  let x = f32(a[i]);
#if OP_ADD
  let v = x + f32(b[(i / p.bdiv) % p.bn]);
#elif OP_MUL
  let v = x * f32(b[(i / p.bdiv) % p.bn]);
#elif OP_CFG
  let v = x + p.alpha * (f32(a[i + p.n]) - x);
#elif OP_SILU
  let v = x / (1.0 + exp(-x));
#elif OP_GELU
  let v = 0.5 * x * (1.0 + erf_approx(x * 0.7071067811865476));
#elif OP_QUICK_GELU
  let v = x / (1.0 + exp(-1.702 * x));
#elif OP_SCALE
  let v = x * p.alpha;
#else
  let v = x;
#endif
  y[i] = ${TO}(v);
}
