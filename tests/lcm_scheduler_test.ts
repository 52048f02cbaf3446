/**
 * LCM (scheduler/lcm.ts) against diffusers' `LCMScheduler` built as `from_config(pndm.config)`:
 * goldens written by scripts/lcm_goldens.py into tests/fixtures/lcm-scheduler.{json,safetensors}
 * (timesteps for 1–8 steps and three `original_inference_steps`; 4- and 8-step loops with the
 * injected noise from one seeded generator) — and one step of the paper's formulas by hand,
 * which needs no fixture.
 */

import { relL2 } from "../src/compare.ts";
import { UserError } from "../src/errors.ts";
import { TorchGenerator } from "../src/rng.ts";
import { SafeTensorsFile } from "../src/weights/safetensors.ts";
import { assert, assertEquals, assertThrows } from "../src/std/assert.ts";
import { existsSync } from "../src/std/fs.ts";
import { fromFileUrl } from "../src/std/path.ts";
import { alphaBars, betaSchedule } from "../scheduler/betas.ts";
import { predictX0 } from "../scheduler/ddim.ts";
import { boundaryScalings, consistencyDenoised } from "../scheduler/lcm.ts";
import { createScheduler, schedulerConfigFor, SD15_SCHEDULER_CONFIG } from "../scheduler/mod.ts";

/** This repository's own fixture (tests/fixtures/), not the shared folder. */
const FIXTURE = "tests/fixtures/lcm-scheduler";
const fixturePath = (ext: string) =>
  fromFileUrl(new URL(`./fixtures/lcm-scheduler.${ext}`, import.meta.url));

/** The goldens, read once; a missing file is one line that names it and how to make it. */
const goldens = (() => {
  let loaded: Promise<{ meta: Record<string, unknown>; file: SafeTensorsFile }> | null = null;
  return () =>
    loaded ??= (async () => {
      for (const ext of ["json", "safetensors"]) {
        if (!existsSync(fixturePath(ext))) {
          const e = new Error(
            `missing fixture ${FIXTURE}.${ext}: make it with \`python3 scripts/lcm_goldens.py ` +
              `--diffusers /tmp/diffusers-src/py --out tests/fixtures/\` (torch + diffusers source)`,
          );
          e.stack = e.message; // one line, no trace
          throw e;
        }
      }
      const meta = JSON.parse(await Deno.readTextFile(fixturePath("json")));
      return { meta, file: await SafeTensorsFile.open(fixturePath("safetensors")) };
    })();
})();

/** lcm.model_rule: the UNet's stand-in, eps = 0.9·model_input − t/10000. */
function modelOutput(xin: Float32Array, t: number): Float32Array {
  return xin.map((v) => 0.9 * v - t / 10000);
}

/** An LCM scheduler on SD 1.5's config whose noise comes from `gen`, counting the draws. */
function lcmWith(gen: TorchGenerator, draws: number[]) {
  return createScheduler("lcm", SD15_SCHEDULER_CONFIG, {
    randn: (n) => {
      draws.push(n);
      return gen.randn(n);
    },
  });
}

Deno.test("lcm config: from_config(SD 1.5 PNDM config) gives diffusers' config", async () => {
  const { meta } = await goldens();
  const expected = meta["lcm.config"] as Record<string, unknown>;
  const ours = schedulerConfigFor("lcm", SD15_SCHEDULER_CONFIG) as Record<string, unknown>;
  for (const [key, value] of Object.entries(ours)) {
    assert(key in expected, `${key} is not in diffusers' config`);
    assertEquals(value, expected[key], key);
  }
  for (const key of Object.keys(expected).filter((k) => !k.startsWith("_"))) {
    assert(key in ours, `diffusers' ${key} is missing`);
  }
  assertEquals(
    meta["lcm.init_noise_sigma"],
    createScheduler("lcm", SD15_SCHEDULER_CONFIG).initNoiseSigma,
  );
});

