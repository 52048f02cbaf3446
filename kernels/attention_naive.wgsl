// Unfused attention, as a framework without fused kernels runs it: the scores are written to
// memory, a softmax kernel normalizes them row by row, and a second matmul multiplies by V.
//
// Layout: q [B, Nq, H·d], k and v [B, Nk, H·d], o [B, Nq, H·d] (token-major, head h at channels
// h·d … h·d+d−1). The host splits the work into chunks whose scores fit one storage binding:
// batch·heads bh0 … bh0+BH−1 and query rows i0 … i0+rows−1; S / P for a chunk is [BH, rows, Nk]
// in f32.
//
// Three kernels (entry point main in each):
// SCORES (attention_naive_scores_<T>): S = Q Kᵀ · scale, masked (causal: key > query) to NEG.
//   A batched "NT" matmul: one workgroup of 256 invocations per 64 × 64 tile of S and
//   batch·head; grid [⌈Nk/64⌉, ⌈rows/64⌉, BH]. Q and K are staged through workgroup memory
//   16 channels at a time (stored k-major as vec4s of 4 rows/keys); invocation (ty, tx) of the
//   16 × 16 grid accumulates the 4 × 4 block rows ty·4…, keys tx·4… as outer products.
// SOFTMAX (attention_naive_softmax): P = softmax(S) per row, in place. One workgroup of 256
//   invocations per row; grid [rows, BH]. Pass 1 row max m, pass 2 l = Σ exp(S − m), pass 3
//   P = exp(S − m) / l; each with a tree reduction in workgroup memory.
// PV (attention_naive_pv_<T>): O = P V. The same 64 × 64 tiled matmul ("NN"), tile = 64 query
//   rows × 64 output channels, the reduction running over Nk, 16 keys per staged chunk; grid
//   [⌈d/64⌉, ⌈rows/64⌉, BH]. Writes o at the head's channels.
//
// Precision: S and P are f32 whatever T is (a framework's upcast softmax); products accumulate in
// f32; only O is narrowed to T. NEG (−3e38) stands for −∞ (exp(NEG − m) = 0).
// Loops over register arrays and the 16-step inner product are marked #unroll (expanded by the
// host, src/ops/attention.ts): a fair baseline — rolled, NVIDIA's Vulkan compiler keeps the
// accumulators in local memory.

