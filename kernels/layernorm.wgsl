// LayerNorm (torch.nn.LayerNorm over the last dim): x [R, C] row-major, γ/β [C].
//
// Work decomposition: one workgroup of WG invocations per row, on the 1-D grid of
// common/grid1d.wgsl with one row a workgroup (more than 65535 rows wrap into y). The row is read
// in units of VEC elements (VEC = 4 when C % 4 == 0, so rows start 16-byte aligned).
//   layernorm_<T>_v<VEC>_w<WG>       rows of up to 4·WG units, WG ∈ {64, 128, 256} the smallest
//       that fits (a tile choice, not a shape: SD's C = 320 → 64, 768 → 64, 1280 → 128): each
//       invocation holds its 4 units (lid + k·WG, coalesced) in registers as a Quad, so x is
//       read once. The 4 loads are written out (no dynamically indexed array, which the driver
//       spilled: a 1.3–2× slowdown measured on the GroupNorm kernels of an H200).
//   layernorm_<T>_v<VEC>_w256_loop   longer rows: three strided passes over the row (sum, Σ(x−mean)²,
//       normalize), the second and third re-reading x from cache.
//
// Precision: storage in T (f32 | f16), every load widened to f32. Mean by workgroup sum, variance
// as Σ(x−mean)² (two-pass, no E[x²]−E[x]² cancellation), rstd = 1/√(var+eps), normalization and
// γ/β in f32; rounded to T only on the store.

struct Params {
  units: u32,   // units (VEC elements) per row: C / VEC
  rows: u32,    // R, number of rows
  eps: f32,     // added to the variance
  inv_c: f32,   // 1 / C
}

const WG: u32 = ${WG}u;

#include "vec_units.wgsl"

@group(0) @binding(0) var<uniform> p: Params;

#include "grid1d.wgsl"

@group(0) @binding(1) var<storage, read> x: array<VT>;
@group(0) @binding(2) var<storage, read> gamma: array<VT>;
@group(0) @binding(3) var<storage, read> beta: array<VT>;
@group(0) @binding(4) var<storage, read_write> y: array<VT>;

#include "wg_sum.wgsl"
#include "mean_rstd.wgsl"

// x̂·γ + β for unit u of a row.
fn affine(v: VF, mean: f32, rstd: f32, u: u32) -> VT {
  return VT((v - VF(mean)) * rstd * VF(gamma[u]) + VF(beta[u]));
}

#if !LOOP
// An invocation's 4 units of the row at `base`: units lid + k·WG below p.units, zero elsewhere.
struct Quad { v0: VF, v1: VF, v2: VF, v3: VF }

fn ld(base: u32, u: u32) -> VF {
  if (u < p.units) { return VF(x[base + u]); }
  return VF(0.0);
}

fn sq_dev(v: VF, mean: f32, u: u32) -> f32 {
  let d = v - VF(mean);
  return select(0.0, hsum(d * d), u < p.units);
}
#endif

@compute @workgroup_size(WG)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = grid1d_index(wid, nwg, 1u);
  if (row >= p.rows) { return; }  // uniform across the workgroup
  let base = row * p.units;
#if LOOP
  let st = mean_rstd(base, p.units, lid, p.inv_c, p.eps);
  for (var u = lid; u < p.units; u += WG) { y[base + u] = affine(VF(x[base + u]), st.x, st.y, u); }
#else
  let u0 = lid;
  let u1 = lid + WG;
  let u2 = lid + 2u * WG;
  let u3 = lid + 3u * WG;
  let q = Quad(ld(base, u0), ld(base, u1), ld(base, u2), ld(base, u3));
  let mean = wg_sum(hsum(q.v0 + q.v1 + q.v2 + q.v3), lid) * p.inv_c;
  let dev = sq_dev(q.v0, mean, u0) + sq_dev(q.v1, mean, u1) + sq_dev(q.v2, mean, u2) +
    sq_dev(q.v3, mean, u3);
  let rstd = inverseSqrt(wg_sum(dev, lid) * p.inv_c + p.eps);
  if (u0 < p.units) { y[base + u0] = affine(q.v0, mean, rstd, u0); }
  if (u1 < p.units) { y[base + u1] = affine(q.v1, mean, rstd, u1); }
  if (u2 < p.units) { y[base + u2] = affine(q.v2, mean, rstd, u2); }
  if (u3 < p.units) { y[base + u3] = affine(q.v3, mean, rstd, u3); }
#endif
}
