// Partitioned softmax attention — "Speed Is All You Need" (Chen et al. 2023, arXiv 2304.11267),
// Fig. 2: the key axis is split into partitions; each partition's row max and sum of exponentials
// are computed on their own, stored as small per-partition statistics, and combined afterwards,
// with the softmax normalization folded into the product with V. The full score matrix is never
// kept: one partition's block of S lives in registers.
//
// Layout: q [B, Nq, H·d], k and v [B, Nk, H·d], o [B, Nq, H·d] (token-major, head h at channels
// h·d … h·d+d−1). The host dispatches chunks that fit a storage binding: batch·heads
// bh0 … bh0+BH−1 and query rows qi0 … qi0+rows−1. Per-partition statistics of a chunk:
// m and l [BH, NP, rows] (f32, l at word offset lofs), partial O [BH, NP, rows, d] (f32),
// NP = ⌈Nk / PW⌉.
//
// Two kernels:
// PARTIAL (attention_partitioned_partial_<T>…): one workgroup of 16·TC invocations per (Q tile
//   of BR = 16·RM rows, partition of PW = NSUB·BC keys, batch·head); grid [⌈rows/BR⌉, NP, BH].
//   The invocation grid and tiles are flash's (attention_flash.wgsl): (ty, tx) owns rows
//   ty·RM … of the tile, keys tx + TC·y (y < 4) of each BC = 4·TC-key sub-tile, and the CG vec4
//   column groups tx + TC·g of O. NSUB = 4 (2 where CG ≥ 3, to bound the registers holding S):
//   d = 40 → 160-key partitions, 26 of them for 4096 keys.
//   A. S = Q Kᵀ · scale · log2(e) for the partition's NSUB sub-tiles (Q and K staged through
//      workgroup memory in chunks of KC4 vec4s along d), masked to NEG, kept in registers.
//   B. m_p = rowmax(S) over the whole partition — exact, computed before any exponential (no
//      running max, no rescaling: the difference from FlashAttention).
//   C. Per sub-tile: P = exp2(S − m_p) to workgroup memory (transposed), l_p += rowsum(P),
//      O_p += P V with V staged VC keys at a time. O_p is not normalized.
//   Writes m_p, l_p and O_p. A partition wholly above the diagonal (causal) writes m_p = NEG,
//   l_p = 0 and no O_p.
// COMBINE (attention_partitioned_combine_<T>): one workgroup of 64 invocations per (query row,
//   batch·head); grid [rows, BH]. M = max_p m_p, w_p = exp2(m_p − M), L = Σ_p w_p l_p,
//   O = Σ_p w_p O_p / L — the normalization by L applied to the d-wide product with V instead
//   of to the Nk-wide row of P. Partitions with m_p = NEG are skipped.
//
// Workgroup memory of PARTIAL (≤ 32 KiB): one vec4 array — [0, PT) staging (Q chunk BR × KS and
// K chunk BC × KS vec4s, or a V slab VC × TC·CG vec4s), [PT, …) P transposed, BC × BR/4 vec4s
// (RM = 4; else the scalar array ps, [key][row]) — and the row-reduction scratch red, BR × TC.
// Every loop over a register array is marked #unroll (expanded by the host: see
// src/ops/attention.ts).
//
// Specializations: T storage type of q, k, v, o (f32 | f16); VEC d % 4 = 0 (vec4 loads);
// RM, TC, CG, KC4, VC, NSUB tiles (above); PT, SMV, RED, PSZ, NQL, NKL, NVL, WGS sizes computed
// by the host.
// Precision: S, P, m_p, l_p, O_p and the combine are f32 whatever T is; the statistics and
// partials are stored in f32; only the final O is narrowed to T. NEG (−3e38) stands for −∞;
// masked scores give P = 0 explicitly.

struct Params {
  nq: u32,       // query tokens per batch item
  nk: u32,       // key/value tokens per batch item
  heads: u32,    // H
  d: u32,        // head dim
  scale: f32,    // softmax scale × log2(e)
  causal: u32,   // 1: key j is masked for query i when j > i
  np: u32,       // partitions: ⌈Nk / PW⌉
  bh0: u32,      // first batch·head of this dispatch
  _pad0: u32,
  lofs: u32,     // word offset of l in the m/l buffer: BH · NP · rows
  qi0: u32,      // first query row of this dispatch
  rows: u32,     // query rows of this dispatch
}

const NEG = -3.0e38;     // stands for −∞

