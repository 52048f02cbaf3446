/**
 * The GPU-side scheduler loop (coefficients over stored tensors, src/latents.ts) against the
 * plain CPU loop on the values, for every scheduler — Euler a's ancestral noise included.
 */

import { assert } from "../src/std/assert.ts";
import { Tensor } from "../src/gpu/tensor.ts";
import { LatentBasis } from "../src/latents.ts";
import { TorchGenerator } from "../src/rng.ts";
import { createScheduler, SCHEDULER_NAMES, SD15_SCHEDULER_CONFIG } from "../scheduler/mod.ts";
import { hasGpu, randomData, relL2, testGpu } from "./gpu.ts";

Deno.test({
  name: "latents: scheduler loop on coefficient vectors equals the loop on values (all schedulers)",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await testGpu())!;
    const n = 4 * 8 * 8, steps = 8;
    for (const name of SCHEDULER_NAMES) {
      // CPU reference: the scheduler on values.
      const g1 = new TorchGenerator(7);
      const cpu = createScheduler(name, SD15_SCHEDULER_CONFIG, { randn: (m) => g1.randn(m) });
      cpu.setTimesteps(steps);
      const eps = cpu.timesteps.map((_, k) => randomData(n, 100 + k));
      let x: Float32Array = g1.randn(n).map((v) => v * cpu.initNoiseSigma);
      const inputs: Float32Array[] = [];
      cpu.timesteps.forEach((t, k) => {
        inputs.push(cpu.scaleModelInput(x, t));
        x = cpu.step(eps[k], t, x);
      });

      // The same on coefficient vectors, materialized on the GPU.
      const g2 = new TorchGenerator(7);
      let basis: LatentBasis | null = null;
      const sym = createScheduler(name, SD15_SCHEDULER_CONFIG, {
        randn: () => basis!.upload(g2.randn(n)),
      });
      sym.setTimesteps(steps);
      const calls = sym.timesteps.length;
      basis = new LatentBasis(gpu, n, 2 + 2 * calls, 2 + 3 * calls);
      let c = basis.upload(g2.randn(n)).map((v) => v * sym.initNoiseSigma);
      let worstInput = 0;
      for (const [k, t] of sym.timesteps.entries()) {
        const xin = basis.combine(sym.scaleModelInput(c, t), [2, n], "f32");
        const both = await xin.read();
        worstInput = Math.max(worstInput, relL2(both.subarray(0, n), inputs[k]));
        assert(relL2(both.subarray(n), inputs[k]) === relL2(both.subarray(0, n), inputs[k]));
        xin.release();
        const e = Tensor.from(gpu, eps[k], [n], "f32");
        c = sym.step(basis.store(e), t, c);
        e.release();
      }
      const final = await basis.combine(c, [n], "f32").read();
      basis.release();
      const err = relL2(final, x);
      assert(worstInput < 1e-5 && err < 1e-5, `${name}: inputs ${worstInput}, final ${err}`);
    }
  },
});
