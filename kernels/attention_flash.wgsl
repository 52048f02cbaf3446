// FlashAttention (Dao et al. 2022): O = softmax(Q Kᵀ · scale + mask) V per head, with the scores
// S and probabilities P living only in registers and workgroup memory, never in global memory.
//
// Layout: q [B, Nq, H·d], k and v [B, Nk, H·d], o [B, Nq, H·d] (token-major, head h at channels
// h·d … h·d+d−1, as diffusers' to_q/to_k/to_v produce them before the head split).
//
// Two kernels (#if ROWS): the rows kernel for d % 4 = 0, d ≤ 80 at SD's UNet shapes, the tiled
// kernel for everything else (any d up to 512; small problems such as CLIP's, where it is faster).
//
// ROWS KERNEL (name attention_flash_rows_<T>_d<d>_br<BR>_rm<RM>_ks<KS>_bc<BC>_sb<SB>).
// Work decomposition: one workgroup of BR·KS invocations per (block of BR·RM query rows,
// batch·head); grid [⌈Nq/(BR·RM)⌉, B·H]. Invocation (row, split) = (lid % BR, lid / BR) owns the
// query rows row + BR·x (x < RM) whole: its q rows (pre-scaled by scale·log2 e) and O
// accumulators live in registers (2·RM·d floats), so S, the softmax and P never leave the
// invocation — no cross-invocation reductions, no P in workgroup memory. The keys of each staged
// tile of BC keys are split into KS contiguous ranges of KP = BC/KS, one per split; the splits
// merge their (m, l, O) through workgroup memory at the end (flash-decoding style), which fills
// the GPU when B·H·Nq rows alone would not (d = 80 at 32×32 latents).
// Loop over K/V tiles (for a causal mask only up to the block's last row):
//   1. Stage the tile: K and V, BC keys × d, converted to f32 into workgroup memory (all loads of
//      an invocation issued before its stores). Every invocation of a warp then reads the same
//      key: broadcast loads, no bank conflicts; each K/V vec4 load feeds RM rows.
//   2. Per sub-block of SB keys of the split's range: SB scores per row, each a vec4 FMA chain
//      over d (4 partial sums), masked (key ≥ Nk, or key > query when causal) to NEG; the row max;
//      α = exp2(m − m_new) rescales l and O once per sub-block; P = exp2(S − m_new);
//      l += P; O += P·V with V vec4s from workgroup memory.
// Finally split 0 merges the other splits' partial rows and writes O / l.
// Tiles (measured on an H200, f16; src/ops/attention.ts picks them): d 40: BR 128, RM 2, KS 1,
// BC 64, SB 8 (Nk 77: BR 64, BC 32); d 80: BR 64, RM 1, KS 2, BC 32, SB 4 (Nk 77: BC 16, SB 8) —
// RM 2 at d 80 spills. Workgroup memory: max(2·BC·d, (KS−1)·BR·RM·(d+4)) f32 ≤ 32 KiB.
// Precision: q, k, v are widened to f32 on load; S, P, m, l and O are f32; only O / l is
// narrowed to T. Masked scores need no special case: P = exp2(NEG − m_new) = 0 once the row has
// an unmasked key; before that (m_new = NEG) P = 1 is wiped by the next α = exp2(NEG − m) = 0, and
// every valid row has an unmasked key (key 0).
//
// TILED KERNEL (name attention_flash_<T>[_vec4]_rm<RM>_tc<TC>_cg<CG>_kc<KC4>_vc<VC>).
// Work decomposition: one workgroup of 16·TC invocations per (Q tile of BR = 16·RM rows,
// batch·head); grid [⌈Nq/BR⌉, B·H]. The invocations form a 16 × TC grid (ty, tx); invocation
// (ty, tx) owns the Q rows ty·RM … ty·RM+RM−1 of the tile and
//   - in S: the keys tx + TC·y (y < 4) of the current K/V tile of BC = 4·TC keys,
//   - in O: the CG column groups of 4 channels tx + TC·g (g < CG): RM rows × 4·CG columns.
// TC and CG are chosen so that TC·CG vec4 groups cover d: d = 40 → TC 10, CG 1; 80 → 10, 2;
// 160 → 10, 4; 64 → 8, 2; 512 → 8, 16. RM is 4, or 2 or 1 where ⌈Nq/BR⌉·B·H workgroups would
// not fill a large GPU (SD's 32×32 and 16×16 latents, CLIP) or where RM·CG vec4 accumulators
// would not fit in registers (RM·CG ≤ 16: d = 512 runs with RM = 1).
// Loop over K/V tiles (for a causal mask only up to the tile's last row):
//   1. S = Q Kᵀ: Q and K staged through workgroup memory in chunks of KC4 vec4s along d (zero
//      padded past d), each invocation accumulating its RM×4 block of S with vec4 dot products.
//   2. S ← S · scale · log2(e), masked (key ≥ Nk, or key > query when causal) to NEG.
//   3. Online softmax: m_new = max(m, rowmax(S)) (the row max across the TC invocations of a row
//      through workgroup memory), α = exp2(m − m_new), P = exp2(S − m_new),
//      l ← α·l + rowsum(P), O ← α·O. P goes to workgroup memory transposed, one vec4 of 4 rows
//      per key, so the product below reads 4 rows of P and 4 channels of V with two vec4 loads.
//   4. O += P V with V staged VC keys at a time (VC = BC, or BC/2 where BC keys of V would not
//      fit) in the words of step 1's staging: per key, 4·CG vec4 multiply-adds.
// Finally O / l (l summed across the row's TC invocations) is written.
//
// Workgroup memory (≤ 32 KiB, the smallest limit we target): one vec4 array — [0, PT) staging
// (Q chunk BR × KS and K chunk BC × KS vec4s, KS = KC4+1 padded against bank conflicts; or the V
// slab VC × TC·CG vec4s), [PT, …) P transposed, BC × 16 vec4s when RM = 4 (else the scalar array
// ps, [key][row]) — and the row-reduction scratch red, BR × TC scalars.
//
// Every loop over a register array is marked #unroll: the host expands it (src/ops/attention.ts)
// because NVIDIA's Vulkan compiler left such loops rolled and the arrays in local memory (10×
// slower on an H200).
//
// Specializations of the rows kernel: T (f32 | f16 storage of q, k, v, o; always vec4 access),
// D4 = d/4, BR, RM, KS, BC, KP, SB (above), WGS = BR·KS, NL = ⌈BC·D4/WGS⌉ staging loads per
// invocation, SMV = workgroup vec4s.
// Specializations of the tiled kernel:
//   T   : storage type of q, k, v, o (f32 | f16).
//   VEC : d % 4 = 0 — q, k, v, o read and written as vec4s (one load per 4 channels).
//   RM, TC, CG : rows per invocation, invocations across a row, vec4 column groups (above).
//   KC4 : vec4s of d per staged Q/K chunk (d = 40, 80, 160 → 10; 64 → 8).
//   VC  : keys per staged V slab.
//   PT, SMV, RED, PSZ, NQL, NKL, NVL, WGS : memory offsets/sizes, per-invocation staging loads
//   and workgroup size, computed by the host from the above.
// Precision: everything after the load is f32 — S, P, m, l and the O accumulator — whatever T is;
// only the final O / l is narrowed to T. The softmax runs in the log2 domain (scale·log2 e folded
// into the score scale, exp2): the same math, one multiply fewer per score. NEG (−3e38) stands
// for −∞: masked scores give P = 0 explicitly, so no ∞ − ∞ can occur.

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
#if VEC
@group(0) @binding(1) var<storage, read> q: array<vec4<${T}>>;
@group(0) @binding(2) var<storage, read> k: array<vec4<${T}>>;
@group(0) @binding(3) var<storage, read> v: array<vec4<${T}>>;
@group(0) @binding(4) var<storage, read_write> o: array<vec4<${T}>>;
#else
@group(0) @binding(1) var<storage, read> q: array<${T}>;
@group(0) @binding(2) var<storage, read> k: array<${T}>;
@group(0) @binding(3) var<storage, read> v: array<${T}>;
@group(0) @binding(4) var<storage, read_write> o: array<${T}>;
#endif

