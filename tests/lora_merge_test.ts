/**
 * LoRA merging on the GPU (src/ops/lora_merge.ts, kernels/lora_merge.wgsl) against a plain TS
 * reference at small and SD shapes — linear, 3×3 convolution (direct weight) and the Winograd
 * transform of a 3×3 filter — and the merger (src/models/lora_merge.ts): a merge changes the
 * weights the file names and switching back restores every byte, in f32 and f16.
 */

import { assert, assertEquals } from "../src/std/assert.ts";
import type { DType, Gpu } from "../src/gpu/device.ts";
import { Tensor } from "../src/gpu/tensor.ts";
import { prepareConv, releaseConv, winogradFilter } from "../src/ops/conv2d.ts";
import { addLowRank, addLowRankWinograd } from "../src/ops/lora_merge.ts";
import { LoraMerger } from "../src/models/lora_merge.ts";
import { StableDiffusion } from "../src/pipeline.ts";
import { fixture } from "./fixtures.ts";
import { setVariants } from "../src/ops/variants.ts";
import { hasGpu, maxAbs, randomData, relL2, testGpu } from "./gpu.ts";

/** W + scale · up · down on the CPU (f64 sums), W [out, J], up [out, r], down [r, J]. */
function mergeRef(
  w: Float32Array,
  up: Float32Array,
  down: Float32Array,
  r: number,
  scale: number,
): Float32Array {
  const out = up.length / r, J = down.length / r;
  const y = new Float32Array(w.length);
  for (let o = 0; o < out; o++) {
    for (let j = 0; j < J; j++) {
      let s = 0;
      for (let k = 0; k < r; k++) s += up[o * r + k] * down[k * J + j];
      y[o * J + j] = w[o * J + j] + scale * s;
    }
  }
  return y;
}

function dtypes(gpu: Gpu): DType[] {
  return gpu.hasF16 ? ["f32", "f16"] : ["f32"];
}

/** The values a tensor of `dtype` holds for `data`. */
function stored(data: Float32Array, dtype: DType): Float32Array {
  return dtype === "f16" ? Float32Array.from(new Float16Array(data)) : data;
}

Deno.test({
  name: "lora merge: W += s·up·down vs CPU, linear and 3×3 conv, small and SD shapes",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await testGpu())!;
    // [weight shape], rank: small, 320×320 r4, 1280×2560 r8, a 3×3 conv 640×640 r4 (LoCon).
    const cases: [number[], number][] = [
      [[5, 7], 3],
      [[320, 320], 4],
      [[1280, 2560], 8],
      [[640, 640, 3, 3], 4],
    ];
    for (const dtype of dtypes(gpu)) {
      for (const [shape, r] of cases) {
        const out = shape[0];
        const J = shape.slice(1).reduce((a, b) => a * b, 1);
        const w0 = stored(randomData(out * J, 3, 0.5), dtype);
        const up = randomData(out * r, 5, 0.1);
        const down = randomData(r * J, 7, 0.1);
        const scale = 0.8 * 2 / r;
        const w = Tensor.from(gpu, w0, shape, dtype);
        const tu = Tensor.from(gpu, up, [out, r], "f32");
        const td = Tensor.from(gpu, down, [r, J], "f32");
        addLowRank(w, tu, td, scale);
        const got = await w.read();
        const want = mergeRef(w0, up, down, r, scale);
        const what = `${dtype} [${shape}] r${r}`;
        if (dtype === "f32") {
          const e = relL2(got, want);
          assert(e < 1e-6, `${what}: rel L2 ${e}`);
        } else {
          // One rounding of the f32 result to f16: at most half an ulp (≤ 2^-11 relative).
          const rounded = stored(want, "f16");
          const d = maxAbs(got, rounded);
          const big = want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
          assert(d <= big * 2 ** -10, `${what}: max diff ${d} from the rounded reference`);
        }
        for (const t of [w, tu, td]) t.release();
      }
    }
  },
});

