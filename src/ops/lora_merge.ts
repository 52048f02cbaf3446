/**
 * LoRA merging on the GPU: `W += scale · up · down` in place, for linear and convolution weights
 * and for the Winograd transforms of 3×3 filters. Kernel family: `kernels/lora_merge.wgsl`.
 *
 * The halves are f32 tensors or {@linkcode F32Slice}s: the merger uploads the halves of many
 * updates into one buffer (one write, not one staging buffer per half) and passes offsets.
 *
 * @module
 */

import { Tensor } from "../gpu/tensor.ts";
import { kernelSource, specialize, Uniforms } from "../gpu/wgsl.ts";
import { prepareConv, releaseConv, winogradFilter } from "./conv2d.ts";

/** f32 values from element `offset` of `buffer` (one LoRA half among others). */
export interface F32Slice {
  readonly buffer: GPUBuffer;
  /** In elements. */
  readonly offset: number;
}

interface Operand {
  buffer: GPUBuffer;
  /** Element offset of [0, 0, 0]. */
  offset: number;
  /** Strides of batch, row, column. */
  strides: [number, number, number];
}

/** Records `W[b, m, n] += scale · Σ_k A[b, m, k] · B[b, k, n]` (see the kernel's header). */
function rankUpdate(
  w: Tensor,
  target: GPUBuffer,
  targetStrides: [number, number, number],
  a: Operand,
  b: Operand,
  dims: { batch: number; M: number; N: number; K: number },
  scale: number,
): void {
  const gpu = w.gpu;
  const name = `lora_merge_${w.dtype}`;
  const kernel = gpu.kernel(
    name,
    () => specialize(kernelSource("lora_merge.wgsl"), { T: w.dtype }),
  );
  const u = new Uniforms().u32(dims.M).u32(dims.N).u32(dims.K).f32(scale);
  for (const s of [...a.strides, ...b.strides, ...targetStrides]) u.u32(s);
  u.u32(a.offset).u32(b.offset).u32(0);
  const elt = w.dtype === "f16" ? 2 : 4;
  const outputs = dims.batch * dims.M * dims.N;
  gpu.dispatch(
    kernel,
    u.buffer,
    [a.buffer, b.buffer, target],
    [Math.ceil(dims.N / 64), dims.M, dims.batch],
    { flops: 2 * outputs * dims.K, bytes: 2 * outputs * elt },
  );
}

function slice(half: Tensor | F32Slice): F32Slice {
  return half instanceof Tensor ? { buffer: half.buffer, offset: 0 } : half;
}

/**
 * `w += scale · up · down` for a weight `w` [out, in] or [out, in, k, k] (any dtype), with
 * `up` [out, r] and `down` [r, in·k·k] in f32 (a 4-D down is read as its reshape).
 */
export function addLowRank(w: Tensor, up: Tensor, down: Tensor, scale: number): void {
  const [O] = w.shape;
  const r = up.shape[1];
  if (
    up.dtype !== "f32" || down.dtype !== "f32" || up.shape[0] !== O ||
    down.size !== (r * w.size) / O
  ) {
    throw new Error(
      `addLowRank: up [${up.shape}] ${up.dtype} and down [${down.shape}] ${down.dtype} do not update [${w.shape}] (f32 halves)`,
    );
  }
  addLowRankAt(w, slice(up), slice(down), r, scale);
}

/**
 * {@linkcode addLowRank} with halves given by place: `up` [out, r] and `down` [r, in·k·k], f32
 * (the caller checked their shapes against `w`).
 */
export function addLowRankAt(
  w: Tensor,
  up: F32Slice,
  down: F32Slice,
  r: number,
  scale: number,
): void {
  const [O] = w.shape;
  const J = w.size / O;
  rankUpdate(
    w,
    w.buffer,
    [0, J, 1],
    { ...up, strides: [0, r, 1] },
    { ...down, strides: [0, J, 1] },
    { batch: 1, M: O, N: J, K: r },
    scale,
  );
}

/**
 * Adds the Winograd transform of `scale · up · down` to the transform of the 3×3 filter `w`
 * [O, C, 3, 3] made by `prepareConv` (the transform is linear: T(W + ΔW) = T(W) + T(ΔW)), with
 * `up` [O, r] (a tensor, or a slice of that many values) and `down` [r, C, 3, 3] in f32. The
 * down half is transformed on the GPU by the same kernel as the filters, with the same tile,
 * then `U[ξ] += scale · D̂[ξ] · upᵀ` for each ξ (16 for F(2×2), 36 for F(4×4)).
 */
export function addLowRankWinograd(
  w: Tensor,
  up: Tensor | F32Slice,
  down: Tensor,
  scale: number,
): void {
  const target = winogradFilter(w);
  const [O, C] = w.shape;
  const r = down.shape[0];
  if (!target) throw new Error(`addLowRankWinograd: [${w.shape}] has no Winograd transform`);
  if (
    (up instanceof Tensor && (up.dtype !== "f32" || up.shape.join() !== [O, r].join())) ||
    down.dtype !== "f32" || down.shape.join() !== [r, C, 3, 3].join()
  ) {
    throw new Error(
      `addLowRankWinograd: up [${
        up instanceof Tensor ? up.shape : "slice"
      }] and down [${down.shape}] do not update [${w.shape}]`,
    );
  }
  prepareConv(down, target.tile);
  const d = winogradFilter(down)!; // [xi, Cd, rp]: rows c, columns k < r
  rankUpdate(
    w,
    target.u,
    [target.Cp * target.Op, target.Op, 1],
    { buffer: d.u, offset: 0, strides: [d.Cp * d.Op, d.Op, 1] },
    { ...slice(up), strides: [0, 1, r] },
    { batch: target.xi, M: C, N: O, K: r },
    scale,
  );
  releaseConv(down);
}