#if ROWS
// ---- Rows kernel: RM query rows per invocation, the whole head in registers ----
const D4 = ${D4}u;       // vec4s per head (d / 4)
const BR = ${BR}u;       // invocations per key split
const RM = ${RM}u;       // query rows per invocation (rows row + BR·x, x < RM)
const KS = ${KS}u;       // key splits: invocations sharing a query row
const BC = ${BC}u;       // keys per staged K/V tile
const KP = ${KP}u;       // keys of a tile per split (BC / KS)
const SB = ${SB}u;       // keys per softmax sub-block (divides KP)
const WG = ${WGS}u;      // invocations (BR · KS)
const NL = ${NL}u;       // staging loads per invocation per tile (⌈BC·D4 / WG⌉)
const KV = ${BC}u * ${D4}u; // vec4 offset of the V tile
const NEG = -3.0e38;     // stands for −∞

// [0, KV) K tile, [KV, 2·KV) V tile ([key][vec4 of d] each); after the key loop, the splits'
// partial (m, l, O) rows for the merge.
var<workgroup> kv: array<vec4<f32>, ${SMV}>;

@compute @workgroup_size(${WGS})
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
  let row = lid % BR;
  let split = lid / BR;          // warp-uniform when BR is a multiple of the warp width
  let i0 = wg.x * BR * RM;
  let b = wg.y / p.heads;
  let h = wg.y % p.heads;
  let ld4 = p.heads * D4;        // token stride in vec4s
  let qb = (b * p.nq) * ld4 + h * D4;
  let kb = (b * p.nk) * ld4 + h * D4;

  var kend = p.nk;
  if (p.causal != 0u) { kend = min(p.nk, i0 + BR * RM); }

  // The query rows, pre-multiplied by scale · log2(e) (past the last row: the last row's).
  var qr: array<array<vec4<f32>, D4>, RM>;
  var acc: array<array<vec4<f32>, D4>, RM>; // unnormalized output rows
  var m: array<f32, RM>;         // running max of the scores (log2 domain)
  var l: array<f32, RM>;         // running sum of P
  var lim: array<u32, RM>;       // keys ≥ lim are masked
  #unroll
  for (var x = 0u; x < RM; x++) {
    let i = i0 + row + BR * x;
    let qrow = min(i, p.nq - 1u);
    #unroll
    for (var c = 0u; c < D4; c++) {
      qr[x][c] = vec4<f32>(q[qb + qrow * ld4 + c]) * p.scale;
      acc[x][c] = vec4<f32>(0.0);
    }
    m[x] = NEG;
    l[x] = 0.0;
    lim[x] = select(kend, min(kend, i + 1u), p.causal != 0u);
  }

  for (var j0 = 0u; j0 < kend; j0 += BC) {
    workgroupBarrier();          // everyone is done with the previous tile
    // Unrolled so that every load of the tile is in flight before the first store.
    #unroll
    for (var u = 0u; u < NL; u++) {
      let e = lid + u * WG;
      if (e < KV) {
        let r = e / D4;
        let at = kb + (j0 + r) * ld4 + e % D4;
        var kx = vec4<f32>(0.0);
        var vx = vec4<f32>(0.0);
        if (j0 + r < p.nk) {
          kx = vec4<f32>(k[at]);
          vx = vec4<f32>(v[at]);
        }
        kv[e] = kx;
        kv[KV + e] = vx;
      }
    }
    workgroupBarrier();

    // This split's keys of the tile, SB at a time; none past kend.
    let jlo = split * KP;
    let jhi = min(jlo + KP, kend - j0);
    for (var jb = jlo; jb < jhi; jb += SB) {
      // Scores of SB keys: 4 partial sums per key (independent FMA chains), masked to NEG.
      var s: array<array<f32, SB>, RM>;
      var mx: array<f32, RM>;
      #unroll
      for (var x = 0u; x < RM; x++) { mx[x] = m[x]; }
      #unroll
      for (var y = 0u; y < SB; y++) {
        let kr = (jb + y) * D4;
        var a4: array<vec4<f32>, RM>;
        #unroll
        for (var x = 0u; x < RM; x++) { a4[x] = vec4<f32>(0.0); }
        #unroll
        for (var c = 0u; c < D4; c++) {
          let kk = kv[kr + c];
          #unroll
          for (var x = 0u; x < RM; x++) { a4[x] = fma(qr[x][c], kk, a4[x]); }
        }
        let j = j0 + jb + y;
        #unroll
        for (var x = 0u; x < RM; x++) {
          let sv = select((a4[x].x + a4[x].y) + (a4[x].z + a4[x].w), NEG, j >= lim[x]);
          s[x][y] = sv;
          mx[x] = max(mx[x], sv);
        }
      }
      // Online softmax: rescale by 2^(m − m_new) once per sub-block, then O += P V. A masked
      // score gives P = 2^(NEG − m_new) = 0 once any key of the row was unmasked; before that
      // (m_new = NEG) its P = 1 is wiped by the first unmasked key's α = 2^(NEG − m_new) = 0.
      #unroll
      for (var x = 0u; x < RM; x++) {
        let alpha = exp2(m[x] - mx[x]);
        m[x] = mx[x];
        l[x] *= alpha;
        #unroll
        for (var c = 0u; c < D4; c++) { acc[x][c] *= alpha; }
      }
      #unroll
      for (var y = 0u; y < SB; y++) {
        var pv: array<f32, RM>;
        #unroll
        for (var x = 0u; x < RM; x++) {
          pv[x] = exp2(s[x][y] - mx[x]);
          l[x] += pv[x];
        }
        let vr = KV + (jb + y) * D4;
        #unroll
        for (var c = 0u; c < D4; c++) {
          let vv = kv[vr + c];
          #unroll
          for (var x = 0u; x < RM; x++) { acc[x][c] = fma(vec4<f32>(pv[x]), vv, acc[x][c]); }
        }
      }
    }
  }

  // Merge the splits' (m, l, O) into split 0's, then O / l.
  if (KS > 1u) {
    workgroupBarrier();
    if (split > 0u) {
      #unroll
      for (var x = 0u; x < RM; x++) {
        let at = (((split - 1u) * BR + row) * RM + x) * (D4 + 1u);
        kv[at] = vec4<f32>(m[x], l[x], 0.0, 0.0);
        #unroll
        for (var c = 0u; c < D4; c++) { kv[at + 1u + c] = acc[x][c]; }
      }
    }
    workgroupBarrier();
    if (split == 0u) {
      for (var t = 1u; t < KS; t++) {
        #unroll
        for (var x = 0u; x < RM; x++) {
          let at = (((t - 1u) * BR + row) * RM + x) * (D4 + 1u);
          let ml = kv[at];
          let mn = max(m[x], ml.x);
          let a = exp2(m[x] - mn);
          let a2 = exp2(ml.x - mn);
          m[x] = mn;
          l[x] = l[x] * a + ml.y * a2;
          #unroll
          for (var c = 0u; c < D4; c++) { acc[x][c] = acc[x][c] * a + kv[at + 1u + c] * a2; }
        }
      }
    }
  }
  if (split == 0u) {
    #unroll
    for (var x = 0u; x < RM; x++) {
      let i = i0 + row + BR * x;
      if (i < p.nq) {
        let inv = 1.0 / l[x];
        #unroll
        for (var c = 0u; c < D4; c++) { o[qb + i * ld4 + c] = vec4<${T}>(acc[x][c] * inv); }
      }
    }
  }
}
#else
// ---- Tiled kernel ----
const NEG = -3.0e38;     // stands for −∞

