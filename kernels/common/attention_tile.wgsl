// The tile of the tiled attention kernels — attention_flash.wgsl's tiled kernel and
// attention_partitioned.wgsl's PARTIAL — shared so that the two stay the same: 16 × TC
// invocations (ty, tx), RM query rows per invocation (BR = 16·RM a workgroup), RN = 4 keys per
// invocation of each BC = 4·TC-key (sub-)tile, CG vec4 column groups of O per invocation; the
// workgroup memory (staging words sm, row-reduction scratch red, P transposed in ps when RM < 4),
// the q/k/v loads and the Q/K-chunk and V-slab staging. The including kernel binds q, k, v and
// the uniforms p (d, nq, nk); sizes are host-computed specializations (src/ops/attention.ts).
const TC = ${TC}u;       // invocations along a row
const WG = 16u * ${TC}u; // invocations
const RM = ${RM}u;       // Q rows per invocation
const RN = 4u;           // keys per invocation per (sub-)tile
const BR = 16u * ${RM}u; // Q rows per workgroup
const BC = 4u * ${TC}u;  // keys per K/V (sub-)tile
const CG = ${CG}u;       // vec4 column groups of O per invocation
const GW = ${TC}u * ${CG}u; // vec4 column groups per workgroup (covering d)
const KC4 = ${KC4}u;     // vec4s of d per staged Q/K chunk
const KS = ${KC4}u + 1u; // padded vec4 row stride of the staged chunks
const VC = ${VC}u;       // keys per staged V slab
const PT = ${PT}u;       // vec4 offset of P (transposed: [key][row / 4]) when RM = 4
const NQL = ${NQL}u;     // staging loads per invocation: Q chunk, K chunk, V slab (vec4s)
const NKL = ${NKL}u;
const NVL = ${NVL}u;

var<workgroup> sm: array<vec4<f32>, ${SMV}>;
var<workgroup> red: array<f32, ${RED}>;
#if !PVEC
var<workgroup> ps: array<f32, ${PSZ}>;  // P transposed, [key][row], when RM < 4
#endif

// Four consecutive head channels c … c+3 of token `row` of q (which = 0), k (1) or v (2), zero
// outside the matrix.
fn load4(which: u32, base: u32, row: u32, rows: u32, c: u32, ld: u32) -> vec4<f32> {
  var r = vec4<f32>(0.0);
  if (row >= rows) { return r; }
  let at = base + row * ld + c;
#if VEC
  if (c < p.d) {
    if (which == 0u) {
      r = vec4<f32>(q[at >> 2u]);
    } else if (which == 1u) {
      r = vec4<f32>(k[at >> 2u]);
    } else {
      r = vec4<f32>(v[at >> 2u]);
    }
  }
#else
  #unroll
  for (var e = 0u; e < 4u; e++) {
    if (c + e < p.d) {
      if (which == 0u) {
        r[e] = f32(q[at + e]);
      } else if (which == 1u) {
        r[e] = f32(k[at + e]);
      } else {
        r[e] = f32(v[at + e]);
      }
    }
  }
#endif
  return r;
}

// P of key `key` (a row of the transposed P) for the RM query rows ty·RM … of invocation row ty.
fn p_col(key: u32, ty: u32) -> vec4<f32> {
#if PVEC
  return sm[PT + key * 16u + ty];
#else
  var p4: vec4<f32>;
  #unroll
  for (var x = 0u; x < RM; x++) { p4[x] = ps[key * BR + ty * RM + x]; }
  return p4;
#endif
}

// Stages the d-chunk at channel kc (KC4 vec4s) of Q rows i0 … i0 + BR − 1 into sm[0, BR·KS) and
// of K rows j0 … j0 + BC − 1 into sm[ksm, ksm + BC·KS), ksm = BR·KS. Unrolled so that every load
// of the chunk is in flight before the first store. Between two workgroup barriers.
fn stage_qk(lid: u32, qbase: u32, kbase: u32, i0: u32, j0: u32, kc: u32, ld: u32) {
  let ksm = BR * KS;
  #unroll
  for (var u = 0u; u < NQL; u++) {
    let e = lid + u * WG;
    if (e < BR * KC4) {
      let r = e / KC4;
      let c4 = e % KC4;
      sm[r * KS + c4] = load4(0u, qbase, i0 + r, p.nq, kc + 4u * c4, ld);
    }
  }
  #unroll
  for (var u = 0u; u < NKL; u++) {
    let e = lid + u * WG;
    if (e < BC * KC4) {
      let r = e / KC4;
      let c4 = e % KC4;
      sm[ksm + r * KS + c4] = load4(1u, kbase, j0 + r, p.nk, kc + 4u * c4, ld);
    }
  }
}

// Stages the V slab of keys j0 … j0 + VC − 1 (zero from key `kend` on), all of d, into
// sm[0, VC·GW) as [key][vec4 column group]. Between two workgroup barriers.
fn stage_v(lid: u32, kbase: u32, j0: u32, kend: u32, ld: u32) {
  #unroll
  for (var u = 0u; u < NVL; u++) {
    let e = lid + u * WG;
    if (e < VC * GW) {
      let r = e / GW;
      let g4 = e % GW;
      sm[e] = load4(2u, kbase, j0 + r, kend, 4u * g4, ld);
    }
  }
}
