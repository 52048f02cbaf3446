// FlashAttention (Dao et al. 2022): O = softmax(Q Kᵀ · scale + mask) V per head, with the scores
// S and probabilities P living only in registers and workgroup memory, never in global memory.
//
// Layout: q [B, Nq, H·d], k and v [B, Nk, H·d], o [B, Nq, H·d] (token-major, head h at channels
// h·d … h·d+d−1, as diffusers' to_q/to_k/to_v produce them before the head split).
//
// Work decomposition: one workgroup of 128 invocations per (Q tile of BR = 64 rows, batch·head,
// chunk of DV output columns); grid [⌈Nq/64⌉, B·H, ⌈d/DV⌉]. d ≤ 160 is one chunk; larger head
// dims (the VAE's d = 512) split O's columns over workgroups that each recompute S — the generic,
// slower path. The invocations form a 16 × 8 grid (ty, tx): invocation (ty, tx) owns Q rows
// ty·4 … ty·4+3 of the tile and
//   - in S: the key columns tx + 8·y (y < 4) of the current K tile (BC = 32 keys),
//   - in O: the DN contiguous output columns tx·DN … tx·DN+DN−1 of the chunk (DV = 8·DN).
// Loop over K/V tiles of BC keys (for a causal mask only up to the tile's last row):
//   1. S = Q Kᵀ: Q and K staged through workgroup memory in chunks of KC4 vec4s along d (zero
//      padded past d), each invocation accumulating its 4×4 block of S with vec4 dot products.
//   2. S ← S · scale · log2(e), masked (key ≥ Nk, or key > query when causal) to NEG.
//   3. Online softmax: m_new = max(m, rowmax(S)) (row max across the 8 invocations of a row via
//      workgroup memory), α = exp2(m − m_new), P = exp2(S − m_new), l ← α·l + rowsum(P),
//      O ← α·O; P goes to workgroup memory.
//   4. O += P V with the V tile staged in workgroup memory (the same words as step 1's staging).
// Finally O / l (l summed across the row's 8 invocations) is written.
//
// Workgroup memory (one vec4 array so the phases share words; ≤ 31 KiB for DV ≤ 160, within the
// 32 KiB of the smallest adapters we target): [0, A) stage: Q chunk BR × KS and K chunk BC × KS
// vec4s, or the V tile BC × DV scalars; [A, A + PW) P, BR × (BC+1) scalars (padded row against bank
// conflicts); then the row-reduction scratch, BR × 8 scalars.
//
// Specializations (name attention_flash_<T>_kc<KC4>_dn<DN>):
//   T   : storage type of q, k, v, o (f32 | f16).
//   KC4 : vec4s of d per staged chunk (d = 40, 80, 160 → 10: exact chunks; 64 → 8).
//   DN  : output columns per invocation (⌈d/8⌉ up to 20; 5 for d = 40, 10 for 80, 20 for 160).
//   A, PW, RED: word offsets of the workgroup-memory regions, computed by the host from the above.
// Precision: everything after the load is f32 — S, P, m, l and the O accumulator — whatever T is;
// only the final O / l is narrowed to T. The softmax runs in the log2 domain (scale·log2 e folded
// into the score scale, exp2) which is exact math and one multiply cheaper per score. NEG
// (−3e38) stands for −∞: masked scores give P = 0 explicitly, so no ∞ − ∞ can occur.

