// Layout kernels: pure data movement, no arithmetic (values are copied bit-exactly in T).
//
// Modes (one per pipeline; name = pipeline-cache key and profiler label):
//   TRANSPOSE  layout_transpose_<T>     x [B, R, K] → y [B, K, R]; grid [⌈K/32⌉, ⌈R/32⌉, B]
//       NCHW → NLC is (R, K) = (C, H·W); NLC → NCHW is (H·W, C). Tiled through workgroup memory:
//       a 32×32 tile, workgroup 32×8, each invocation moving 4 elements, so both the reads (along
//       K) and the writes (along R) are contiguous across the 32 lanes of x. The tile row is
//       padded to 33 to keep the column reads off one bank; it is f32 (exact for f16).
//   CONCAT     layout_concat_<T>_v<VEC>  y[o, j] = j < na ? a[o·na + a_off + j] : b[o·nb + j − na]
//       for o < outer, j < na + nb: torch.cat along one dim (channels: outer = B, na = C1·H·W;
//       batch: outer = 1) and, with nb = 0, a slice (a_off = start row · row size). Counted in
//       units of VEC elements: VEC = 4 when na, nb and a_off are multiples of 4 (16-byte moves).
//   UPSAMPLE   layout_upsample2x_<T>   nearest 2×: y[p, 2i + di, 2j + dj] = x[p, i, j], p = b·C + c.
//       One invocation per input element; it writes its two output rows as one vec2 each
//       (an output row has 2w elements = w vec2s, so every vec2 is aligned).
//   CROP       layout_upsample2x_crop_<T>  nearest 2× cropped to H' × W' (2h or 2h − 1, 2w or 2w − 1):
//       y[p, oy, ox] = x[p, ⌊oy/2⌋, ⌊ox/2⌋], one invocation per output element (n = B·C·H'·W',
//       a = H', b = W', c = w). For those sizes this is F.interpolate(x, size=(H', W'),
//       mode="nearest") (⌊o·h/H'⌋ = ⌊o/2⌋), which diffusers' UNet does for latents not divisible
//       by 2^(up blocks − 1) (e.g. 96 px: 12 → 6 → 3 → 2, then 2 → 3).
//   EMBEDDING  layout_embedding_<T>[_pos]  y[r, c] = table[ids[r], c] (+ pos[r % L, c]), r = b·L + l;
//       the sum with the position row is done in f32 and rounded to T once.
//   SPLIT_HALF matmul_split_half_<T>  y0 = x[:, :N], y1 = x[:, N:] for x [M, 2N] — the separate
//       split of naive GEGLU (src/ops/linear.ts); n = M·N, a = N. (Its name is from when it lived
//       in the matmul family (linear.wgsl), kept as the pipeline-cache key and profiler label.)
// The 1-D modes run one invocation per output element, 256 a workgroup, on the 1-D grid of
// common/grid1d.wgsl (more than 65535 workgroups wrap into y).

struct Params {
  n: u32,   // invocations (1-D modes: output units; UPSAMPLE: input elements); TRANSPOSE: R
  a: u32,   // CONCAT: na (units); UPSAMPLE: input height h; EMBEDDING: L; TRANSPOSE: K; SPLIT_HALF: N
  b: u32,   // CONCAT: nb (units); UPSAMPLE: input width w; EMBEDDING: C
  c: u32,   // CONCAT: a_off (units); EMBEDDING: V (rows of the table, for the bound check)
}

@group(0) @binding(0) var<uniform> p: Params;

#include "grid1d.wgsl"

#if TRANSPOSE
@group(0) @binding(1) var<storage, read> x: array<${T}>;
@group(0) @binding(2) var<storage, read_write> y: array<${T}>;

const TILE: u32 = 32u;
var<workgroup> tile: array<f32, 1056>;  // 32 rows × 33

@compute @workgroup_size(32, 8)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let rows = p.n;
  let cols = p.a;
  let base = wid.z * rows * cols;
  let r0 = wid.y * TILE;
  let k0 = wid.x * TILE;
  for (var j = 0u; j < TILE; j += 8u) {
    let r = r0 + lid.y + j;
    let k = k0 + lid.x;
    if (r < rows && k < cols) { tile[(lid.y + j) * 33u + lid.x] = f32(x[base + r * cols + k]); }
  }
  workgroupBarrier();
  for (var j = 0u; j < TILE; j += 8u) {
    let k = k0 + lid.y + j;  // output row
    let r = r0 + lid.x;      // output column
    if (r < rows && k < cols) { y[base + k * rows + r] = ${T}(tile[lid.x * 33u + lid.y + j]); }
  }
}
#else

#if CONCAT
#if VEC4
alias VT = vec4<${T}>;
#else
alias VT = ${T};
#endif
@group(0) @binding(1) var<storage, read> a: array<VT>;
@group(0) @binding(2) var<storage, read> b: array<VT>;
@group(0) @binding(3) var<storage, read_write> y: array<VT>;
#elif UPSAMPLE
@group(0) @binding(1) var<storage, read> x: array<${T}>;
@group(0) @binding(2) var<storage, read_write> y: array<vec2<${T}>>;
#elif CROP
@group(0) @binding(1) var<storage, read> x: array<${T}>;
@group(0) @binding(2) var<storage, read_write> y: array<${T}>;
#elif EMBEDDING
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> table: array<${T}>;
#if POS
@group(0) @binding(3) var<storage, read> pos: array<${T}>;
@group(0) @binding(4) var<storage, read_write> y: array<${T}>;
#else
@group(0) @binding(3) var<storage, read_write> y: array<${T}>;
#endif
#elif SPLIT_HALF
@group(0) @binding(1) var<storage, read> x: array<${T}>;
@group(0) @binding(2) var<storage, read_write> y0: array<${T}>;
@group(0) @binding(3) var<storage, read_write> y1: array<${T}>;
#endif

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = grid1d_index(gid, nwg, 256u);
  if (i >= p.n) { return; }
#if CONCAT
  let row = p.a + p.b;
  let o = i / row;
  let j = i - o * row;
  if (j < p.a) {
    y[i] = a[o * p.a + p.c + j];
  } else {
    y[i] = b[o * p.b + j - p.a];
  }
#elif UPSAMPLE
  let w = p.b;
  let ix = i % w;
  let t = i / w;       // plane · h + iy
  let iy = t % p.a;
  let plane = t / p.a;
  let v = vec2<${T}>(x[i]);
  let o = (plane * 2u * p.a + 2u * iy) * w + ix;  // in vec2 units: output row = w vec2s
  y[o] = v;
  y[o + w] = v;
#elif CROP
  let ox = i % p.b;
  let t = i / p.b;     // plane · H' + oy
  let oy = t % p.a;
  let plane = t / p.a;
  let h = (p.a + 1u) / 2u;
  y[i] = x[(plane * h + oy / 2u) * p.c + ox / 2u];
#elif EMBEDDING
  let r = i / p.b;
  let c = i - r * p.b;
  let id = min(ids[r], p.c - 1u);  // ids are checked on the CPU; clamp keeps reads in bounds
#if POS
  y[i] = ${T}(f32(table[id * p.b + c]) + f32(pos[(r % p.a) * p.b + c]));
#else
  y[i] = table[id * p.b + c];
#endif
#elif SPLIT_HALF
  let m = i / p.a;
  let n = i - m * p.a;
  y0[i] = x[m * 2u * p.a + n];
  y1[i] = x[m * 2u * p.a + p.a + n];
#endif
}
#endif
