/**
 * How test images are compared with the reference's: an 8-bit PNG read back against a reference
 * image (H×W×3 f32 in [0, 1]), and the pipeline tolerance — f32: max abs ≤ 0.02 + 1/255 (the
 * 8-bit rounding on top of the reference's bound); f16: mean abs < 0.01.
 *
 * @module
 */

import * as png from "imagescript/png/src/png.mjs";

/** A decoded PNG: RGBA bytes, row-major. */
export interface Rgba {
  width: number;
  height: number;
  buffer: Uint8Array;
}

/** Decodes PNG bytes (any colour type) to RGBA. */
export function decodePng(bytes: Uint8Array): Rgba {
  return png.decode(bytes) as Rgba;
}

/** Max and mean absolute difference of `img`'s RGB from `want` [H, W, 3]. */
export function imageError(img: Rgba, want: Float32Array): { max: number; mean: number } {
  let max = 0, sum = 0;
  for (let p = 0; p < img.width * img.height; p++) {
    for (let ch = 0; ch < 3; ch++) {
      const d = Math.abs(img.buffer[4 * p + ch] / 255 - want[3 * p + ch]);
      max = Math.max(max, d);
      sum += d;
    }
  }
  return { max, mean: sum / want.length };
}

/** Whether an image error is within the pipeline tolerance for `precision`. */
export function withinImageTolerance(
  precision: "f32" | "f16",
  e: { max: number; mean: number },
): boolean {
  return precision === "f32" ? e.max <= 0.02 + 1 / 255 : e.mean < 0.01;
}
