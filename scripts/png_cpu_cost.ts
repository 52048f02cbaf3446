/**
 * CPU time per image of what follows the VAE decode, before and after the GPU makes the PNG
 * scanlines (src/ops/png_rows.ts): before, the CPU scanned the f32 CHW image for NaN/Inf,
 * transposed it to HWC in [0, 1], rounded it to bytes, Sub-filtered the rows and deflated them;
 * now it deflates ready rows. No GPU: the rows are made by the CPU reference once, outside the
 * timing. Usage: `deno run scripts/png_cpu_cost.ts [size=512] [runs=30]`.
 *
 * @module
 */

import { chwToHwc01 } from "../src/pipeline.ts";
import { encodePng, encodeScanlines, pixelScanlines, toRgb8 } from "../src/png.ts";

const size = Number(Deno.args[0] ?? 512);
const runs = Number(Deno.args[1] ?? 30);
const h = size, w = size;

// A smooth image with some texture, in [-1, 1] (what a VAE gives), CHW.
const chw = new Float32Array(3 * h * w);
for (let c = 0; c < 3; c++) {
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      chw[(c * h + y) * w + x] = Math.sin(x / (20 + 7 * c)) * Math.cos(y / 31) * 0.9 +
        0.05 * Math.sin(x * y * 0.37 + c);
    }
  }
}
const text = { parameters: "a cat\nSteps: 20, Sampler: PNDM, CFG scale: 7.5, Seed: 1" };

function median(fn: () => void): number {
  const t: number[] = [];
  for (let i = 0; i < runs + 3; i++) {
    const t0 = performance.now();
    fn();
    if (i >= 3) t.push(performance.now() - t0);
  }
  t.sort((a, b) => a - b);
  return t[Math.floor(t.length / 2)];
}

const hwc = chwToHwc01(chw, 3, h, w);
const rgb = toRgb8(hwc);
const rows = pixelScanlines(hwc, w, h);
const scan = median(() => void chw.some((v) => !Number.isFinite(v)));
const transpose = median(() => void chwToHwc01(chw, 3, h, w));
const bytes = median(() => void toRgb8(hwc));
const encode = median(() => void encodePng(rgb, w, h, { text }));
const filterOnly = median(() => void pixelScanlines(hwc, w, h)) - bytes;
const before = median(() => {
  if (chw.some((v) => !Number.isFinite(v))) throw new Error("NaN");
  encodePng(toRgb8(chwToHwc01(chw, 3, h, w)), w, h, { text });
});
const after = median(() => void encodeScanlines(rows, w, h, { text }));
const f = (ms: number) => `${ms.toFixed(2).padStart(7)} ms`;
console.log(`${w}×${h}, median of ${runs}, ${navigator.hardwareConcurrency} CPU threads`);
console.log(`  NaN/Inf scan      ${f(scan)}`);
console.log(`  chwToHwc01        ${f(transpose)}`);
console.log(`  toRgb8            ${f(bytes)}`);
console.log(`  Sub filter        ${f(filterOnly)}   (pixelScanlines − toRgb8)`);
console.log(`  encodePng         ${f(encode)}   (Sub filter + deflate + chunks)`);
console.log(`before (all CPU)    ${f(before)}`);
console.log(`after (deflate only) ${f(after)}`);
console.log(
  `readback: ${(4 * chw.length / 1e6).toFixed(2)} MB f32 image → ${
    ((rows.length + 4) / 1e6).toFixed(2)
  } MB rows + status`,
);