@group(0) @binding(0) var<uniform> p: Params;
#if PARTIAL
#if VEC
@group(0) @binding(1) var<storage, read> q: array<vec4<${T}>>;
@group(0) @binding(2) var<storage, read> k: array<vec4<${T}>>;
@group(0) @binding(3) var<storage, read> v: array<vec4<${T}>>;
@group(0) @binding(5) var<storage, read_write> op: array<vec4<f32>>;  // O_p [BH, NP, Nq, d]
#else
@group(0) @binding(1) var<storage, read> q: array<${T}>;
@group(0) @binding(2) var<storage, read> k: array<${T}>;
@group(0) @binding(3) var<storage, read> v: array<${T}>;
@group(0) @binding(5) var<storage, read_write> op: array<f32>;        // O_p [BH, NP, Nq, d]
#endif
@group(0) @binding(4) var<storage, read_write> ml: array<f32>;  // m [BH, NP, Nq], then l

#include "attention_tile.wgsl"
#include "attention_heads.wgsl"

const NSUB = ${NSUB}u;   // sub-tiles per partition
const PW = ${NSUB}u * 4u * ${TC}u; // keys per partition

@compute @workgroup_size(${WGS})
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
  let tx = lid % TC;
  let ty = lid / TC;
  let i0 = p.qi0 + wg.x * BR;            // first query row of the tile
  let iend = min(p.nq, p.qi0 + p.rows);  // end of this dispatch's rows
  let part = wg.y;                       // partition
  let bhl = wg.z;                        // batch·head within this dispatch
  let bh = p.bh0 + bhl;
  let ld = p.heads * p.d;
  let qbase = head_base(bh, p.nq);
  let kbase = head_base(bh, p.nk);
  let jp = part * PW;                    // first key of the partition
  let stat = (bhl * p.np + part) * p.rows - p.qi0;  // m and l of row i at stat + i
  let ksm = BR * KS;                     // vec4 offset of the staged K chunk

  // A partition wholly above the diagonal contributes nothing.
  if (p.causal != 0u && jp > min(i0 + BR, iend) - 1u) {
    for (var r = lid; r < BR; r += WG) {
      if (i0 + r < iend) {
        ml[stat + i0 + r] = NEG;
        ml[p.lofs + stat + i0 + r] = 0.0;
      }
    }
    return;
  }
  // Sub-tiles holding keys that some row of the tile can see.
  var jend = p.nk;
  if (p.causal != 0u) { jend = min(p.nk, i0 + BR); }
  let nsub = (min(PW, jend - jp) + BC - 1u) / BC;

  // A. S for the whole partition, in registers; this invocation's row maxima.
  var s: array<array<array<f32, RN>, RM>, NSUB>;
  var mx: array<f32, RM>;
  #unroll
  for (var x = 0u; x < RM; x++) { mx[x] = NEG; }
  #unroll
  for (var sub = 0u; sub < NSUB; sub++) {
    #unroll
    for (var x = 0u; x < RM; x++) {
      #unroll
      for (var y = 0u; y < RN; y++) { s[sub][x][y] = 0.0; }
    }
    if (sub < nsub) {
      let j0 = jp + sub * BC;
      for (var kc = 0u; kc < p.d; kc += 4u * KC4) {
        workgroupBarrier();
        stage_qk(lid, qbase, kbase, i0, j0, kc, ld);
        workgroupBarrier();
        #unroll
        for (var c4 = 0u; c4 < KC4; c4++) {
          var qa: array<vec4<f32>, RM>;
          var kb: array<vec4<f32>, RN>;
          #unroll
          for (var x = 0u; x < RM; x++) { qa[x] = sm[(ty * RM + x) * KS + c4]; }
          #unroll
          for (var y = 0u; y < RN; y++) { kb[y] = sm[ksm + (tx + TC * y) * KS + c4]; }
          #unroll
          for (var x = 0u; x < RM; x++) {
            #unroll
            for (var y = 0u; y < RN; y++) { s[sub][x][y] += dot(qa[x], kb[y]); }
          }
        }
      }
    }
    #unroll
    for (var x = 0u; x < RM; x++) {
      let i = i0 + ty * RM + x;
      #unroll
      for (var y = 0u; y < RN; y++) {
        let j = jp + sub * BC + tx + TC * y;
        var sv = s[sub][x][y] * p.scale;
        if (j >= jend || (p.causal != 0u && j > i)) { sv = NEG; }
        s[sub][x][y] = sv;
        mx[x] = max(mx[x], sv);
      }
    }
  }

  // B. The partition's row max m_p.
  #unroll
  for (var x = 0u; x < RM; x++) { red[(ty * RM + x) * TC + tx] = mx[x]; }
  workgroupBarrier();
  var mp: array<f32, RM>;
  #unroll
  for (var x = 0u; x < RM; x++) {
    var mt = NEG;
    #unroll
    for (var t = 0u; t < TC; t++) { mt = max(mt, red[(ty * RM + x) * TC + t]); }
    mp[x] = mt;
  }

  // C. P = exp2(S − m_p), l_p, O_p = P V, one sub-tile at a time.
  var lp: array<f32, RM>;
  var acc: array<array<vec4<f32>, CG>, RM>;
  #unroll
  for (var x = 0u; x < RM; x++) {
    lp[x] = 0.0;
    #unroll
    for (var g = 0u; g < CG; g++) { acc[x][g] = vec4<f32>(0.0); }
  }
  #unroll
  for (var sub = 0u; sub < NSUB; sub++) {
    if (sub < nsub) {
      workgroupBarrier();        // the previous sub-tile's P and V (or the maxima) are consumed
#if PVEC
      var pt: array<vec4<f32>, RN>;
#endif
      #unroll
      for (var x = 0u; x < RM; x++) {
        #unroll
        for (var y = 0u; y < RN; y++) {
          let sv = s[sub][x][y];
          let pv = select(exp2(sv - mp[x]), 0.0, sv <= NEG);
          lp[x] += pv;
#if PVEC
          pt[y][x] = pv;
#else
          ps[(tx + TC * y) * BR + ty * RM + x] = pv;
#endif
        }
      }
#if PVEC
      #unroll
      for (var y = 0u; y < RN; y++) { sm[PT + (tx + TC * y) * 16u + ty] = pt[y]; }
#endif
      let j0 = jp + sub * BC;
      for (var v0 = 0u; v0 < BC; v0 += VC) {
        if (v0 > 0u) { workgroupBarrier(); }
        stage_v(lid, kbase, j0 + v0, jend, ld);
        workgroupBarrier();
        #unroll
        for (var jj = 0u; jj < VC; jj++) {
          let p4 = p_col(v0 + jj, ty);
          #unroll
          for (var g = 0u; g < CG; g++) {
            let v4 = sm[jj * GW + tx + TC * g];
            #unroll
            for (var x = 0u; x < RM; x++) { acc[x][g] += p4[x] * v4; }
          }
        }
      }
    }
  }

  // l_p summed over the row's TC invocations; write m_p, l_p, O_p.
  workgroupBarrier();
  #unroll
  for (var x = 0u; x < RM; x++) { red[(ty * RM + x) * TC + tx] = lp[x]; }
  workgroupBarrier();
  #unroll
  for (var x = 0u; x < RM; x++) {
    let i = i0 + ty * RM + x;
    if (i < iend && tx == 0u) {
      var lt = 0.0;
      #unroll
      for (var t = 0u; t < TC; t++) { lt += red[(ty * RM + x) * TC + t]; }
      ml[stat + i] = mp[x];
      ml[p.lofs + stat + i] = lt;
    }
    let ob = (stat + i) * p.d;
    #unroll
    for (var g = 0u; g < CG; g++) {
      let col = 4u * (tx + TC * g);
#if VEC
      if (i < iend && col < p.d) { op[(ob + col) >> 2u] = acc[x][g]; }
#else
      #unroll
      for (var e = 0u; e < 4u; e++) {
        if (i < iend && col + e < p.d) { op[ob + col + e] = acc[x][g][e]; }
      }
#endif
    }
  }
}
#endif

