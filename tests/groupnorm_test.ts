import { assert } from "../src/std/assert.ts";
import type { DType, Gpu } from "../src/gpu/device.ts";
import { Tensor } from "../src/gpu/tensor.ts";
import { groupNorm } from "../src/ops/groupnorm.ts";
import { setVariants, type Variants } from "../src/ops/variants.ts";
import { hasGpu, maxAbs, randomData, relL2, testGpu } from "./gpu.ts";

/** CPU reference, f64: torch.nn.GroupNorm on x [B, C, S] then optional SiLU. */
function groupNormRef(
  x: Float32Array,
  shape: number[],
  groups: number,
  gamma: Float32Array,
  beta: Float32Array,
  eps: number,
  silu: boolean,
): Float32Array {
  const [b, c] = shape;
  const s = x.length / (b * c);
  const cpg = c / groups;
  const n = cpg * s;
  const y = new Float32Array(x.length);
  for (let g = 0; g < b * groups; g++) {
    const base = g * n;
    let sum = 0;
    for (let i = 0; i < n; i++) sum += x[base + i];
    const mean = sum / n;
    let q = 0;
    for (let i = 0; i < n; i++) q += (x[base + i] - mean) ** 2;
    const rstd = 1 / Math.sqrt(q / n + eps);
    for (let i = 0; i < n; i++) {
      const ch = (g % groups) * cpg + Math.floor(i / s);
      let v = (x[base + i] - mean) * rstd * gamma[ch] + beta[ch];
      if (silu) v = v / (1 + Math.exp(-v));
      y[base + i] = v;
    }
  }
  return y;
}

const roundF16 = (a: Float32Array) => Float32Array.from(new Float16Array(a));

interface Case {
  shape: number[];
  groups: number;
  eps?: number;
  /** Values are `mean + U(-spread, spread)`. */
  mean?: number;
  spread?: number;
  /** Channel c gets an extra ±offset (sign alternating): groups whose chunks differ in mean. */
  offset?: number;
  /**
   * f32 tolerance (default 1e-5). At a mean of 300 the f32 input and mean carry only about
   * ulp(300)/2 / std ≈ 3e-5 of each deviation x − mean, so 1e-4 is the bound there; a variance
   * from E[x²] − E[x]² in f32 would be off by about 1e-2.
   */
  tolF32?: number;
}

/** Runs one case in both dtypes, returns the rel L2 errors (f32, f16) against the CPU. */
async function check(
  gpu: Gpu,
  variant: Variants["groupnorm"],
  c: Case,
  silu: boolean,
  seed: number,
): Promise<string> {
  setVariants(gpu, { groupnorm: variant });
  const n = c.shape.reduce((a, d) => a * d, 1);
  const ch = c.shape[1];
  const eps = c.eps ?? 1e-5;
  const plane = n / (c.shape[0] * ch);
  const x = randomData(n, seed, c.spread ?? 2).map((v, i) =>
    v + (c.mean ?? 0) + (c.offset ?? 0) * (Math.floor(i / plane) % 2 ? -1 : 1)
  );
  const gamma = randomData(ch, seed + 1, 1).map((v) => 1 + 0.5 * v);
  const beta = randomData(ch, seed + 2, 0.5);
  const out: string[] = [];
  for (const dtype of ["f32", "f16"] as DType[]) {
    if (dtype === "f16" && !gpu.hasF16) continue;
    const [rx, rg, rb] = dtype === "f16"
      ? [roundF16(x), roundF16(gamma), roundF16(beta)]
      : [x, gamma, beta];
    const ref = groupNormRef(rx, c.shape, c.groups, rg, rb, eps, silu);
    const tx = Tensor.from(gpu, x, c.shape, dtype);
    const tg = Tensor.from(gpu, gamma, [ch], dtype);
    const tb = Tensor.from(gpu, beta, [ch], dtype);
    const ty = groupNorm(tx, c.groups, tg, tb, eps, { silu });
    const got = await ty.read();
    for (const t of [tx, tg, tb, ty]) t.release();
    const err = relL2(got, ref);
    const tol = dtype === "f32" ? c.tolF32 ?? 1e-5 : 1e-2;
    const label = `groupnorm ${variant} ${dtype} [${c.shape}] G=${c.groups}` +
      `${c.mean ? ` mean ${c.mean}` : ""}${silu ? " +silu" : ""}`;
    assert(err < tol, `${label}: rel L2 ${err} (max abs ${maxAbs(got, ref)})`);
    out.push(`${dtype} ${err.toExponential(2)}`);
  }
  return out.join(", ");
}

