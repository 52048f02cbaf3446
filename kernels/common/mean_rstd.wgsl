// Mean and 1/√(variance + eps) of x[base + u], u < count, by a workgroup walking the range with
// stride WG: two passes (sum, then Σ(x − mean)², the second re-reading x), so there is no
// E[x²] − E[x]² cancellation. All f32. The including kernel binds x (array<VT>) and declares WG.
#include "vec_units.wgsl"
#include "wg_sum.wgsl"

fn mean_rstd(base: u32, count: u32, lid: u32, inv_n: f32, eps: f32) -> vec2<f32> {
  var s = 0.0;
  for (var u = lid; u < count; u += WG) { s += hsum(VF(x[base + u])); }
  let mean = wg_sum(s, lid) * inv_n;
  var q = 0.0;
  for (var u = lid; u < count; u += WG) {
    let d = VF(x[base + u]) - VF(mean);
    q += hsum(d * d);
  }
  return vec2<f32>(mean, inverseSqrt(wg_sum(q, lid) * inv_n + eps));
}
