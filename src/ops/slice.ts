/**
 * A channel slice of an NCHW tensor, optionally clamped. Kernel family: `kernels/slice.wgsl`.
 *
 * @module
 */

import { Tensor } from "../gpu/tensor.ts";
import { kernelSource, specialize, Uniforms } from "../gpu/wgsl.ts";
import { grid1d } from "../gpu/grid.ts";

/** x[:, start : start + count] of x [B, C, ...spatial], clamped to [clampMin, clampMax]. */
export function sliceChannels(
  x: Tensor,
  start: number,
  count: number,
  opts: { clampMin?: number; clampMax?: number } = {},
): Tensor {
  const [b, c, ...rest] = x.shape;
  if (start < 0 || start + count > c) {
    throw new Error(`sliceChannels: [${start}, ${start + count}) outside ${c} channels`);
  }
  const spatial = rest.reduce((a, d) => a * d, 1);
  const name = `slice_channels_${x.dtype}`;
  const kernel = x.gpu.kernel(
    name,
    () => specialize(kernelSource("slice.wgsl"), { T: x.dtype }),
  );
  const y = Tensor.empty(x.gpu, [b, count, ...rest], x.dtype, name);
  const u = new Uniforms().u32(y.size).u32(count).u32(c).u32(start).u32(spatial)
    .f32(opts.clampMin ?? -3.4e38).f32(opts.clampMax ?? 3.4e38).u32(0).buffer;
  x.gpu.dispatch(kernel, u, [x.buffer, y.buffer], grid1d(y.size), { bytes: 2 * y.bytes });
  return y;
}
