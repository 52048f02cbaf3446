import { assert } from "../src/std/assert.ts";
import type { DType } from "../src/gpu/device.ts";
import { Tensor } from "../src/gpu/tensor.ts";
import { layerNorm } from "../src/ops/layernorm.ts";
import { hasGpu, maxAbs, randomData, relL2, testGpu } from "./gpu.ts";

/** CPU reference, f64: torch.nn.LayerNorm over the last dim of x [R, C]. */
function layerNormRef(
  x: Float32Array,
  c: number,
  gamma: Float32Array,
  beta: Float32Array,
  eps: number,
): Float32Array {
  const y = new Float32Array(x.length);
  for (let base = 0; base < x.length; base += c) {
    let sum = 0;
    for (let i = 0; i < c; i++) sum += x[base + i];
    const mean = sum / c;
    let q = 0;
    for (let i = 0; i < c; i++) q += (x[base + i] - mean) ** 2;
    const rstd = 1 / Math.sqrt(q / c + eps);
    for (let i = 0; i < c; i++) y[base + i] = (x[base + i] - mean) * rstd * gamma[i] + beta[i];
  }
  return y;
}

const roundF16 = (a: Float32Array) => Float32Array.from(new Float16Array(a));

const cases: { shape: number[]; mean?: number; tolF32?: number }[] = [
  { shape: [3, 5, 7] }, // scalar units, C < WG
  { shape: [4, 32] }, // tiny-sd CLIP width
  { shape: [3, 1283] }, // scalar units, longer than 4·256: the looping kernel
  { shape: [2, 4100] }, // vec4 units, looping kernel
  { shape: [65539, 4] }, // more rows than one grid dimension holds
  { shape: [5, 1280] }, // SD's widest transformer
  { shape: [2, 77, 768] }, // CLIP ViT-L/14 text
  { shape: [2, 4096, 320] }, // SD transformer at 64×64
  // Deviations of ±1 at a mean of 300 carry only ~3e-5 relative precision in f32 (see the
  // GroupNorm test); a variance from E[x²] − E[x]² would be off by ~1e-2.
  { shape: [2, 77, 768], mean: 300, tolF32: 1e-4 },
];

Deno.test({
  name: "layernorm: small, CLIP and SD shapes, f32/f16 vs CPU",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await testGpu())!;
    for (const [k, c] of cases.entries()) {
      const n = c.shape.reduce((a, d) => a * d, 1);
      const ch = c.shape.at(-1)!;
      const x = randomData(n, 20 + k, c.mean ? 1 : 3).map((v) => v + (c.mean ?? 0));
      const gamma = randomData(ch, 40 + k).map((v) => 1 + 0.5 * v);
      const beta = randomData(ch, 60 + k, 0.5);
      const line: string[] = [];
      for (const dtype of ["f32", "f16"] as DType[]) {
        if (dtype === "f16" && !gpu.hasF16) continue;
        const [rx, rg, rb] = dtype === "f16"
          ? [roundF16(x), roundF16(gamma), roundF16(beta)]
          : [x, gamma, beta];
        const ref = layerNormRef(rx, ch, rg, rb, 1e-5);
        const tx = Tensor.from(gpu, x, c.shape, dtype);
        const tg = Tensor.from(gpu, gamma, [ch], dtype);
        const tb = Tensor.from(gpu, beta, [ch], dtype);
        const ty = layerNorm(tx, tg, tb, 1e-5);
        assert(ty.shape.join() === c.shape.join(), `shape [${ty.shape}]`);
        const got = await ty.read();
        for (const t of [tx, tg, tb, ty]) t.release();
        const err = relL2(got, ref);
        const tol = dtype === "f32" ? c.tolF32 ?? 1e-5 : 1e-2;
        assert(
          err < tol,
          `layernorm ${dtype} [${c.shape}]: rel L2 ${err} (max abs ${maxAbs(got, ref)})`,
        );
        line.push(`${dtype} ${err.toExponential(2)}`);
      }
      console.log(`  [${c.shape}]${c.mean ? ` mean ${c.mean}` : ""}: rel L2 ${line.join(", ")}`);
    }
  },
});

Deno.test({
  name: "layernorm: rejects γ of the wrong width",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await testGpu())!;
    const x = Tensor.from(gpu, new Float32Array(12), [3, 4], "f32");
    const g = Tensor.from(gpu, new Float32Array(3), [3], "f32");
    let msg = "";
    try {
      layerNorm(x, g, g, 1e-5);
    } catch (e) {
      msg = (e as Error).message;
    }
    assert(msg.includes("does not match last dim 4"), msg);
    x.release();
    g.release();
  },
});
