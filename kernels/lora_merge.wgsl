// LoRA merge: a rank-r update added in place to a weight,
//   W[b, m, n] += scale · Σ_k A[b, m, k] · B[b, k, n]    (k < K = r, the LoRA rank)
// with every operand addressed through an offset and strides (uniforms) — A and B may lie
// anywhere in a buffer that holds the halves of many updates — so that one kernel serves
//   - linear and direct convolution weights W [out, in·k·k] += s · up [out, r] · down [r, in·k·k]
//     (batch 1, m = output channel, n = input feature);
//   - Winograd-transformed 3×3 filters U [ξ, Cp, Op] += s · D̂ [ξ, C, r] · upᵀ [r, O], where D̂ is
//     the Winograd transform of the down half made by the same WEIGHT_TRANSFORM as U's
//     (conv2d_winograd.wgsl, 16 ξ, or conv2d_winograd4.wgsl, 36 ξ) (the
//     transform is linear in the filter, so transforming the update equals updating the transform)
//     (batch = the ξ count, m = input channel, n = output channel).
//
// Work decomposition: one invocation per updated element, 64 a workgroup along n; grid
// (⌈N/64⌉, M, batch). No tiling: r is small (≤ 128 in practice) and each element is read and
// written once, so the kernel is bound by W's memory traffic like a copy.
//
// Precision: A and B are f32 (the LoRA halves widened from the file, or the f32 transform); the
// sum and the addition are f32; W (T = f32 | f16, the model's storage type) is rounded once.
//
// Specializations (pipeline-cache key / profiler label): lora_merge_<T>.

struct Params {
  M: u32,
  N: u32,
  K: u32,
  scale: f32,
  a_b: u32,  // A strides: batch, row m, column k
  a_m: u32,
  a_k: u32,
  b_b: u32,  // B strides: batch, row k, column n
  b_k: u32,
  b_n: u32,
  w_b: u32,  // W strides: batch, row m, column n
  w_m: u32,
  w_n: u32,
  a_o: u32,  // offsets of A's and B's first element
  b_o: u32,
  _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> w: array<${T}>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n = gid.x;
  let m = gid.y;
  let z = gid.z;
  if (n >= p.N) {
    return;
  }
  var acc = 0.0;
  let ai = p.a_o + z * p.a_b + m * p.a_m;
  let bi = p.b_o + z * p.b_b + n * p.b_n;
  for (var k = 0u; k < p.K; k++) {
    acc += a[ai + k * p.a_k] * b[bi + k * p.b_k];
  }
  let i = z * p.w_b + m * p.w_m + n * p.w_n;
  w[i] = ${T}(f32(w[i]) + p.scale * acc);
}