Deno.test("lcm timesteps: 1, 2, 4, 6, 8 steps from the 50-step schedule, and from 25 and 100", async () => {
  const { meta, file } = await goldens();
  const originals = [undefined, ...meta["lcm.original_inference_steps"] as number[]];
  for (const original of originals) {
    const config = original === undefined
      ? SD15_SCHEDULER_CONFIG
      : { ...SD15_SCHEDULER_CONFIG, original_inference_steps: original };
    const scheduler = createScheduler("lcm", config);
    for (const n of meta["lcm.step_counts"] as number[]) {
      const key = original === undefined ? `lcm.n${n}` : `lcm.orig${original}.n${n}`;
      scheduler.setTimesteps(n);
      assertEquals(scheduler.timesteps, Array.from(await file.readF64(`${key}.timesteps`)), key);
    }
  }
});

Deno.test("lcm loops: 4 and 8 steps match diffusers (model_input, denoised, prev_sample ≤ 1e-5), twice on one object", async () => {
  const { meta, file } = await goldens();
  const seed = meta["lcm.seed"] as number;
  const config = schedulerConfigFor("lcm", SD15_SCHEDULER_CONFIG);
  const alphaBar = alphaBars(betaSchedule(config));
  const report: string[] = [];
  for (const n of meta["lcm.loop_steps"] as number[]) {
    const key = `lcm.loop${n}`;
    let gen = new TorchGenerator(seed);
    const draws: number[] = [];
    const scheduler = createScheduler("lcm", SD15_SCHEDULER_CONFIG, {
      randn: (m) => {
        draws.push(m);
        return gen.randn(m);
      },
    });
    const finals: Float32Array[] = [];
    for (let run = 0; run < 2; run++) {
      gen = new TorchGenerator(seed);
      draws.length = 0;
      scheduler.setTimesteps(n);
      assertEquals(scheduler.timesteps, Array.from(await file.readF64(`${key}.timesteps`)));
      let x: Float32Array = gen.randn(256).map((v) => v * scheduler.initNoiseSigma);
      const x0Error = relL2(x, await file.readF32(`${key}.x0`));
      assert(x0Error < 1e-6, `${key}.x0 vs randn(seed): ${x0Error}`);
      let worstInput = 0, worstDenoised = 0, worstPrev = 0;
      for (const [k, t] of scheduler.timesteps.entries()) {
        const xin = scheduler.scaleModelInput(x, t);
        const eps = modelOutput(xin, t);
        // The step's denoised value, from the same building blocks, checked on its own.
        const { cSkip, cOut } = boundaryScalings(t, config.timestep_scaling);
        const denoised = consistencyDenoised(x, predictX0(x, eps, alphaBar[t]), cSkip, cOut);
        x = scheduler.step(eps, t, x);
        const at = (what: string) => file.readF32(`${key}.${k}.${what}`);
        worstInput = Math.max(worstInput, relL2(xin, await at("model_input")));
        worstDenoised = Math.max(worstDenoised, relL2(denoised, await at("denoised")));
        worstPrev = Math.max(worstPrev, relL2(x, await at("prev_sample")));
      }
      assert(!file.tensors.has(`${key}.${n}.prev_sample`), "loop too short");
      assertEquals(draws, new Array(n - 1).fill(256), "one draw a step, none at the last");
      report.push(
        `lcm ${n} steps, run ${run + 1}: model_input ${worstInput.toExponential(2)}, denoised ` +
          `${worstDenoised.toExponential(2)}, prev_sample ${worstPrev.toExponential(2)} (rel L2)`,
      );
      assert(worstInput < 1e-5, `${key}: model_input rel L2 ${worstInput}`);
      assert(worstDenoised < 1e-5, `${key}: denoised rel L2 ${worstDenoised}`);
      assert(worstPrev < 1e-5, `${key}: prev_sample rel L2 ${worstPrev}`);
      finals.push(x);
    }
    assertEquals(Array.from(finals[1]), Array.from(finals[0]), `${key}: second run differs`);
  }
  console.log(report.join("\n"));
});