struct Params {
  nq: u32,       // query tokens per batch item
  nk: u32,       // key/value tokens per batch item
  heads: u32,    // H
  d: u32,        // head dim (channels per head)
  scale: f32,    // softmax scale × log2(e)
  causal: u32,   // 1: key j is masked for query i when j > i
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<${T}>;
@group(0) @binding(2) var<storage, read> k: array<${T}>;
@group(0) @binding(3) var<storage, read> v: array<${T}>;
@group(0) @binding(4) var<storage, read_write> o: array<${T}>;

const WG = 128u;         // invocations: TR × TC
const TC = 8u;           // invocations along a row (keys in S, columns in O)
const RM = 4u;           // Q rows per invocation
const RN = 4u;           // keys per invocation per tile
const BR = 64u;          // Q rows per workgroup (16 × RM)
const BC = 32u;          // keys per K/V tile (TC × RN)
const KC4 = ${KC4}u;     // vec4s of d per staged Q/K chunk
const KS = ${KC4}u + 1u; // padded vec4 row stride of the staged chunks
const DN = ${DN}u;       // O columns per invocation
const DV = ${DN}u * 8u;  // O columns per workgroup
const PST = BC + 1u;     // padded row stride of P (scalars)
const A = ${A}u;         // word offset of P (= size of the staging region)
const RED = ${RED}u;     // word offset of the row-reduction scratch
const NEG = -3.0e38;     // stands for −∞

var<workgroup> sm: array<vec4<f32>, ${SMV}>;

fn smr(i: u32) -> f32 {
  return sm[i >> 2u][i & 3u];
}

fn smw(i: u32, x: f32) {
  sm[i >> 2u][i & 3u] = x;
}

// Four consecutive head channels c … c+3 of token `row` (base = batch and head offset), zero
// outside the matrix.
fn load4(which: u32, base: u32, row: u32, rows: u32, c: u32, ld: u32) -> vec4<f32> {
  var r = vec4<f32>(0.0);
  if (row >= rows) { return r; }
  let at = base + row * ld + c;
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
  let i0 = wg.x * BR;            // first query row of the tile
  let b = wg.y / p.heads;
  let h = wg.y % p.heads;
  let c0 = wg.z * DV;            // first output column of this chunk
  let ld = p.heads * p.d;        // token stride of q, k, v, o
  let qbase = b * p.nq * ld + h * p.d;
  let kbase = b * p.nk * ld + h * p.d;

  var m: array<f32, RM>;          // running row max of S (log2 domain)
  var l: array<f32, RM>;          // running row sum of P (this invocation's columns)
  var acc: array<array<f32, DN>, RM>;  // O accumulator, unnormalized
  for (var x = 0u; x < RM; x++) {
    m[x] = NEG;
    l[x] = 0.0;
    for (var c = 0u; c < DN; c++) { acc[x][c] = 0.0; }
  }

  var kend = p.nk;
  if (p.causal != 0u) { kend = min(p.nk, i0 + BR); }
  let QS = 0u;                   // vec4 offset of the staged Q chunk
  let KSO = BR * KS;             // vec4 offset of the staged K chunk

  for (var j0 = 0u; j0 < kend; j0 += BC) {
    // 1. S = Q Kᵀ over d in chunks of KC4 vec4s.
    var s: array<array<f32, RN>, RM>;
    for (var x = 0u; x < RM; x++) { for (var y = 0u; y < RN; y++) { s[x][y] = 0.0; } }
    for (var kc = 0u; kc < p.d; kc += 4u * KC4) {
      workgroupBarrier();        // the previous users of the staging region are done
      for (var e = lid; e < BR * KC4; e += WG) {
        let r = e / KC4;
        let c4 = e % KC4;
        sm[QS + r * KS + c4] = load4(0u, qbase, i0 + r, p.nq, kc + 4u * c4, ld);
      }
      for (var e = lid; e < BC * KC4; e += WG) {
        let r = e / KC4;
        let c4 = e % KC4;
        sm[KSO + r * KS + c4] = load4(1u, kbase, j0 + r, p.nk, kc + 4u * c4, ld);
      }
      workgroupBarrier();
      for (var c4 = 0u; c4 < KC4; c4++) {
        var qa: array<vec4<f32>, RM>;
        var kb: array<vec4<f32>, RN>;
        for (var x = 0u; x < RM; x++) { qa[x] = sm[QS + (ty * RM + x) * KS + c4]; }
        for (var y = 0u; y < RN; y++) { kb[y] = sm[KSO + (tx + TC * y) * KS + c4]; }
        for (var x = 0u; x < RM; x++) {
          for (var y = 0u; y < RN; y++) { s[x][y] += dot(qa[x], kb[y]); }
        }
      }
    }

    // 2. Scale into the log2 domain and mask; this invocation's row maxima to the scratch.
    for (var x = 0u; x < RM; x++) {
      let i = i0 + ty * RM + x;
      var mx = NEG;
      for (var y = 0u; y < RN; y++) {
        let j = j0 + tx + TC * y;
        var sv = s[x][y] * p.scale;
        if (j >= p.nk || (p.causal != 0u && j > i)) { sv = NEG; }
        s[x][y] = sv;
        mx = max(mx, sv);
      }
      smw(RED + (ty * RM + x) * TC + tx, mx);
    }
    workgroupBarrier();          // maxima visible; everyone is done reading the Q/K chunk

    // 3. Online softmax update; P to workgroup memory. Stage the V tile meanwhile.
    for (var x = 0u; x < RM; x++) {
      let row = ty * RM + x;
      var mt = NEG;
      for (var t = 0u; t < TC; t++) { mt = max(mt, smr(RED + row * TC + t)); }
      let m_new = max(m[x], mt);
      let alpha = exp2(m[x] - m_new);
      m[x] = m_new;
      var ls = 0.0;
      for (var y = 0u; y < RN; y++) {
        let sv = s[x][y];
        let pv = select(exp2(sv - m_new), 0.0, sv <= NEG);
        ls += pv;
        smw(A + row * PST + tx + TC * y, pv);
      }
      l[x] = l[x] * alpha + ls;
      for (var c = 0u; c < DN; c++) { acc[x][c] *= alpha; }
    }
    for (var e = lid; e < BC * DV; e += WG) {
      let r = e / DV;
      let c = c0 + e % DV;
      var val = 0.0;
      if (j0 + r < p.nk && c < p.d) { val = f32(v[kbase + (j0 + r) * ld + c]); }
      smw(e, val);
    }
    workgroupBarrier();

    // 4. O += P V.
    let jn = min(BC, p.nk - j0);
    for (var jj = 0u; jj < jn; jj++) {
      var vr: array<f32, DN>;
      for (var c = 0u; c < DN; c++) { vr[c] = smr(jj * DV + tx * DN + c); }
      for (var x = 0u; x < RM; x++) {
        let pv = smr(A + (ty * RM + x) * PST + jj);
        for (var c = 0u; c < DN; c++) { acc[x][c] += pv * vr[c]; }
      }
    }
  }

  // O / l, with l summed over the row's TC invocations.
  workgroupBarrier();
  for (var x = 0u; x < RM; x++) { smw(RED + (ty * RM + x) * TC + tx, l[x]); }
  workgroupBarrier();
  for (var x = 0u; x < RM; x++) {
    let row = ty * RM + x;
    let i = i0 + row;
    if (i >= p.nq) { continue; }
    var lt = 0.0;
    for (var t = 0u; t < TC; t++) { lt += smr(RED + row * TC + t); }
    let inv = 1.0 / lt;
    let ob = qbase + i * ld;
    for (var c = 0u; c < DN; c++) {
      let col = c0 + tx * DN + c;
      if (col < p.d) { o[ob + col] = ${T}(acc[x][c] * inv); }
    }
  }
}
