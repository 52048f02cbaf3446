// GroupNorm (torch.nn.GroupNorm) on x [B, C, S] (S = H·W…, NCHW), γ/β [C], optional SiLU.
//
// Group gi = b·G + g is the contiguous slab x[gi·N .. (gi+1)·N), N = (C/G)·S elements, so every
// kernel addresses a group by one offset. Work is counted in units of VEC elements (VEC = 4 when
// S % 4 == 0, so a vec4 never straddles two channels and every group starts 16-byte aligned).
// Workgroups are WG = 256 invocations; a chunk is CHUNK = 4·WG units, each invocation holding its
// 4 units (lid + k·WG, k = 0..3: coalesced across the workgroup) in registers as a Quad between
// the statistics and the normalization. On an H200, 4 units an invocation beat 1, 2 and 8, and
// writing the 4 loads out (instead of indexing a per-invocation array, which the driver spilled)
// made the fused path 1.3–2× faster.
//
// Modes (one per pipeline; name = pipeline-cache key and profiler label):
//   FUSED_SINGLE  groupnorm_fused_<T>_v<VEC>[_silu]          grid [B·G]
//       One workgroup per group whose group fits one chunk (N ≤ CHUNK·VEC): load once into
//       registers, mean (workgroup sum), variance as Σ(x−mean)² of the same registers (exact
//       two-pass, no E[x²]−E[x]² cancellation), normalize, γ/β, SiLU, store. Reads x once.
//   SPLIT_STATS   groupnorm_split_stats_<T>_v<VEC>            grid [P, B·G]
//       Larger groups: P = ⌈N/(CHUNK·VEC)⌉ chunks per group. Each invocation computes the exact
//       (count, mean, M2 = Σ(x−mean)²) of its 4 units in registers; one tree merges them with
//       Chan et al.'s pairwise update; the chunk's (mean, M2) goes to partials[gi·P + p].
//   SPLIT_APPLY   groupnorm_split_apply_<T>_v<VEC>[_silu]    grid [P, B·G]
//       Each workgroup loads its chunk into registers first (the loads overlap the combine),
//       combines its group's P partials in one shifted reduction (see the kernel), then
//       normalizes with γ/β and SiLU. Together with SPLIT_STATS: x read twice, y written once,
//       no normalized intermediate (the partials are 2 f32 per chunk).
//   NAIVE_STATS / NAIVE_NORMALIZE / NAIVE_AFFINE   groupnorm_naive_{stats,normalize,affine}_…
//       The unfused baseline: one workgroup per group loops over it twice (mean, then Σ(x−mean)²)
//       and writes (mean, rstd); an elementwise pass writes x̂ = (x−mean)·rstd; another writes
//       x̂·γ + β (the SiLU is then the elementwise kernel's). The two elementwise passes
//       (NAIVE_ELEMENTWISE) run one invocation per unit on the 1-D grid of common/grid1d.wgsl.
//
// Precision: storage in T (f32 | f16); every load is widened to f32; sums, mean, M2, rstd and the
// affine/SiLU arithmetic are f32, rounded to T only on the final store. Two-pass / Chan combining
// keeps the variance accurate for inputs with a large mean (e.g. 300 ± 1 in f16), where
// E[x²]−E[x]² would cancel away most of f32's 24 bits.

struct Params {
  nu: u32,      // units (VEC elements) per group: N / VEC
  su: u32,      // units per channel: S / VEC
  cpg: u32,     // channels per group: C / G
  groups: u32,  // G
  chunks: u32,  // P, chunks per group (split modes)
  total: u32,   // units in the whole tensor (naive elementwise passes)
  eps: f32,     // added to the variance
  inv_n: f32,   // 1 / N, N = elements per group
}

const WG: u32 = 256u;
const VEC: u32 = ${VEC}u;    // elements per unit
const CHUNK: u32 = 4u * WG;  // units per chunk

#include "vec_units.wgsl"

@group(0) @binding(0) var<uniform> p: Params;

#include "grid1d.wgsl"


