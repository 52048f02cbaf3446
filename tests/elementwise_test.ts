import { assert } from "../src/std/assert.ts";
import { Tensor } from "../src/gpu/tensor.ts";
import { add, addChannelBias, cast, cfgCombine, mul, unary } from "../src/ops/elementwise.ts";
import { hasGpu, randomData, relL2, testGpu } from "./gpu.ts";

// CPU references.
const erf = (x: number) => {
  // High-precision series/continued fraction via Math functions (double precision).
  const t = 1 / (1 + 0.5 * Math.abs(x));
  const r = t * Math.exp(
    -x * x - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
                  t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
                                  t * (-0.82215223 + t * 0.17087277)))))))),
  );
  return x >= 0 ? 1 - r : r - 1;
};
const refs: Record<string, (x: number) => number> = {
  silu: (x) => x / (1 + Math.exp(-x)),
  gelu: (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)),
  quick_gelu: (x) => x / (1 + Math.exp(-1.702 * x)),
};

Deno.test({
  name: "elementwise: add/mul broadcast, activations, cast — f32 and f16 vs CPU",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await testGpu())!;
    for (const dtype of ["f32", "f16"] as const) {
      if (dtype === "f16" && !gpu.hasF16) continue;
      const tol = dtype === "f32" ? 1e-6 : 2e-3;
      for (const n of [7, 2 * 320 * 64 * 64]) {
        const a = randomData(n, 3, 4), bn = n % 320 === 0 ? 320 * 64 * 64 : n;
        const b = randomData(bn, 5);
        const ta = Tensor.from(gpu, a, [n], dtype), tb = Tensor.from(gpu, b, [bn], dtype);
        const ra = dtype === "f16" ? Float32Array.from(new Float16Array(a)) : a;
        const rb = dtype === "f16" ? Float32Array.from(new Float16Array(b)) : b;
        const sum = await add(ta, tb).read();
        assert(relL2(sum, ra.map((x, i) => x + rb[i % bn])) < tol, `add ${dtype} ${n}`);
        const prod = await mul(ta, tb).read();
        assert(relL2(prod, ra.map((x, i) => x * rb[i % bn])) < tol, `mul ${dtype} ${n}`);
        for (const [op, f] of Object.entries(refs)) {
          const got = await unary(op as "silu", ta).read();
          const e = relL2(got, ra.map(f));
          assert(e < tol, `${op} ${dtype} n=${n}: rel L2 ${e}`);
        }
        const sc = await unary("scale", ta, 0.5).read();
        assert(relL2(sc, ra.map((x) => x * 0.5)) < tol);
        const other = dtype === "f32" && gpu.hasF16 ? "f16" : "f32";
        const c = await cast(ta, other).read();
        assert(relL2(c, ra) < (other === "f16" ? 1e-3 : 1e-7), `cast ${dtype}->${other}`);
      }
    }
  },
});

Deno.test({
  name: "elementwise: per-channel bias over H×W and classifier-free guidance vs CPU",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await testGpu())!;
    const [b, c, hw] = [2, 5, 9];
    const x = randomData(b * c * hw, 7), t = randomData(b * c, 8);
    const y = await addChannelBias(
      Tensor.from(gpu, x, [b, c, 3, 3], "f32"),
      Tensor.from(gpu, t, [b, c], "f32"),
    ).read();
    assert(relL2(y, x.map((v, i) => v + t[Math.floor(i / hw)])) < 1e-7, "addChannelBias");
    const eps = randomData(2 * 4 * 6, 9);
    const g = await cfgCombine(Tensor.from(gpu, eps, [2, 4, 6], "f32"), 7.5).read();
    const n = 24;
    assert(g.length === n);
    assert(
      relL2(g, Array.from({ length: n }, (_, i) => eps[i] + 7.5 * (eps[i + n] - eps[i]))) < 1e-6,
      "cfg",
    );
  },
});
