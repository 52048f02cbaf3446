/**
 * CPU time per image of what follows the VAE decode, before and after the GPU makes the PNG
 * scanlines (src/ops/png_rows.ts): before, the CPU scanned the f32 CHW image for NaN/Inf,
 * transposed it to HWC in [0, 1], rounded it to bytes, Sub-filtered the rows and deflated them;
 * now it deflates ready rows. No GPU: the rows are made by the CPU reference once, outside the
 * timing. Usage: `deno run --allow-env scripts/png_cpu_cost.ts [size=512] [runs=30]`.
 *
 * @module
 */

import { chwToHwc01 } from "../src/pipeline.ts";
import { encodeScanlines, rgbScanlines, scanlineBytes, toRgb8 } from "../src/png.ts";

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

// Each run times the old path stage by stage (as run.ts and pipeline.ts did it), then the new one.
const names = ["NaN/Inf scan", "chwToHwc01", "toRgb8", "Sub filter", "deflate + chunks", "after"];
const times: number[][] = names.map(() => []);
const warmup = 10;
for (let i = 0; i < warmup + runs; i++) {
  const t = [performance.now()];
  if (chw.some((v) => !Number.isFinite(v))) throw new Error("NaN in the test image");
  t.push(performance.now());
  const hwc = chwToHwc01(chw, 3, h, w);
  t.push(performance.now());
  const rgb = toRgb8(hwc);
  t.push(performance.now());
  const rows = rgbScanlines(rgb, w, h);
  t.push(performance.now());
  encodeScanlines(rows, w, h, { text });
  t.push(performance.now());
  encodeScanlines(rows, w, h, { text }); // the new path: rows come ready from the GPU
  t.push(performance.now());
  if (i >= warmup) { for (let k = 0; k < names.length; k++) times[k].push(t[k + 1] - t[k]); }
}
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const m = times.map(median);
const f = (ms: number) => `${ms.toFixed(2).padStart(7)} ms`;
console.log(`${w}×${h}, median of ${runs}, ${navigator.hardwareConcurrency} CPU threads`);
for (let k = 0; k < names.length - 1; k++) console.log(`  ${names[k].padEnd(18)} ${f(m[k])}`);
console.log(`before (sum)         ${f(m.slice(0, -1).reduce((a, b) => a + b, 0))}`);
console.log(`after (deflate only) ${f(m.at(-1)!)}`);
console.log(
  `readback: ${(4 * chw.length / 1e6).toFixed(2)} MB f32 image → ${
    ((scanlineBytes(w, h) + 4) / 1e6).toFixed(2)
  } MB rows + status`,
);