#if FUSED_SINGLE
@group(0) @binding(1) var<storage, read> x: array<VT>;
@group(0) @binding(2) var<storage, read> gamma: array<${T}>;
@group(0) @binding(3) var<storage, read> beta: array<${T}>;
@group(0) @binding(4) var<storage, read_write> y: array<VT>;
#elif SPLIT_STATS
@group(0) @binding(1) var<storage, read> x: array<VT>;
@group(0) @binding(2) var<storage, read_write> partials: array<vec2<f32>>;
#elif SPLIT_APPLY
@group(0) @binding(1) var<storage, read> x: array<VT>;
@group(0) @binding(2) var<storage, read> partials: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read> gamma: array<${T}>;
@group(0) @binding(4) var<storage, read> beta: array<${T}>;
@group(0) @binding(5) var<storage, read_write> y: array<VT>;
#elif NAIVE_STATS
@group(0) @binding(1) var<storage, read> x: array<VT>;
@group(0) @binding(2) var<storage, read_write> stats: array<vec2<f32>>;
#elif NAIVE_NORMALIZE
@group(0) @binding(1) var<storage, read> x: array<VT>;
@group(0) @binding(2) var<storage, read> stats: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<VT>;
#elif NAIVE_AFFINE
@group(0) @binding(1) var<storage, read> x: array<VT>;
@group(0) @binding(2) var<storage, read> gamma: array<${T}>;
@group(0) @binding(3) var<storage, read> beta: array<${T}>;
@group(0) @binding(4) var<storage, read_write> y: array<VT>;
#endif

#include "wg_sum.wgsl"
#include "mean_rstd.wgsl"

// An invocation's 4 units of a chunk starting at `base`: units lid + k·WG that are < count, zero
// elsewhere (zeros add nothing to sums; deviations are masked by `valid`).
struct Quad { v0: VF, v1: VF, v2: VF, v3: VF }

fn ld(base: u32, u: u32, count: u32) -> VF {
  if (u < count) { return VF(x[base + u]); }
  return VF(0.0);
}

fn load4(base: u32, lid: u32, count: u32) -> Quad {
  return Quad(ld(base, lid, count), ld(base, lid + WG, count), ld(base, lid + 2u * WG, count),
              ld(base, lid + 3u * WG, count));
}

// Number of this invocation's units below count.
fn valid(lid: u32, count: u32) -> u32 {
  return select(0u, min((count - lid + WG - 1u) / WG, 4u), lid < count);
}

fn qsum(q: Quad) -> f32 { return hsum(q.v0 + q.v1 + q.v2 + q.v3); }

// Σ(v − m)² over the first `n` units of q.
fn qdev(q: Quad, m: f32, n: u32) -> f32 {
  let d0 = q.v0 - VF(m);
  let d1 = q.v1 - VF(m);
  let d2 = q.v2 - VF(m);
  let d3 = q.v3 - VF(m);
  return select(0.0, hsum(d0 * d0), n > 0u) + select(0.0, hsum(d1 * d1), n > 1u) +
    select(0.0, hsum(d2 * d2), n > 2u) + select(0.0, hsum(d3 * d3), n > 3u);
}

// γ/β of channel c applied to normalized v, then the optional SiLU; f32 in, f32 out.
fn affine(v: VF, c: u32) -> VF {
#if NAIVE_AFFINE
  return v * f32(gamma[c]) + f32(beta[c]);
#elif NORMALIZE_CHUNK
  var r = v * f32(gamma[c]) + f32(beta[c]);
#if SILU
  r = r / (1.0 + exp(-r));
#endif
  return r;
#else
  return v;
#endif
}

#if NORMALIZE_CHUNK
// Normalizes an invocation's units of a chunk (unit `start + u` of group gi, at `base + u`) with
// γ/β and the optional SiLU, and stores them.
fn store4(q: Quad, mean: f32, rstd: f32, gi: u32, base: u32, start: u32, lid: u32, count: u32) {
  let c0 = (gi % p.groups) * p.cpg;
  var u = lid;
  if (u < count) { y[base + u] = VT(affine((q.v0 - VF(mean)) * rstd, c0 + (start + u) / p.su)); }
  u += WG;
  if (u < count) { y[base + u] = VT(affine((q.v1 - VF(mean)) * rstd, c0 + (start + u) / p.su)); }
  u += WG;
  if (u < count) { y[base + u] = VT(affine((q.v2 - VF(mean)) * rstd, c0 + (start + u) / p.su)); }
  u += WG;
  if (u < count) { y[base + u] = VT(affine((q.v3 - VF(mean)) * rstd, c0 + (start + u) / p.su)); }
}
#endif