#include "attention_tile.wgsl"
#include "attention_heads.wgsl"

@compute @workgroup_size(${WGS})
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
  let tx = lid % TC;
  let ty = lid / TC;
  let i0 = wg.x * BR;            // first query row of the tile
  let ld = p.heads * p.d;        // token stride of q, k, v, o
  let qbase = head_base(wg.y, p.nq);
  let kbase = head_base(wg.y, p.nk);
  let ksm = BR * KS;             // vec4 offset of the staged K chunk

  var m: array<f32, RM>;                  // running row max of S (log2 domain)
  var l: array<f32, RM>;                  // running row sum of P (this invocation's keys)
  var acc: array<array<vec4<f32>, CG>, RM>;  // O accumulator, unnormalized
  #unroll
  for (var x = 0u; x < RM; x++) {
    m[x] = NEG;
    l[x] = 0.0;
    #unroll
    for (var g = 0u; g < CG; g++) { acc[x][g] = vec4<f32>(0.0); }
  }

  var kend = p.nk;
  if (p.causal != 0u) { kend = min(p.nk, i0 + BR); }

  for (var j0 = 0u; j0 < kend; j0 += BC) {
    // 1. S = Q Kᵀ over d in chunks of KC4 vec4s.
    var s: array<array<f32, RN>, RM>;
    #unroll
    for (var x = 0u; x < RM; x++) {
      #unroll
      for (var y = 0u; y < RN; y++) { s[x][y] = 0.0; }
    }
    for (var kc = 0u; kc < p.d; kc += 4u * KC4) {
      workgroupBarrier();        // the previous users of the staging words are done
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
          for (var y = 0u; y < RN; y++) { s[x][y] += dot(qa[x], kb[y]); }
        }
      }
    }

    // 2. Scale into the log2 domain and mask; this invocation's row maxima to the scratch.
    #unroll
    for (var x = 0u; x < RM; x++) {
      let i = i0 + ty * RM + x;
      var mx = NEG;
      #unroll
      for (var y = 0u; y < RN; y++) {
        let j = j0 + tx + TC * y;
        var sv = s[x][y] * p.scale;
        if (j >= p.nk || (p.causal != 0u && j > i)) { sv = NEG; }
        s[x][y] = sv;
        mx = max(mx, sv);
      }
      red[(ty * RM + x) * TC + tx] = mx;
    }
    workgroupBarrier();          // maxima visible; everyone is done reading the Q/K chunk

    // 3. Online softmax update; P to workgroup memory, transposed.
