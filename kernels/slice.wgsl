// Channel slice with optional clamp: y[b, c, s] = clamp(x[b, start + c, s], lo, hi).
//
// Work decomposition: one invocation per output element, 256 per workgroup, on the 1-D grid of
// common/grid1d.wgsl. Used to split the VAE encoder's moments into mean and
// log-variance (clamped to [-30, 20] as diffusers' DiagonalGaussianDistribution does).
// Specializations: slice_channels_<T>. Precision: the clamp happens in f32.

struct Params {
  n: u32,        // output elements = B · count · S
  count: u32,    // channels kept
  channels: u32, // channels of x
  start: u32,    // first channel kept
  spatial: u32,  // S = H · W
  lo: f32,
  hi: f32,
  _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<${T}>;
@group(0) @binding(2) var<storage, read_write> y: array<${T}>;

#include "grid1d.wgsl"

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = grid1d_index(gid, nwg, 256u);
  if (i >= p.n) { return; }
  let s = i % p.spatial;
  let c = (i / p.spatial) % p.count;
  let b = i / (p.spatial * p.count);
  let v = f32(x[(b * p.channels + p.start + c) * p.spatial + s]);
  y[i] = ${T}(clamp(v, p.lo, p.hi));
}