Deno.test({
  name: "lora merge: into a Winograd-transformed 3×3 filter = transform of the merged filter",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await testGpu())!;
    // Each Winograd tile; under auto a filter with > 640 output channels gets F(2×2) while its
    // down half ([r, C]) would get F(4×4): the merge transforms it with the filter's tile.
    const runs = [
      { winograd: "f2", shapes: [[5, 7, 3], [640, 640, 4]] },
      { winograd: "f4", shapes: [[5, 7, 3], [640, 640, 4]] },
      { winograd: "auto", shapes: [[700, 5, 3]] },
    ] as const;
    for (const dtype of dtypes(gpu)) {
      for (const { winograd, shapes } of runs) {
        setVariants(gpu, { winograd });
        for (const [O, C, r] of shapes) {
          const w0 = stored(randomData(O * C * 9, 11, 0.5), dtype);
          const up = randomData(O * r, 13, 0.1);
          const down = randomData(r * C * 9, 17, 0.1);
          const scale = 1.5 / r;
          // The merge under test: into the transform of the loaded filter.
          const w = Tensor.from(gpu, w0, [O, C, 3, 3], dtype, { persistent: true });
          prepareConv(w);
          const tu = Tensor.from(gpu, up, [O, r], "f32");
          const td = Tensor.from(gpu, down, [r, C, 3, 3], "f32");
          addLowRankWinograd(w, tu, td, scale);
          // The reference: the filter merged on the CPU (in f32), then transformed (in f32).
          const ref = Tensor.from(gpu, mergeRef(w0, up, down, r, scale), [O, C, 3, 3], "f32", {
            persistent: true,
          });
          prepareConv(ref);
          const u = winogradFilter(w)!, uRef = winogradFilter(ref)!;
          assert(u.xi === uRef.xi, `${winograd}: one tile for the filter and its reference`);
          const n = u.xi * u.Cp * u.Op;
          const raw = await gpu.read(u.u, n * (dtype === "f16" ? 2 : 4));
          const got = dtype === "f16"
            ? Float32Array.from(new Float16Array(raw))
            : new Float32Array(raw);
          const want = new Float32Array(await gpu.read(uRef.u, n * 4));
          const e = relL2(got, want);
          const tol = dtype === "f32" ? 1e-6 : 1e-3; // f16: the transform and the sum rounded once each
          assert(e < tol, `${dtype} ${winograd} [${O},${C},3,3] r${r}: rel L2 ${e}`);
          for (const t of [w, ref]) {
            releaseConv(t);
            t.destroy();
          }
          tu.release();
          td.release();
        }
      }
    }
    setVariants(gpu, { winograd: "auto" });
  },
});

Deno.test({
  name: "lora merge: switching LoRAs restores every merged weight exactly (f32 and f16)",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await testGpu())!;
    for (const precision of dtypes(gpu)) {
      const sd = await StableDiffusion.load(gpu, { kind: "dir", dir: fixture("tiny-sd") }, {
        precision,
      });
      const merger = new LoraMerger(gpu, { unet: sd.unet.store, text_encoder: sd.text.store });
      // Every UNet buffer a LoRA of the fixtures can touch: weights still held and transforms.
      const buffers = sd.unet.store.params.flatMap((p) => {
        const t = p.t;
        const u = winogradFilter(t);
        const elt = precision === "f16" ? 2 : 4;
        return [
          ...(t.released ? [] : [{ key: p.key, buf: t.buffer, bytes: t.bytes }]),
          ...(u ? [{ key: `${p.key} (Winograd)`, buf: u.u, bytes: 16 * u.Cp * u.Op * elt }] : []),
        ];
      });
      const snapshot = async () =>
        await Promise.all(buffers.map(async (b) => new Uint8Array(await gpu.read(b.buf, b.bytes))));
      const base = await snapshot();
      const kohya = fixture("features/tiny-sd-lora-kohya.safetensors");
      const peft = fixture("features/tiny-sd-lora-peft.safetensors");
      const changed = (now: Uint8Array[]) =>
        buffers.filter((_, i) => now[i].some((v, j) => v !== base[i][j])).map((b) => b.key);
      try {
        const use1 = await merger.use([{ path: kohya, te: 1, unet: 1 }]);
        assert(use1.unetChanged, "the first LoRA changes the UNet");
        const touched = changed(await snapshot());
        // 7 UNet modules in the kohya file; the two 3×3 convs only as Winograd transforms.
        assertEquals(touched.length, 7, `changed: ${touched.join(", ")}`);
        const use2 = await merger.use([{ path: kohya, te: 0.5, unet: 1 }]);
        assert(!use2.unetChanged, "same UNet part: nothing merged again");
        await merger.use([{ path: peft, te: 1, unet: 0.5 }, { path: kohya, te: 1, unet: 1 }]);
        assert(changed(await snapshot()).length > touched.length, "both files merged");
        await merger.use([]);
        assertEquals(changed(await snapshot()), [], "every byte restored");
      } finally {
        merger.reset();
        sd.unet.store.release();
        sd.text.store.release();
        sd.vae.store.release();
      }
    }
  },
});
