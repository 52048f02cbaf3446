// Partitioned softmax attention — "Speed Is All You Need" (Chen et al. 2023, arXiv 2304.11267),
// Fig. 2: the key axis is split into partitions; each partition's row max and sum of exponentials
// are computed on their own, stored as small per-partition statistics, and combined afterwards,
// with the softmax normalization folded into the product with V. The full score matrix is never
// kept: only one partition's block of S lives, in workgroup memory.
//
// Layout: q [B, Nq, H·d], k and v [B, Nk, H·d], o [B, Nq, H·d] (token-major, head h at channels
// h·d … h·d+d−1). Per-partition statistics, for the batch·heads of one dispatch (bh − bh0):
// m [BH, NP, Nq] and l [BH, NP, Nq] (f32), partial O [BH, NP, Nq, d] (f32), NP = ⌈Nk / PW⌉.
//
// Two kernels:
// PARTIAL (attention_partitioned_partial_<T>_kc<KC4>_dn<DN>): one workgroup of 128 invocations
//   per (Q tile of BR = 32 rows × output-column chunk, partition of PW = 128 keys, batch·head);
//   grid [⌈Nq/32⌉·⌈d/DV⌉, NP, BH]. Invocations form a 16 × 8 grid (ty, tx); (ty, tx) owns rows
//   ty·2, ty·2+1 of the tile, the keys tx + 8·y (y < 4) of each 32-key sub-tile in S, and the DN
//   contiguous output columns tx·DN … of the chunk (DV = 8·DN) in O.
//   1. S = Q Kᵀ · scale · log2(e) for the partition's four 32-key sub-tiles (Q and K staged in
//      chunks of KC4 vec4s along d), masked to NEG, written to the block S [BR, PW] in workgroup
//      memory.
//   2. m_p = rowmax(S) over the partition (exact, not running), P = exp2(S − m_p) in place,
//      l_p = rowsum(P).
//   3. O_p = P V with V staged 16 keys at a time; O_p is not normalized.
//   Writes m_p, l_p and O_p. A partition wholly above the diagonal (causal) writes m_p = NEG,
//   l_p = 0 and no O_p.
// COMBINE (attention_partitioned_combine_<T>): one workgroup of 64 invocations per (query row,
//   batch·head); grid [Nq, BH]. M = max_p m_p, w_p = exp2(m_p − M), L = Σ_p w_p l_p,
//   O = Σ_p w_p O_p / L — the normalization by L applied to the d-wide product with V instead of
//   to the Nk-wide row of P. Partitions with m_p = NEG are skipped.
//
// Workgroup memory of PARTIAL (one vec4 array; ≤ 30 KiB): [0, A) stage: Q chunk BR × KS and K chunk
// BC × KS vec4s, or a V slab VC × DV scalars; [A, RED) the block S/P, BR × (PW+1) scalars (padded
// row); [RED, …) row-reduction scratch, BR × 8 scalars.
//
// Specializations: T storage type of q, k, v, o (f32 | f16); KC4 vec4s of d per staged chunk; DN
// output columns per invocation; A, RED, SMV region offsets/size computed by the host.
// Precision: S, P, m_p, l_p, O_p and the combine are f32 whatever T is; the statistics and partials
// are stored in f32; only the final O is narrowed to T. NEG (−3e38) stands for −∞; masked scores
// give P = 0 explicitly.

