/**
 * Elementwise ops: add/mul with broadcasting of the second operand, activations, scale, cast.
 * Kernel family: `kernels/elementwise.wgsl`.
 *
 * @module
 */

import type { DType } from "../gpu/device.ts";
import { Tensor } from "../gpu/tensor.ts";
import { grid1d } from "../gpu/grid.ts";
import { kernelSource, specialize, Uniforms } from "../gpu/wgsl.ts";

/** Unary elementwise functions. */
export type UnaryOp = "silu" | "gelu" | "quick_gelu" | "scale" | "cast" | "cfg";
/** Binary elementwise functions (b broadcast by repetition). */
export type BinaryOp = "add" | "mul";

function run(
  op: UnaryOp | BinaryOp,
  a: Tensor,
  b: Tensor | null,
  alpha: number,
  to: DType,
  bdiv = 1,
): Tensor {
  const gpu = a.gpu;
  const name = `elementwise_${op}_${a.dtype}${to !== a.dtype ? `_to_${to}` : ""}`;
  const kernel = gpu.kernel(name, () =>
    specialize(kernelSource("elementwise.wgsl"), {
      T: a.dtype,
      TO: to,
      BINARY: b !== null,
      [`OP_${op.toUpperCase()}`]: true,
    }));
  const shape = op === "cfg" ? [a.shape[0] / 2, ...a.shape.slice(1)] : a.shape;
  const y = Tensor.empty(gpu, shape, to, name);
  const n = y.size;
  const u = new Uniforms().u32(n).u32(b ? b.size : n).f32(alpha).u32(bdiv).buffer;
  const bufs = b ? [a.buffer, b.buffer, y.buffer] : [a.buffer, y.buffer];
  gpu.dispatch(kernel, u, bufs, grid1d(n), {
    bytes: n * (2 * (a.dtype === "f16" ? 2 : 4)) + (b ? b.bytes : 0),
  });
  return y;
}

/**
 * `a + b`, where `b` repeats every `b.size` elements of `a` (equal shapes, or a trailing block).
 */
export function add(a: Tensor, b: Tensor): Tensor {
  checkBroadcast(a, b);
  return run("add", a, b, 0, a.dtype);
}

/**
 * `x + t[:, :, None, None]`: a per-(batch, channel) value added over the spatial dims, as the
 * ResNet block adds its time embedding. x [B, C, ...spatial], t [B, C].
 */
export function addChannelBias(x: Tensor, t: Tensor): Tensor {
  const [b, c] = x.shape;
  if (t.size !== b * c || t.dtype !== x.dtype) {
    throw new Error(
      `addChannelBias: [${t.shape}] ${t.dtype} does not match [${x.shape}] ${x.dtype}`,
    );
  }
  return run("add", x, t, 0, x.dtype, x.size / (b * c));
}

/** `a · b` with the same broadcasting as {@linkcode add}. */
export function mul(a: Tensor, b: Tensor): Tensor {
  checkBroadcast(a, b);
  return run("mul", a, b, 0, a.dtype);
}

/** An elementwise function of `a`: SiLU, erf GELU, quick-GELU, `a·alpha`, or a dtype cast. */
export function unary(op: UnaryOp, a: Tensor, alpha = 1): Tensor {
  return run(op, a, null, alpha, a.dtype);
}

/**
 * Classifier-free guidance on a [2·B, ...] batch ordered [unconditional; conditional]:
 * `eps_u + g·(eps_c − eps_u)` → [B, ...].
 */
export function cfgCombine(eps: Tensor, g: number): Tensor {
  if (eps.shape[0] % 2 !== 0) throw new Error(`cfgCombine: batch ${eps.shape[0]} is not even`);
  return run("cfg", eps, null, g, eps.dtype);
}

/** `a` converted to `dtype` (a copy even when the dtype is unchanged). */
export function cast(a: Tensor, dtype: DType): Tensor {
  return run("cast", a, null, 1, dtype);
}

function checkBroadcast(a: Tensor, b: Tensor): void {
  if (a.dtype !== b.dtype || a.size % b.size !== 0) {
    throw new Error(
      `elementwise: cannot broadcast [${b.shape}] ${b.dtype} over [${a.shape}] ${a.dtype}`,
    );
  }
}