struct Params {
  nq: u32,       // query tokens per batch item
  nk: u32,       // key/value tokens per batch item
  heads: u32,    // H
  d: u32,        // head dim
  scale: f32,    // softmax scale (natural-log domain)
  causal: u32,   // 1: key j is masked for query i when j > i
  bh0: u32,      // first batch·head of this chunk
  i0: u32,       // first query row of this chunk
  rows: u32,     // query rows of this chunk
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

const NEG = -3.0e38;

@group(0) @binding(0) var<uniform> p: Params;
#if SOFTMAX
@group(0) @binding(1) var<storage, read_write> s: array<f32>;  // S in, P out [BH, rows, Nk]

var<workgroup> red: array<f32, 256>;

fn reduce(lid: u32, x: f32, is_max: bool) -> f32 {
  red[lid] = x;
  workgroupBarrier();
  for (var w = 128u; w > 0u; w >>= 1u) {
    if (lid < w) {
      if (is_max) { red[lid] = max(red[lid], red[lid + w]); } else { red[lid] += red[lid + w]; }
    }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
  let row = (wg.y * p.rows + wg.x) * p.nk;
  var m = NEG;
  for (var j = lid; j < p.nk; j += 256u) { m = max(m, s[row + j]); }
  m = reduce(lid, m, true);
  var l = 0.0;
  for (var j = lid; j < p.nk; j += 256u) { l += exp(s[row + j] - m); }
  l = reduce(lid, l, false);
  let inv = 1.0 / l;
  for (var j = lid; j < p.nk; j += 256u) { s[row + j] = exp(s[row + j] - m) * inv; }
}
#else
#if SCORES
@group(0) @binding(1) var<storage, read> q: array<${T}>;
@group(0) @binding(2) var<storage, read> k: array<${T}>;
@group(0) @binding(3) var<storage, read_write> s: array<f32>;  // S [BH, rows, Nk]
#else
@group(0) @binding(1) var<storage, read> s: array<f32>;        // P [BH, rows, Nk]
@group(0) @binding(2) var<storage, read> v: array<${T}>;
@group(0) @binding(3) var<storage, read_write> o: array<${T}>;
#endif

const TILE = 64u;   // output tile edge
const KC = 16u;     // reduction elements per staged chunk

#include "attention_heads.wgsl"

// Staged chunks, k-major: a[kk·16 + r/4][r%4] holds A[row r, k kk]; b likewise for the columns.
var<workgroup> ta: array<vec4<f32>, 256>;
var<workgroup> tb: array<vec4<f32>, 256>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
  let tx = lid % 16u;
  let ty = lid / 16u;
  let n0 = wg.x * TILE;          // first output column (key for SCORES, channel for PV)
  let r0 = wg.y * TILE;          // first query row within the chunk
  let bhl = wg.z;
  let bh = p.bh0 + bhl;
  let ld = p.heads * p.d;
  let qbase = head_base(bh, p.nq);
  let kbase = head_base(bh, p.nk);
  let srow = bhl * p.rows;       // first row of this batch·head in S
#if SCORES
  let kdim = p.d;                // reduction over channels
  let ncols = p.nk;
#else
  let kdim = p.nk;               // reduction over keys
  let ncols = p.d;
#endif

  var acc: array<vec4<f32>, 4>;
  #unroll
  for (var x = 0u; x < 4u; x++) { acc[x] = vec4<f32>(0.0); }
  for (var k0 = 0u; k0 < kdim; k0 += KC) {
    workgroupBarrier();
    #unroll
    for (var t = 0u; t < 4u; t++) {
      let e = lid + 256u * t;
      // A: 64 rows × 16 reduction elements, read along the reduction dim.
      let ar = e / KC;
      let ak = e % KC;
      var av = 0.0;
      if (r0 + ar < p.rows && k0 + ak < kdim) {
#if SCORES
        av = f32(q[qbase + (p.i0 + r0 + ar) * ld + k0 + ak]);
#else
        av = s[(srow + r0 + ar) * p.nk + k0 + ak];
#endif
      }
      ta[ak * 16u + ar / 4u][ar % 4u] = av;
#if SCORES
      // B (SCORES): 64 keys × 16 channels, read along the channels.
      let bn = e / KC;
      let bk = e % KC;
      var bv = 0.0;
      if (n0 + bn < ncols && k0 + bk < kdim) {
        bv = f32(k[kbase + (n0 + bn) * ld + k0 + bk]);
      }
#else
      // B (PV): 16 keys × 64 channels, read along the channels.
      let bn = e % TILE;
      let bk = e / TILE;
      var bv = 0.0;
      if (n0 + bn < ncols && k0 + bk < kdim) {
        bv = f32(v[kbase + (k0 + bk) * ld + n0 + bn]);
      }
#endif
      tb[bk * 16u + bn / 4u][bn % 4u] = bv;
    }
    workgroupBarrier();
    #unroll
    for (var kk = 0u; kk < KC; kk++) {
      let a4 = ta[kk * 16u + ty];
      let b4 = tb[kk * 16u + tx];
      #unroll
      for (var x = 0u; x < 4u; x++) { acc[x] += a4[x] * b4; }
    }
  }

  #unroll
  for (var x = 0u; x < 4u; x++) {
    let r = r0 + ty * 4u + x;
    let i = p.i0 + r;
    #unroll
    for (var y = 0u; y < 4u; y++) {
      let n = n0 + tx * 4u + y;
      if (r < p.rows && n < ncols) {
#if SCORES
        var sv = acc[x][y] * p.scale;
        if (p.causal != 0u && n > i) { sv = NEG; }
        s[(srow + r) * p.nk + n] = sv;
#else
        o[qbase + i * ld + n] = ${T}(acc[x][y]);
#endif
      }
    }
  }
}
#endif