Deno.test("lcm by hand: timesteps, c_skip/c_out, denoised and the injected noise of one step", () => {
  const gen = new TorchGenerator(11);
  const draws: number[] = [];
  const lcm = lcmWith(gen, draws);
  lcm.setTimesteps(4);
  // k = ⌊1000/50⌋ = 20: schedule 999, 979, …, 19; indices ⌊i·50/4⌋ = 0, 12, 25, 37.
  assertEquals(lcm.timesteps, [999, 759, 499, 259]);
  assertEquals(lcm.initNoiseSigma, 1);

  // One step from t = 999 to 759, written out from the formulas (float64).
  const ab = alphaBars(betaSchedule(schedulerConfigFor("lcm", SD15_SCHEDULER_CONFIG)));
  const x = new TorchGenerator(5).randn(64);
  const eps = new TorchGenerator(6).randn(64);
  const zStream = new TorchGenerator(11); // the scheduler's first draw
  const expectedZ = zStream.randn(64);
  const st = 999 * 10; // timestep_scaling 10
  const cSkip = 0.25 / (st * st + 0.25), cOut = st / Math.sqrt(st * st + 0.25);
  const expected = Array.from(x, (xv, i) => {
    const x0 = (xv - Math.sqrt(1 - ab[999]) * eps[i]) / Math.sqrt(ab[999]);
    const denoised = cOut * x0 + cSkip * xv;
    return Math.sqrt(ab[759]) * denoised + Math.sqrt(1 - ab[759]) * expectedZ[i];
  });
  const prev = lcm.step(eps, 999, x);
  assert(relL2(prev, expected) < 1e-6, `step 999 → 759: ${relL2(prev, expected)}`);
  assertEquals(draws, [64]);

  // The boundary condition: f(x, 0) = x (c_skip = 1, c_out = 0); c_out → 1 at large t.
  assertEquals(boundaryScalings(0, 10), { cSkip: 1, cOut: 0 });
  assert(Math.abs(boundaryScalings(999, 10).cOut - 1) < 1e-8);

  // The last step returns denoised itself and draws nothing.
  lcm.step(eps, 759, prev);
  lcm.step(eps, 499, prev);
  const last = lcm.step(eps, 259, prev);
  const lastScalings = boundaryScalings(259, 10);
  const lastDenoised = consistencyDenoised(
    prev,
    predictX0(prev, eps, ab[259]),
    lastScalings.cSkip,
    lastScalings.cOut,
  );
  assertEquals(Array.from(last), Array.from(lastDenoised));
  assertEquals(draws, [64, 64, 64]);
  assertThrows(() => lcm.step(eps, 259, prev), "all 4 steps are done");
});

Deno.test("lcm errors: more steps than original_inference_steps is a usage error; misuse", () => {
  const lcm = createScheduler("lcm", SD15_SCHEDULER_CONFIG);
  const x = new Float32Array(4);
  assertThrows(() => lcm.step(x, 999, x), "call setTimesteps");
  lcm.setTimesteps(50); // the most there can be with the default 50
  const tooMany = assertThrows(() => lcm.setTimesteps(51), "takes at most 50 steps");
  assert(tooMany instanceof UserError && tooMany.kind === "usage", "not a usage error");
  for (const n of [0, -1, 2.5, 1001, NaN]) {
    assertThrows(
      () => lcm.setTimesteps(n),
      "the number of steps must be an integer from 1 to 1000",
    );
  }
  lcm.setTimesteps(4);
  assertThrows(() => lcm.step(x, 500, x), "not in the schedule");
  assertThrows(() => lcm.step(x, 999, new Float32Array(5)), "different sizes");
  assertThrows(
    () => createScheduler("lcm", { ...SD15_SCHEDULER_CONFIG, original_inference_steps: 0 }),
    "original_inference_steps must be an integer from 1 to 1000",
  );
  assertThrows(
    () => createScheduler("lcm", { ...SD15_SCHEDULER_CONFIG, prediction_type: "v_prediction" }),
    'prediction_type "v_prediction" is not supported',
  );
});
