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
) {
  return Float32Array.from({ length: b * count * s }, (_, i) => {
    const n = Math.floor(i / (count * s));
    const k = Math.floor(i / s) % count;
    return Math.min(hi, Math.max(lo, x[(n * c + start + k) * s + (i % s)]));
  });
}

Deno.test({
  name: "slice: channel slices of NCHW, with and without the clamp, f32 and f16 vs CPU",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await testGpu())!;
    const dtypes = gpu.hasF16 ? ["f32", "f16"] as const : ["f32"] as const;
    // Small odd shapes, and the SD VAE encoder's moments [1, 8, 64, 64] → mean and log-variance.
    const shapes = [[2, 5, 3, 7], [1, 8, 64, 64]];
    for (const dtype of dtypes) {
      for (const shape of shapes) {
        const [b, c, h, w] = shape;
        const data = randomData(b * c * h * w, 7, 40);
        const xs = dtype === "f16" ? Float32Array.from(new Float16Array(data)) : data;
        const x = Tensor.from(gpu, data, shape, dtype);
        const half = Math.floor(c / 2);
        const mean = sliceChannels(x, 0, half);
        assertEquals(mean.shape, [b, half, h, w]);
        // A slice is a copy and the clamp bounds are exact in f16 and f32: bit-exact results.
        assertEquals([...(await mean.read())], [...sliceOnCpu(xs, [b, c, h * w], 0, half)]);
        const logvar = sliceChannels(x, half, c - half, { clampMin: -30, clampMax: 20 });
        const want = sliceOnCpu(xs, [b, c, h * w], half, c - half, -30, 20);
        assertEquals([...(await logvar.read())], [...want], `${dtype} [${shape}]`);
        assert(want.includes(20) && want.includes(-30), "the clamp was exercised");
        assertThrows(() => sliceChannels(x, half, c), `outside ${c} channels`);
        for (const t of [x, mean, logvar]) t.release();
      }
    }
  },
});