const small: Case[] = [
  { shape: [1, 6, 5, 3], groups: 3 }, // scalar units, one chunk
  { shape: [2, 12, 7, 7], groups: 4, eps: 1e-6 },
  { shape: [1, 4, 33, 35], groups: 2 }, // scalar units, 3 chunks, the last one short
  { shape: [1, 8, 40, 40], groups: 2 }, // vec4 units, 2 chunks, the last one short
  { shape: [3, 10], groups: 5 }, // no spatial dims (S = 1)
  { shape: [1, 8, 40, 40], groups: 2, offset: 100 }, // chunk means ±100 apart, std ≈ 100
  { shape: [1, 6, 48, 48], groups: 2, offset: 1000, spread: 0.01 }, // cpg = 3: unequal halves
  // tiny-sd: 8 groups (UNet at 16×16 and 8×8, VAE-like eps and a split group)
  { shape: [2, 32, 16, 16], groups: 8 },
  { shape: [2, 96, 8, 8], groups: 8 },
  { shape: [1, 32, 64, 64], groups: 8, eps: 1e-6 },
];

Deno.test({
  name: "groupnorm: small and tiny-sd shapes, fused and naive, ±SiLU, f32/f16 vs CPU",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await testGpu())!;
    try {
      for (const variant of ["fused", "naive"] as const) {
        for (const [i, c] of small.entries()) {
          for (const silu of [false, true]) await check(gpu, variant, c, silu, 10 + i);
        }
      }
      const names = gpu.kernelNames();
      for (
        const k of [
          "groupnorm_fused_f32_v1",
          "groupnorm_fused_f32_v4_silu",
          "groupnorm_split_stats_f32_v1",
          "groupnorm_split_apply_f32_v4_silu",
          "groupnorm_naive_stats_f32_v4",
        ]
      ) assert(names.includes(k), `kernel ${k} was not exercised`);
    } finally {
      setVariants(gpu, { groupnorm: "fused" });
    }
  },
});

Deno.test({
  name: "groupnorm: SD [2,320,64,64] 32 groups, fused and naive, ±SiLU, f32/f16 vs CPU",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await testGpu())!;
    try {
      for (const variant of ["fused", "naive"] as const) {
        for (const silu of [false, true]) {
          const e = await check(gpu, variant, { shape: [2, 320, 64, 64], groups: 32 }, silu, 3);
          console.log(`  ${variant}${silu ? "+silu" : ""} [2,320,64,64]: rel L2 ${e}`);
        }
      }
    } finally {
      setVariants(gpu, { groupnorm: "fused" });
    }
  },
});

Deno.test({
  name: "groupnorm: large mean (300 ± 1) keeps the variance accurate, fused and naive",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await testGpu())!;
    try {
      for (const variant of ["fused", "naive"] as const) {
        for (
          const c of [
            { shape: [2, 320, 64, 64], groups: 32, mean: 300, spread: 1, tolF32: 1e-4 },
            { shape: [1, 64, 16, 16], groups: 32, mean: 300, spread: 1, tolF32: 1e-4 },
          ]
        ) {
          const e = await check(gpu, variant, c, true, 7);
          console.log(`  ${variant} [${c.shape}] 300±1 +silu: rel L2 ${e}`);
        }
      }
    } finally {
      setVariants(gpu, { groupnorm: "fused" });
    }
  },
});

Deno.test({
  name: "groupnorm: rejects groups that do not divide the channels and mismatched γ",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await testGpu())!;
    const x = Tensor.from(gpu, new Float32Array(2 * 6 * 4), [2, 6, 2, 2], "f32");
    const g6 = Tensor.from(gpu, new Float32Array(6), [6], "f32");
    const g5 = Tensor.from(gpu, new Float32Array(5), [5], "f32");
    let msg = "";
    try {
      groupNorm(x, 4, g6, g6, 1e-5);
    } catch (e) {
      msg = (e as Error).message;
    }
    assert(msg.includes("4 groups do not divide"), msg);
    msg = "";
    try {
      groupNorm(x, 3, g5, g6, 1e-5);
    } catch (e) {
      msg = (e as Error).message;
    }
    assert(msg.includes("gamma [5]"), msg);
    for (const t of [x, g6, g5]) t.release();
  },
});
