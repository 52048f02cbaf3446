/**
 * PNG scanlines on the GPU: the VAE's image [1, 3, H, W] (f32 or f16, values in [-1, 1]) →
 * per row the filter byte and the Sub-filtered RGB8 bytes that src/png.ts's `pixelScanlines`
 * makes from `chwToHwc01` of the same values, plus where the first NaN/Inf is. Kernel family:
 * `kernels/png_rows.wgsl`. Replaces, on every image's critical path, the 3 MB f32 readback, the
 * CPU's NaN scan, CHW → HWC, `toRgb8` and the Sub filter (reads back 0.79 MB at 512×512).
 *
 * @module
 */

import type { Gpu } from "../gpu/device.ts";
import type { Tensor } from "../gpu/tensor.ts";
import { grid1d } from "../gpu/grid.ts";
import { kernelSource, specialize, Uniforms } from "../gpu/wgsl.ts";
import { scanlineBytes } from "../png.ts";

/** The readback of {@linkcode readPngScanlines}. */
export interface PngScanlines {
  /** H·(1 + 3W) bytes, ready for `encodeScanlines` (meaningless when `firstBad` is set). */
  rows: Uint8Array;
  /** The smallest CHW index of a NaN/Inf in the image, or null when every value is finite. */
  firstBad: number | null;
}

const NONE = 0xffffffff;

function pngRowsKernel(gpu: Gpu, t: string) {
  return gpu.kernel(
    `png_rows_${t}`,
    () => specialize(kernelSource("png_rows.wgsl"), { F16: t === "f16" }),
  );
}

/**
 * Records the `png_rows` kernel on `img` [1, 3, H, W] and reads back its scanlines and NaN/Inf
 * status (one readback: a wait for the GPU). `img` is not released.
 *
 * @example
 * ```ts
 * const { rows, firstBad } = await readPngScanlines(vae.decode(z));
 * if (firstBad === null) await Deno.writeFile("a.png", encodeScanlines(rows, 512, 512));
 * ```
 */
export async function readPngScanlines(img: Tensor): Promise<PngScanlines> {
  if (img.shape.length !== 4 || img.shape[0] !== 1 || img.shape[1] !== 3) {
    throw new Error(`readPngScanlines: image [${img.shape}] is not [1, 3, H, W]`);
  }
  const gpu = img.gpu;
  const [, , h, w] = img.shape;
  const bytes = scanlineBytes(w, h);
  const words = Math.ceil(bytes / 4);
  const out = gpu.alloc(4 + 4 * words, "png-rows");
  try {
    gpu.write(out, Uint32Array.of(NONE)); // first_bad, in order with the recorded work
    gpu.dispatch(
      pngRowsKernel(gpu, img.dtype),
      new Uniforms().u32(words).u32(bytes).u32(w).u32(h * w).buffer,
      [img.buffer, out],
      grid1d(words),
      { bytes: img.bytes + 4 * words },
    );
    const raw = await gpu.read(out, 4 + bytes);
    const first = new DataView(raw).getUint32(0, true);
    return { rows: new Uint8Array(raw, 4, bytes), firstBad: first === NONE ? null : first };
  } finally {
    gpu.free(out);
  }
}
