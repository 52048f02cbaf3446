/**
 * LayerNorm over the last dimension, statistics in f32. Kernel family: `kernels/layernorm.wgsl`.
 *
 * @module
 */

import { bytesOf } from "../gpu/device.ts";
import { Tensor } from "../gpu/tensor.ts";
import { grid1d } from "../gpu/grid.ts";
import { kernelSource, specialize, Uniforms } from "../gpu/wgsl.ts";

/** LayerNorm workgroup sizes (WG in layernorm.wgsl); each invocation holds 4 units of a row. */
const LN_WGS = [64, 128, 256];

/**
 * `torch.nn.LayerNorm(C, eps)` over the last dimension of `x` [..., C] with weight `gamma` and
 * bias `beta` [C]: one workgroup per row, statistics in f32, storage in `x.dtype`.
 *
 * @example
 * ```ts
 * const h = layerNorm(x, p["norm1.weight"], p["norm1.bias"], 1e-5);
 * ```
 */
export function layerNorm(x: Tensor, gamma: Tensor, beta: Tensor, eps: number): Tensor {
  const gpu = x.gpu;
  const c = x.shape.at(-1) ?? 0;
  for (const [what, t] of [["gamma", gamma], ["beta", beta]] as const) {
    if (t.size !== c || t.dtype !== x.dtype) {
      throw new Error(
        `layerNorm: ${what} [${t.shape}] ${t.dtype} does not match last dim ${c} of ${x.dtype}`,
      );
    }
  }
  const vec = c % 4 === 0 ? 4 : 1;
  const units = c / vec;
  const wg = LN_WGS.find((w) => 4 * w >= units) ?? 256;
  const loop = 4 * wg < units;
  const rows = x.size / c;
  const t = x.dtype;
  const name = `layernorm_${t}_v${vec}_w${wg}${loop ? "_loop" : ""}`;
  const kernel = gpu.kernel(
    name,
    () => specialize(kernelSource("layernorm.wgsl"), { T: t, VEC4: vec === 4, WG: wg, LOOP: loop }),
  );
  const y = Tensor.empty(gpu, x.shape, t, "layernorm");
  const u = new Uniforms().u32(units).u32(rows).f32(eps).f32(1 / c).buffer;
  gpu.dispatch(kernel, u, [x.buffer, gamma.buffer, beta.buffer, y.buffer], grid1d(rows, 1), {
    bytes: 2 * x.bytes + 2 * c * bytesOf(t),
  });
  return y;
}
