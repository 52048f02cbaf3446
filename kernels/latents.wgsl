// Linear combination of stored latents: y[r, e] = Σ_j c[j] · basis[j, e] for r < copies.
//
// The denoising loop keeps every tensor the scheduler has seen (initial noise, each guided noise
// prediction, each ancestral noise draw) as a row of `basis` [d, n] (f32), and the scheduler's
// arithmetic — which is elementwise-linear with timestep-dependent scalars — runs on the CPU on
// coefficient vectors instead of on the latents. This kernel turns a coefficient vector into a
// tensor (the UNet input, duplicated `copies` times for the [uncond, cond] batch, or the final
// latents), so no step waits for a readback.
//
// Work decomposition: one invocation per element e (256 per workgroup, on the 1-D grid of
// common/grid1d.wgsl), looping over the d basis rows; coefficients come from a storage buffer at
// `coeff_offset` (each use has its own slice, written before the submit that reads it).
// Specializations: lincomb_<TO> (output storage type). Precision: f32 sums; d ≤ ~100.

struct Params {
  n: u32,            // elements per basis row
  d: u32,            // basis rows in use
  coeff_offset: u32, // first coefficient of this use, in f32 elements
  copies: u32,       // output repeats of the n-vector
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> basis: array<f32>;
@group(0) @binding(2) var<storage, read> coeffs: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<${TO}>;

#include "grid1d.wgsl"

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = grid1d_index(gid, nwg, 256u);
  if (e >= p.n) { return; }
  var acc = 0.0;
  for (var j = 0u; j < p.d; j++) {
    let c = coeffs[p.coeff_offset + j];
    if (c != 0.0) { acc += c * basis[j * p.n + e]; }
  }
  for (var r = 0u; r < p.copies; r++) { y[r * p.n + e] = ${TO}(acc); }
}