struct Params {
  nq: u32,       // query tokens per batch item
  nk: u32,       // key/value tokens per batch item
  heads: u32,    // H
  d: u32,        // head dim
  scale: f32,    // softmax scale × log2(e)
  causal: u32,   // 1: key j is masked for query i when j > i
  np: u32,       // partitions: ⌈Nk / PW⌉
  bh0: u32,      // first batch·head of this dispatch
  nchunk: u32,   // output-column chunks per Q tile (PARTIAL): ⌈d / DV⌉
  lofs: u32,     // word offset of l in the m/l buffer: BH · NP · Nq
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
#if PARTIAL
@group(0) @binding(1) var<storage, read> q: array<${T}>;
@group(0) @binding(2) var<storage, read> k: array<${T}>;
@group(0) @binding(3) var<storage, read> v: array<${T}>;
@group(0) @binding(4) var<storage, read_write> ml: array<f32>;  // m [BH, NP, Nq] then l [BH, NP, Nq]
@group(0) @binding(5) var<storage, read_write> op: array<f32>;  // O_p [BH, NP, Nq, d]
#else
@group(0) @binding(1) var<storage, read> ml: array<f32>;
@group(0) @binding(2) var<storage, read> op: array<f32>;
@group(0) @binding(3) var<storage, read_write> o: array<${T}>;
#endif

const NEG = -3.0e38;     // stands for −∞

#if PARTIAL
const WG = 128u;         // invocations: 16 × TC
const TC = 8u;           // invocations along a row
const RM = 2u;           // Q rows per invocation
const RN = 4u;           // keys per invocation per sub-tile
const BR = 32u;          // Q rows per workgroup
const BC = 32u;          // keys per S sub-tile
const NSUB = 4u;         // sub-tiles per partition
const PW = 128u;         // keys per partition (NSUB × BC)
const VC = 16u;          // keys per staged V slab
const KC4 = ${KC4}u;     // vec4s of d per staged Q/K chunk
const KS = ${KC4}u + 1u; // padded vec4 row stride of the staged chunks
const DN = ${DN}u;       // O columns per invocation
const DV = ${DN}u * 8u;  // O columns per workgroup
const SST = PW + 1u;     // padded row stride of the S/P block (scalars)
const A = ${A}u;         // word offset of the S/P block
const RED = ${RED}u;     // word offset of the reduction scratch

var<workgroup> sm: array<vec4<f32>, ${SMV}>;

fn smr(i: u32) -> f32 {
  return sm[i >> 2u][i & 3u];
}

fn smw(i: u32, x: f32) {
  sm[i >> 2u][i & 3u] = x;
}

// Four consecutive head channels c … c+3 of token `row`, zero outside the matrix.
fn load4(which: u32, base: u32, row: u32, rows: u32, c: u32, ld: u32) -> vec4<f32> {
  var r = vec4<f32>(0.0);
  if (row >= rows) { return r; }
  let at = base + row * ld + c;
  #unroll
  for (var e = 0u; e < 4u; e++) {
    if (c + e < p.d) {
      if (which == 0u) { r[e] = f32(q[at + e]); } else { r[e] = f32(k[at + e]); }
    }
  }
  return r;
}

@compute @workgroup_size(128)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
  let tx = lid % TC;
  let ty = lid / TC;
  let i0 = (wg.x / p.nchunk) * BR;   // first query row of the tile
  let c0 = (wg.x % p.nchunk) * DV;   // first output column of the chunk
  let part = wg.y;                   // partition index
  let bhl = wg.z;                    // batch·head within this dispatch
  let bh = p.bh0 + bhl;
  let b = bh / p.heads;
  let h = bh % p.heads;
  let ld = p.heads * p.d;
  let qbase = b * p.nq * ld + h * p.d;
  let kbase = b * p.nk * ld + h * p.d;
  let jp = part * PW;                // first key of the partition
  let stat = (bhl * p.np + part) * p.nq;  // row 0 of this partition's m/l
  let lofs = p.lofs;                       // l follows m

  // A partition wholly above the diagonal contributes nothing.
  if (p.causal != 0u && jp > min(i0 + BR, p.nq) - 1u) {
    if (c0 == 0u) {
      for (var r = lid; r < BR; r += WG) {
        if (i0 + r < p.nq) {
          ml[stat + i0 + r] = NEG;
          ml[lofs + stat + i0 + r] = 0.0;
        }
      }
    }
    return;
  }

  // Keys of the partition that any row of the tile can see, and the sub-tiles holding them.
  var jend = p.nk;
  if (p.causal != 0u) { jend = min(p.nk, i0 + BR); }
  let jn = min(PW, jend - jp);
  let nsub = (jn + BC - 1u) / BC;

  // 1. S = Q Kᵀ for the partition's sub-tiles, into the block (log2 domain, masked).
  var mx: array<f32, RM>;
  #unroll
  for (var x = 0u; x < RM; x++) { mx[x] = NEG; }
  for (var sub = 0u; sub < nsub; sub++) {
    let j0 = jp + sub * BC;
    var s: array<array<f32, RN>, RM>;
    #unroll
    for (var x = 0u; x < RM; x++) {
      #unroll
      for (var y = 0u; y < RN; y++) { s[x][y] = 0.0; }
    }
    for (var kc = 0u; kc < p.d; kc += 4u * KC4) {
      workgroupBarrier();
      for (var e = lid; e < BR * KC4; e += WG) {
        let r = e / KC4;
        let c4 = e % KC4;
        sm[r * KS + c4] = load4(0u, qbase, i0 + r, p.nq, kc + 4u * c4, ld);
      }
      for (var e = lid; e < BC * KC4; e += WG) {
        let r = e / KC4;
        let c4 = e % KC4;
        sm[(BR + r) * KS + c4] = load4(1u, kbase, j0 + r, p.nk, kc + 4u * c4, ld);
      }
      workgroupBarrier();
      #unroll
      for (var c4 = 0u; c4 < KC4; c4++) {
        var qa: array<vec4<f32>, RM>;
        var kb: array<vec4<f32>, RN>;
        #unroll
        for (var x = 0u; x < RM; x++) { qa[x] = sm[(ty * RM + x) * KS + c4]; }
        #unroll
        for (var y = 0u; y < RN; y++) { kb[y] = sm[(BR + tx + TC * y) * KS + c4]; }
        #unroll
        for (var x = 0u; x < RM; x++) {
          #unroll
          for (var y = 0u; y < RN; y++) { s[x][y] += dot(qa[x], kb[y]); }
        }
      }
    }
    #unroll
    for (var x = 0u; x < RM; x++) {
      let row = ty * RM + x;
      let i = i0 + row;
      #unroll
      for (var y = 0u; y < RN; y++) {
        let jl = sub * BC + tx + TC * y;   // key within the partition
        let j = jp + jl;
        var sv = s[x][y] * p.scale;
        if (j >= p.nk || (p.causal != 0u && j > i)) { sv = NEG; }
        mx[x] = max(mx[x], sv);
        smw(A + row * SST + jl, sv);
      }
    }
  }

