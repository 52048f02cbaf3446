// im2col for convolutions run as a GEMM (src/ops/conv2d.ts, the `auto` conv route for strided and
// other non-Winograd, non-1×1 convolutions): the columns the direct kernel gathers on the fly,
// stored once so that the tiled matmul (kernels/linear.wgsl, 2–3× the direct kernel's rate at the
// UNet's stride-2 downsamplers) can multiply them:
//
//   col[b, k, n] = x[b, c, oy·stride − pad_top + ky, ox·stride − pad_left + kx]  (0 outside)
//   k = (c·KS + ky)·KS + kx ∈ [0, K = C·KS·KS) — the row order of W [O, C, KS, KS] as [O, K],
//   n = oy·OW + ox ∈ [0, N = OH·OW).
// Then y[b] = W · col[b] ([O, K]·[K, N]) is NCHW directly.
//
// Work decomposition: one invocation per col element, 256 a workgroup, consecutive invocations
// along n (coalesced stores; loads strided by `stride`), on the 1-D grid of common/grid1d.wgsl. Memory-bound: B·K·N stores (the caller caps the buffer's size).
// Precision: a copy in T; no arithmetic.
//
// Specializations (pipeline-cache key / profiler label): conv2d_im2col_<T>_<KS>x<KS>

struct Params {
  C: u32,
  H: u32,
  W: u32,
  K: u32,         // C·KS·KS
  OW: u32,
  N: u32,         // OH·OW
  stride: u32,
  pad_top: u32,
  pad_left: u32,
  total: u32,     // B·K·N
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<${T}>;
@group(0) @binding(2) var<storage, read_write> col: array<${T}>;

const KS = ${KS}u;

#include "grid1d.wgsl"

@compute @workgroup_size(256)
fn main(
  @builtin(global_invocation_id) gid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let i = grid1d_index(gid, nwg, 256u);
  if (i >= p.total) { return; }
  let n = i % p.N;
  let bk = i / p.N;
  let k = bk % p.K;
  let b = bk / p.K;
  let c = k / (KS * KS);
  let r = k % (KS * KS);
  let oy = n / p.OW;
  let ox = n % p.OW;
  let iy = i32(oy * p.stride + r / KS) - i32(p.pad_top);
  let ix = i32(ox * p.stride + r % KS) - i32(p.pad_left);
  var v = ${T}(0.0);
  if (iy >= 0 && iy < i32(p.H) && ix >= 0 && ix < i32(p.W)) {
    v = x[((b * p.C + c) * p.H + u32(iy)) * p.W + u32(ix)];
  }
  col[i] = v;
}