#if PVEC
    var pt: array<vec4<f32>, RN>;
#endif
    #unroll
    for (var x = 0u; x < RM; x++) {
      let row = ty * RM + x;
      var mt = NEG;
      #unroll
      for (var t = 0u; t < TC; t++) { mt = max(mt, red[row * TC + t]); }
      let m_new = max(m[x], mt);
      let alpha = exp2(m[x] - m_new);
      m[x] = m_new;
      var ls = 0.0;
      #unroll
      for (var y = 0u; y < RN; y++) {
        let sv = s[x][y];
        let pv = select(exp2(sv - m_new), 0.0, sv <= NEG);
        ls += pv;
#if PVEC
        pt[y][x] = pv;
#else
        ps[(tx + TC * y) * BR + row] = pv;
#endif
      }
      l[x] = l[x] * alpha + ls;
      #unroll
      for (var g = 0u; g < CG; g++) { acc[x][g] *= alpha; }
    }
#if PVEC
    #unroll
    for (var y = 0u; y < RN; y++) { sm[PT + (tx + TC * y) * 16u + ty] = pt[y]; }
#endif

    // 4. O += P V, V staged VC keys at a time.
    for (var v0 = 0u; v0 < BC; v0 += VC) {
      if (v0 > 0u) { workgroupBarrier(); }  // the previous slab is consumed
      stage_v(lid, kbase, j0 + v0, p.nk, ld);
      workgroupBarrier();        // V slab and P visible
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

  // O / l, with l summed over the row's TC invocations.
  workgroupBarrier();
  #unroll
  for (var x = 0u; x < RM; x++) { red[(ty * RM + x) * TC + tx] = l[x]; }
  workgroupBarrier();
  #unroll
  for (var x = 0u; x < RM; x++) {
    let row = ty * RM + x;
    let i = i0 + row;
    var lt = 0.0;
    #unroll
    for (var t = 0u; t < TC; t++) { lt += red[row * TC + t]; }
    let inv = 1.0 / lt;
    let ob = qbase + i * ld;
    #unroll
    for (var g = 0u; g < CG; g++) {
      let col = 4u * (tx + TC * g);
      let val = acc[x][g] * inv;
#if VEC
      if (i < p.nq && col < p.d) { o[(ob + col) >> 2u] = vec4<${T}>(val); }
#else
      #unroll
      for (var e = 0u; e < 4u; e++) {
        if (i < p.nq && col + e < p.d) { o[ob + col + e] = ${T}(val[e]); }
      }
#endif
    }
  }
}
#endif