#if COMBINE
@group(0) @binding(1) var<storage, read> ml: array<f32>;
@group(0) @binding(2) var<storage, read> op: array<f32>;
@group(0) @binding(3) var<storage, read_write> o: array<${T}>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
  let i = p.qi0 + wg.x;              // query row
  let r = wg.x;                      // its index within this dispatch
  let bhl = wg.y;                    // batch·head within this dispatch
  let bh = p.bh0 + bhl;
  let b = bh / p.heads;
  let h = bh % p.heads;

  // M = max_p m_p; L = Σ_p exp2(m_p − M) l_p (every invocation computes them: NP is small).
  var big_m = NEG;
  for (var part = 0u; part < p.np; part++) {
    big_m = max(big_m, ml[(bhl * p.np + part) * p.rows + r]);
  }
  var big_l = 0.0;
  for (var part = 0u; part < p.np; part++) {
    let at = (bhl * p.np + part) * p.rows + r;
    let mp = ml[at];
    if (mp > NEG) { big_l += exp2(mp - big_m) * ml[p.lofs + at]; }
  }
  let inv = 1.0 / big_l;
  let ob = (b * p.nq + i) * p.heads * p.d + h * p.d;
  for (var c = lid; c < p.d; c += 64u) {
    var acc = 0.0;
    for (var part = 0u; part < p.np; part++) {
      let at = (bhl * p.np + part) * p.rows + r;
      let mp = ml[at];
      if (mp > NEG) { acc += exp2(mp - big_m) * op[at * p.d + c]; }
    }
    o[ob + c] = ${T}(acc * inv);
  }
}
#endif
