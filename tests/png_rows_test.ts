/**
 * The GPU's PNG scanlines (src/ops/png_rows.ts, kernels/png_rows.wgsl) against the CPU path they
 * replace, byte for byte: `pixelScanlines(chwToHwc01(x))` of the values the tensor holds. Small
 * odd widths cover the packing of 1 + 3W-byte rows into u32 words; an SD-sized image covers the
 * rounding ties (v·255 exactly k + 0.5), out-of-range values and f16 subnormals; NaN/Inf report
 * the smallest CHW index; and a whole tiny-sd generation gives the same PNG both ways.
 */

import { assert, assertEquals, assertRejects } from "../src/std/assert.ts";
import type { DType, Gpu } from "../src/gpu/device.ts";
import { Tensor } from "../src/gpu/tensor.ts";
import { readPngScanlines } from "../src/ops/png_rows.ts";
import { encodePng, encodeScanlines, pixelScanlines, toRgb8 } from "../src/png.ts";
import { chwToHwc01, StableDiffusion } from "../src/pipeline.ts";
import type { ModelSource } from "../src/weights/source.ts";
import { defaultLimitsGpu, hasGpu, randomData, testGpu } from "./gpu.ts";
import { fixture } from "./fixtures.ts";

/** The values a tensor of `dtype` holds for `data`. */
function stored(data: Float32Array, dtype: DType): Float32Array {
  return dtype === "f16" ? Float32Array.from(new Float16Array(data)) : data;
}

/** The CPU path: CHW in [-1, 1] → HWC in [0, 1] → RGB8 → Sub-filtered scanlines. */
function reference(chw: Float32Array, h: number, w: number): Uint8Array {
  return pixelScanlines(chwToHwc01(chw, 3, h, w), w, h);
}

/** The dtypes a device can hold. */
function dtypes(gpu: Gpu): DType[] {
  return gpu.hasF16 ? ["f32", "f16"] : ["f32"];
}

async function gpuRows(gpu: Gpu, data: Float32Array, h: number, w: number, dtype: DType) {
  const x = Tensor.from(gpu, data, [1, 3, h, w], dtype);
  try {
    return await readPngScanlines(x);
  } finally {
    x.release();
  }
}

/** The first differing byte, described, or null. */
function firstDiff(got: Uint8Array, want: Uint8Array, w: number): string | null {
  if (got.length !== want.length) return `${got.length} bytes, want ${want.length}`;
  const i = got.findIndex((b, k) => b !== want[k]);
  if (i < 0) return null;
  const stride = 1 + 3 * w;
  return `byte ${i} (row ${Math.floor(i / stride)}, column ${i % stride}): ${got[i]}, want ${
    want[i]
  }`;
}

Deno.test({
  name: "readPngScanlines: small images, widths 1–9 (word packing), equal the CPU's bytes",
  ignore: !hasGpu,
  async fn() {
    for (const gpu of [await testGpu(), await defaultLimitsGpu()]) {
      for (const dtype of dtypes(gpu!)) {
        for (
          const [h, w] of [
            [5, 1],
            [5, 2],
            [5, 3],
            [5, 4],
            [5, 5],
            [5, 6],
            [5, 7],
            [5, 8],
            [
              5,
              9,
            ],
            [1, 1],
            [3, 7],
          ]
        ) {
          const data = randomData(3 * h * w, 17 * w + h, 1.3);
          const { rows, firstBad } = await gpuRows(gpu!, data, h, w, dtype);
          assertEquals(firstBad, null, `${dtype} ${w}×${h}: firstBad`);
          const diff = firstDiff(rows, reference(stored(data, dtype), h, w), w);
          assert(diff === null, `${dtype} ${w}×${h}: ${diff}`);
        }
      }
    }
  },
});

/**
 * 512×512×3 values: around every tie v = (k + 0.5)/255 (±4 ulps of v), at every k/255, out of
 * range (the largest finite in the dtype), signed zeros, f32 and f16 subnormals; the rest uniform in [-1.2, 1.2].
 */
