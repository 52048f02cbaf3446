// Workgroup sum of one f32 per invocation; the including kernel declares `const WG: u32`, its
// workgroup size (a power of two), and calls wg_sum from uniform control flow.
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