  // 2. Partition row max m_p, P = exp2(S − m_p) in place (own entries), l_p.
  #unroll
  for (var x = 0u; x < RM; x++) { smw(RED + (ty * RM + x) * TC + tx, mx[x]); }
  workgroupBarrier();
  var mp: array<f32, RM>;
  var lp: array<f32, RM>;
  #unroll
  for (var x = 0u; x < RM; x++) {
    let row = ty * RM + x;
    var mt = NEG;
    #unroll
    for (var t = 0u; t < TC; t++) { mt = max(mt, smr(RED + row * TC + t)); }
    mp[x] = mt;
    var ls = 0.0;
    for (var sub = 0u; sub < nsub; sub++) {
      #unroll
      for (var y = 0u; y < RN; y++) {
        let at = A + row * SST + sub * BC + tx + TC * y;
        let sv = smr(at);
        let pv = select(exp2(sv - mt), 0.0, sv <= NEG);
        ls += pv;
        smw(at, pv);
      }
    }
    lp[x] = ls;
  }
  workgroupBarrier();            // P complete; maxima read
  #unroll
  for (var x = 0u; x < RM; x++) { smw(RED + (ty * RM + x) * TC + tx, lp[x]); }

  // 3. O_p = P V, V staged VC keys at a time.
  var acc: array<array<f32, DN>, RM>;
  #unroll
  for (var x = 0u; x < RM; x++) {
    #unroll
    for (var c = 0u; c < DN; c++) { acc[x][c] = 0.0; }
  }
  for (var v0 = 0u; v0 < jn; v0 += VC) {
    workgroupBarrier();
    for (var e = lid; e < VC * DV; e += WG) {
      let r = e / DV;
      let c = c0 + e % DV;
      var val = 0.0;
      if (jp + v0 + r < p.nk && c < p.d) { val = f32(v[kbase + (jp + v0 + r) * ld + c]); }
      smw(e, val);
    }
    workgroupBarrier();
    let vn = min(VC, jn - v0);
    for (var jj = 0u; jj < vn; jj++) {
      var vr: array<f32, DN>;
      #unroll
      for (var c = 0u; c < DN; c++) { vr[c] = smr(jj * DV + tx * DN + c); }
      #unroll
      for (var x = 0u; x < RM; x++) {
        let pv = smr(A + (ty * RM + x) * SST + v0 + jj);
        #unroll
        for (var c = 0u; c < DN; c++) { acc[x][c] += pv * vr[c]; }
      }
    }
  }

  // Write m_p, l_p (l summed over the row's TC invocations) and O_p.
  #unroll
  for (var x = 0u; x < RM; x++) {
    let row = ty * RM + x;
    let i = i0 + row;
    if (i < p.nq && c0 == 0u && tx == 0u) {
      var lt = 0.0;
      #unroll
      for (var t = 0u; t < TC; t++) { lt += smr(RED + row * TC + t); }
      ml[stat + i] = mp[x];
      ml[lofs + stat + i] = lt;
    }
    let ob = (stat + i) * p.d;
    #unroll
    for (var c = 0u; c < DN; c++) {
      let col = c0 + tx * DN + c;
      if (i < p.nq && col < p.d) { op[ob + col] = acc[x][c]; }
    }
  }
}
#endif

#if COMBINE
@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
  let i = wg.x;                      // query row
  let bhl = wg.y;                    // batch·head within this dispatch
  let bh = p.bh0 + bhl;
  let b = bh / p.heads;
  let h = bh % p.heads;
  let lofs = p.lofs;

  // M = max_p m_p; L = Σ_p exp2(m_p − M) l_p (every invocation computes them: np is small).
  var big_m = NEG;
  for (var part = 0u; part < p.np; part++) {
    big_m = max(big_m, ml[(bhl * p.np + part) * p.nq + i]);
  }
  var big_l = 0.0;
  for (var part = 0u; part < p.np; part++) {
    let at = (bhl * p.np + part) * p.nq + i;
    let mp = ml[at];
    if (mp > NEG) { big_l += exp2(mp - big_m) * ml[lofs + at]; }
  }
  let inv = 1.0 / big_l;
  let ob = (b * p.nq + i) * p.heads * p.d + h * p.d;
  for (var c = lid; c < p.d; c += 64u) {
    var acc = 0.0;
    for (var part = 0u; part < p.np; part++) {
      let at = (bhl * p.np + part) * p.nq + i;
      let mp = ml[at];
      if (mp > NEG) { acc += exp2(mp - big_m) * op[at * p.d + c]; }
    }
    o[ob + c] = ${T}(acc * inv);
  }
}
#endif