function sdValues(dtype: DType): Float32Array {
  const n = 3 * 512 * 512;
  const out = randomData(n, 5, 1.2);
  const huge = dtype === "f16" ? 6e4 : 3e38; // finite in the dtype
  const special: number[] = [0, -0, 1, -1, 1.5, -1.5, 100, -100, huge, -huge, 1e-40, -1e-40];
  for (const m of [1, 2, 511, 1023]) special.push(m * 2 ** -24, -m * 2 ** -24); // f16 subnormals
  special.push(3e-5, -3e-5, 6e-5, -6e-5);
  const bits = new Uint32Array(1), f = new Float32Array(bits.buffer);
  for (let k = 0; k <= 255; k++) {
    for (const t of [k + 0.5, k]) {
      f[0] = t / 255;
      const base = bits[0];
      for (let d = base === 0 ? 0 : -4; d <= 4; d++) {
        bits[0] = base + d;
        special.push(Math.fround(2 * f[0] - 1));
      }
    }
  }
  out.set(special, 1000);
  return out;
}

Deno.test({
  name: "readPngScanlines: 512×512 with rounding ties, out-of-range values and subnormals",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await testGpu())!;
    for (const dtype of dtypes(gpu)) {
      const data = sdValues(dtype);
      const values = stored(data, dtype);
      // The case must hold ties: products v·255 that are exactly k + 0.5 in f32.
      const ties = chwToHwc01(values, 3, 512, 512).filter((v) => {
        const p = Math.fround(v * 255);
        return p - Math.floor(p) === 0.5;
      }).length;
      assert(ties > 0, `${dtype}: no rounding ties in the case`);
      const { rows, firstBad } = await gpuRows(gpu, data, 512, 512, dtype);
      assertEquals(firstBad, null, `${dtype}: firstBad`);
      const diff = firstDiff(rows, reference(values, 512, 512), 512);
      assert(diff === null, `${dtype} (${ties} ties): ${diff}`);
    }
  },
});

Deno.test({
  name: "readPngScanlines: NaN, +Inf and -Inf give the smallest CHW index of one, f32 and f16",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await testGpu())!;
    const h = 512, w = 512;
    for (const dtype of dtypes(gpu)) {
      for (const [bad, at] of [[NaN, 700_001], [Infinity, 3], [-Infinity, 262_144]] as const) {
        const data = randomData(3 * h * w, 9, 1);
        data[at] = bad;
        data[at + 5000] = NaN; // a later one does not hide the first
        const got = await gpuRows(gpu, data, h, w, dtype);
        assertEquals(got.firstBad, at, `${dtype} ${bad}`);
      }
      const data = randomData(3 * 8 * 5, 2, 1);
      data[0] = -Infinity;
      assertEquals((await gpuRows(gpu, data, 8, 5, dtype)).firstBad, 0, `${dtype}: index 0`);
      // f16 overflow of a finite f32 (7e4 > 65504) is an Inf the f16 tensor holds.
      data[0] = 0;
      data[77] = 7e4;
      const big = (await gpuRows(gpu, data, 8, 5, dtype)).firstBad;
      assertEquals(big, dtype === "f16" ? 77 : null, `${dtype}: 7e4`);
    }
  },
});

const TINY: ModelSource = { kind: "dir", dir: fixture("tiny-sd") };

Deno.test({
  name: "generateScanlines: the tiny-sd PNG is byte-identical to the CPU path's; NaN latents fail",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await testGpu())!;
    const sd = await StableDiffusion.load(gpu, TINY, { precision: gpu.hasF16 ? "f16" : "f32" });
    const params = {
      prompt: "a cat",
      seed: 3,
      steps: 2,
      guidance: 7.5,
      width: 64,
      height: 48,
      scheduler: "ddim" as const,
    };
    const opts = { text: { parameters: "a cat" } };
    const floats = await sd.generate(params);
    const rows = await sd.generateScanlines(params);
    const cpu = encodePng(toRgb8(floats.pixels), 64, 48, opts);
    const viaGpu = encodeScanlines(rows.scanlines, rows.width, rows.height, opts);
    assert(
      cpu.length === viaGpu.length && cpu.every((b, i) => b === viaGpu[i]),
      `PNGs differ: ${firstDiff(rows.scanlines, pixelScanlines(floats.pixels, 64, 48), 64)}`,
    );
    // A NaN in the image goes the same way as on the float path: the latents are checked first.
    const z = new Float32Array(4 * 6 * 8).fill(0.1);
    z[13] = NaN;
    const latents = () => Tensor.from(gpu, z, [1, 4, 6, 8], sd.vae.store.dtype);
    const floatErr = await assertRejects(
      () => sd.decodeTensor(latents(), 6, 8),
      "the final latents contains NaN/Inf (at 13)",
    );
    const rowsErr = await assertRejects(() => sd.decodeScanlines(latents()), "NaN/Inf");
    assertEquals(rowsErr.message, floatErr.message);
  },
});
