// LayerNorm (torch.nn.LayerNorm over the last dim): x [R, C] row-major, γ/β [C].
//
// Work decomposition: one workgroup of WG = 64 invocations per row (row = wid.x + wid.y·65535, so
// more than 65535 rows fit a 2-D grid). The row is read in units of VEC elements (VEC = 4 when
// C % 4 == 0, so rows start 16-byte aligned); invocation l holds units l, l+WG, … in VPT registers
// (VPT = a power of two ≥ ⌈C/(VEC·WG)⌉, a tile parameter, not a shape), so x is read exactly once.
// Name (pipeline-cache key / profiler label): layernorm_<T>_v<VEC>_r<VPT>.
//
// Precision: storage in T (f32 | f16), every load widened to f32. Mean by workgroup sum, variance
// as Σ(x−mean)² over the registers (two-pass, no E[x²]−E[x]² cancellation), rstd = 1/√(var+eps),
// normalization and γ/β in f32; rounded to T only on the store.

struct Params {
  units: u32,   // units (VEC elements) per row: C / VEC
  rows: u32,    // R, number of rows
  eps: f32,     // added to the variance
  inv_c: f32,   // 1 / C
}

const WG: u32 = 64u;
const VPT: u32 = ${VPT}u;

#if VEC4
alias VT = vec4<${T}>;
alias VF = vec4<f32>;
fn hsum(v: VF) -> f32 { return dot(v, VF(1.0)); }
#else
alias VT = ${T};
alias VF = f32;
fn hsum(v: VF) -> f32 { return v; }
#endif

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<VT>;
@group(0) @binding(2) var<storage, read> gamma: array<VT>;
@group(0) @binding(3) var<storage, read> beta: array<VT>;
@group(0) @binding(4) var<storage, read_write> y: array<VT>;

var<workgroup> red: array<f32, WG>;

// Sum of `v` over the workgroup (tree in workgroup memory); every invocation gets the result.
fn wg_sum(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * 65535u;
  if (row >= p.rows) { return; }  // uniform across the workgroup
  let base = row * p.units;
  var v: array<VF, VPT>;
  var s = 0.0;
  for (var k = 0u; k < VPT; k++) {
    let u = lid + k * WG;
    v[k] = VF(0.0);
    if (u < p.units) {
      v[k] = VF(x[base + u]);
      s += hsum(v[k]);
    }
  }
  let mean = wg_sum(s, lid) * p.inv_c;
  var q = 0.0;
  for (var k = 0u; k < VPT; k++) {
    if (lid + k * WG < p.units) {
      let d = v[k] - VF(mean);
      q += hsum(d * d);
    }
  }
  let rstd = inverseSqrt(wg_sum(q, lid) * p.inv_c + p.eps);
  for (var k = 0u; k < VPT; k++) {
    let u = lid + k * WG;
    if (u < p.units) {
      y[base + u] = VT((v[k] - VF(mean)) * rstd * VF(gamma[u]) + VF(beta[u]));
    }
  }
}
