import { assert, assertEquals, assertThrows } from "../src/std/assert.ts";
import { Tensor } from "../src/gpu/tensor.ts";
import { sliceChannels } from "../src/ops/slice.ts";
import { hasGpu, randomData, testGpu } from "./gpu.ts";

/** CPU reference: x[:, start : start + count] of x [b, c, s], clamped to [lo, hi]. */
function sliceOnCpu(
  x: Float32Array,
  [b, c, s]: number[],
  start: number,
  count: number,
  lo = -Infinity,
  hi = Infinity,
): Float32Array {
  const y = new Float32Array(b * count * s);
  for (let i = 0; i < b; i++) {
    for (let k = 0; k < count; k++) {
      for (let j = 0; j < s; j++) {
        y[(i * count + k) * s + j] = Math.min(hi, Math.max(lo, x[(i * c + start + k) * s + j]));
      }
    }
  }
  return y;
}

Deno.test({
  name: "slice: channel slices of NCHW, with and without the clamp, f32 and f16 vs CPU",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await testGpu())!;
    for (const dtype of ["f32", "f16"] as const) {
      if (dtype === "f16" && !gpu.hasF16) continue;
      // Small odd shapes, and the SD VAE encoder's moments [1, 8, 64, 64] → mean and log-variance.
      for (const [b, c, h, w] of [[2, 5, 3, 7], [1, 8, 64, 64]]) {
        const s = h * w;
        const data = randomData(b * c * s, 7, 40);
        const xs = dtype === "f16" ? Float32Array.from(new Float16Array(data)) : data;
        const x = Tensor.from(gpu, data, [b, c, h, w], dtype);
        const half = Math.floor(c / 2);
        const mean = sliceChannels(x, 0, half);
        assertEquals(mean.shape, [b, half, h, w]);
        // A slice is a copy: bit-exact in the storage type.
        assertEquals([...(await mean.read())], [...sliceOnCpu(xs, [b, c, s], 0, half)]);
        const logvar = sliceChannels(x, half, c - half, { clampMin: -30, clampMax: 20 });
        const want = sliceOnCpu(xs, [b, c, s], half, c - half, -30, 20);
        const got = await logvar.read();
        // The clamp bounds are exact in f16 and f32, so clamping stays bit-exact.
        assertEquals([...got], [...want], `${dtype} [${b}, ${c}, ${h}, ${w}]`);
        assert(
          want.some((v) => v === 20) && want.some((v) => v === -30),
          "the clamp was exercised",
        );
        for (const t of [x, mean, logvar]) t.release();
      }
    }
  },
});

Deno.test({
  name: "slice: a range outside the channels is rejected",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await testGpu())!;
    const x = Tensor.from(gpu, new Float32Array(2 * 3 * 4), [2, 3, 2, 2], "f32");
    assertThrows(() => sliceChannels(x, 2, 2), "outside 3 channels");
    x.release();
  },
});