#if FUSED_SINGLE
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let gi = wid.x;
  let base = gi * p.nu;
  let q = load4(base, lid, p.nu);
  let mean = wg_sum(qsum(q), lid) * p.inv_n;
  let rstd = inverseSqrt(wg_sum(qdev(q, mean, valid(lid, p.nu)), lid) * p.inv_n + p.eps);
  store4(q, mean, rstd, gi, base, 0u, lid, p.nu);
}
#endif

#if SPLIT_STATS
var<workgroup> chan: array<vec3<f32>, WG>;  // (count, mean, M2) per invocation, then per subtree

// Chan et al.'s pairwise update: the statistics of the union of two disjoint sets.
fn chan_merge(a: vec3<f32>, b: vec3<f32>) -> vec3<f32> {
  let n = a.x + b.x;
  if (n == 0.0) { return a; }
  let d = b.y - a.y;
  let f = b.x / n;
  return vec3<f32>(n, a.y + d * f, a.z + b.z + d * d * a.x * f);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let chunk = wid.x;
  let gi = wid.y;
  let start = chunk * CHUNK;
  let count = min(CHUNK, p.nu - start);  // units in this chunk
  let q = load4(gi * p.nu + start, lid, count);
  // This invocation's exact two-pass statistics (no barrier), then one merging tree.
  let nv = valid(lid, count);
  let n = f32(nv * VEC);
  let m = select(0.0, qsum(q) / n, nv > 0u);
  chan[lid] = vec3<f32>(n, m, qdev(q, m, nv));
  workgroupBarrier();
  for (var w = WG / 2u; w > 0u; w >>= 1u) {
    if (lid < w) { chan[lid] = chan_merge(chan[lid], chan[lid + w]); }
    workgroupBarrier();
  }
  if (lid == 0u) { partials[gi * p.chunks + chunk] = chan[0].yz; }
}
#endif

#if SPLIT_APPLY
var<workgroup> red2: array<vec2<f32>, WG>;

// Sum of a vec2 over the workgroup; every invocation gets the result.
fn wg_sum2(v: vec2<f32>, lid: u32) -> vec2<f32> {
  red2[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red2[lid] += red2[lid + s]; }
    workgroupBarrier();
  }
  let r = red2[0];
  workgroupBarrier();
  return r;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let chunk = wid.x;
  let gi = wid.y;
  let start = chunk * CHUNK;
  let count = min(CHUNK, p.nu - start);
  let base = gi * p.nu + start;
  // Issue this chunk's loads first so they are in flight during the combine below.
  let q = load4(base, lid, count);
  // Combine the group's partials in one reduction, shifted by K = the first chunk's mean:
  // with dᵢ = mᵢ − K, mean = K + Σnᵢdᵢ/N and M2 = Σ(M2ᵢ + nᵢdᵢ²) − (Σnᵢdᵢ)²/N. Since
  // n₀(m₀ − mean)² ≤ M2, the cancellation in the last step loses at most log2(P) bits.
  let shift = partials[gi * p.chunks].x;
  var acc = vec2<f32>(0.0);
  for (var i = lid; i < p.chunks; i += WG) {
    let n_i = f32(min(CHUNK, p.nu - i * CHUNK) * VEC);
    let pm = partials[gi * p.chunks + i];
    let d = pm.x - shift;
    acc += vec2<f32>(n_i * d, pm.y + n_i * d * d);
  }
  let tot = wg_sum2(acc, lid);
  let dm = tot.x * p.inv_n;
  let rstd = inverseSqrt(max(tot.y * p.inv_n - dm * dm, 0.0) + p.eps);
  store4(q, shift + dm, rstd, gi, base, start, lid, count);
}
#endif

#if NAIVE_STATS
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let gi = wid.x;
  let st = mean_rstd(gi * p.nu, p.nu, lid, p.inv_n, p.eps);
  if (lid == 0u) { stats[gi] = st; }
}
#endif

#if NAIVE_ELEMENTWISE
@compute @workgroup_size(WG)
fn main(
  @builtin(global_invocation_id) gid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let i = grid1d_index(gid, nwg, WG);
  if (i >= p.total) { return; }
#if NAIVE_NORMALIZE
  let st = stats[i / p.nu];
  y[i] = VT((VF(x[i]) - VF(st.x)) * st.y);
#else
  y[i] = VT(affine(VF(x[i]), (i / p.su) % (p.groups * p.cpg)));
#endif
}
#endif
