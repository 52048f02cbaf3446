/**
 * Schedulers against diffusers (fixtures schedulers.{safetensors,json}): configs as
 * `X.from_config(pndm.config)` builds them, timesteps/σ/init_noise_sigma for 1, 4, 6, 20, 50
 * steps, and the 20-step loop of `sched.loop_rule` for every deterministic scheduler.
 */

import { relL2 } from "../src/compare.ts";
import { TorchGenerator } from "../src/rng.ts";
import { SafeTensorsFile } from "../src/weights/safetensors.ts";
import { assert, assertEquals, assertThrows } from "../src/std/assert.ts";
import {
  createScheduler,
  DIFFUSERS_CLASSES,
  DISPLAY_NAMES,
  IDENTIFIERS,
  loadSchedulerConfig,
  parseSchedulerConfig,
  type Scheduler,
  SCHEDULER_NAMES,
  schedulerConfigFor,
  type SchedulerName,
  SD15_SCHEDULER_CONFIG,
} from "../scheduler/mod.ts";
import { lmsCoefficients } from "../scheduler/lms.ts";
import { ancestralSigmas } from "../scheduler/euler_ancestral.ts";
import { fixture } from "./fixtures.ts";

const DETERMINISTIC: SchedulerName[] = [
  "ddim",
  "pndm",
  "euler",
  "lms",
  "dpm++2m",
  "dpm++2m-karras",
];
const STEP_COUNTS = [1, 4, 6, 20, 50];
/**
 * The schedulers the shared fixture covers; LCM's goldens (made by scripts/lcm_goldens.py) and its
 * limit of `original_inference_steps` steps are tested in tests/lcm_scheduler_test.ts.
 */
const IN_SHARED_FIXTURE = SCHEDULER_NAMES.filter((name) => name !== "lcm");

const meta = JSON.parse(await Deno.readTextFile(fixture("schedulers.json"))) as Record<
  string,
  unknown
>;
const file = await SafeTensorsFile.open(fixture("schedulers.safetensors"));
const f64 = async (key: string) => Array.from(await file.readF64(key));

/** Largest elementwise relative error (absolute where the reference is 0). */
function maxRel(a: readonly number[], b: readonly number[]): number {
  assertEquals(a.length, b.length, "lengths differ");
  return Math.max(0, ...a.map((v, i) => Math.abs(v - b[i]) / (b[i] === 0 ? 1 : Math.abs(b[i]))));
}

Deno.test("scheduler table: A1111 sampler names, diffusers classes, fixture keys, one class a row", () => {
  // The names A1111's "PNG info" reads (sd_samplers_kdiffusion.py, sd_samplers_timesteps.py,
  // sd_samplers_lcm.py); PNDM with skip_prk_steps is its PLMS.
  assertEquals(DISPLAY_NAMES, {
    "ddim": "DDIM",
    "pndm": "PLMS",
    "euler": "Euler",
    "euler-a": "Euler a",
    "lms": "LMS",
    "dpm++2m": "DPM++ 2M",
    "dpm++2m-karras": "DPM++ 2M Karras",
    "lcm": "LCM",
  });
  assertEquals(DIFFUSERS_CLASSES["lcm"], "LCMScheduler");
  for (const name of IN_SHARED_FIXTURE) {
    assert(file.tensors.has(`sched.${IDENTIFIERS[name]}.n1.timesteps`), `${name}: fixture key`);
  }
  for (const name of SCHEDULER_NAMES) {
    assertEquals(createScheduler(name, SD15_SCHEDULER_CONFIG).name, name);
  }
});

Deno.test("scheduler configs: from_config(SD 1.5 PNDM config) gives diffusers' configs", () => {
  for (const name of SCHEDULER_NAMES) {
    const expected = meta[`sched.${IDENTIFIERS[name]}.config`] as
      | Record<string, unknown>
      | undefined;
    if (!expected) continue; // the fixtures hold no config for Euler a
    const ours = schedulerConfigFor(name, SD15_SCHEDULER_CONFIG) as Record<string, unknown>;
    for (const [key, value] of Object.entries(ours)) {
      assert(key in expected, `${name}: ${key} is not in diffusers' config`);
      const want = expected[key] === "-Infinity" ? -Infinity : expected[key];
      assertEquals(value, want, `${name}: ${key}`);
    }
  }
});

Deno.test("scheduler schedules: timesteps, sigmas and init_noise_sigma for 1, 4, 6, 20, 50 steps", async () => {
  const report: string[] = [];
  for (const name of IN_SHARED_FIXTURE) {
    const key = IDENTIFIERS[name];
    const scheduler = createScheduler(name, SD15_SCHEDULER_CONFIG);
    let worstSigma = 0, worstInit = 0;
    for (const n of STEP_COUNTS) {
      scheduler.setTimesteps(n);
      assertEquals(scheduler.timesteps, await f64(`sched.${key}.n${n}.timesteps`), `${name} n${n}`);
      const sigmasKey = `sched.${key}.n${n}.sigmas`;
      if (file.tensors.has(sigmasKey)) {
        assert(scheduler.sigmas, `${name} has no sigmas`);
        worstSigma = Math.max(worstSigma, maxRel(scheduler.sigmas!, await f64(sigmasKey)));
      } else {
        assertEquals(scheduler.sigmas, undefined, `${name}: unexpected sigmas`);
      }
      const init = meta[`sched.${key}.n${n}.init_noise_sigma`] as number;
      worstInit = Math.max(worstInit, Math.abs(scheduler.initNoiseSigma - init) / init);
    }
    report.push(
      `${name}: σ max rel ${worstSigma.toExponential(2)}, init σ ${worstInit.toExponential(2)}`,
    );
    assert(worstSigma <= 1e-6, `${name}: sigmas off by ${worstSigma}`);
    assert(worstInit <= 1e-6, `${name}: init_noise_sigma off by ${worstInit}`);
  }
  console.log(report.join("\n"));
});

/** Runs `sched.loop_rule` for 20 steps, comparing every model input and prev_sample. */
async function runLoop(name: SchedulerName, scheduler: Scheduler): Promise<{
  worstInput: number;
  worstPrev: number;
  final: Float32Array;
}> {
  const key = IDENTIFIERS[name];
  const seed0 = meta["sched.seed0"] as number;
  scheduler.setTimesteps(20);
  let x = await file.readF32(`sched.${key}.loop.x0`);
  let worstInput = 0, worstPrev = 0;
  const timesteps = scheduler.timesteps;
  for (let k = 0; k < timesteps.length; k++) {
    const t = timesteps[k];
    const xin = scheduler.scaleModelInput(x, t);
    worstInput = Math.max(
      worstInput,
      relL2(xin, await file.readF32(`sched.${key}.loop.${k}.model_input`)),
    );
    const noise = new TorchGenerator(seed0 + 1 + k).randn(xin.length);
    const eps = xin.map((v, i) => 0.3 * v + noise[i]);
    x = scheduler.step(eps, t, x);
    worstPrev = Math.max(
      worstPrev,
      relL2(x, await file.readF32(`sched.${key}.loop.${k}.prev_sample`)),
    );
  }
  assert(!file.tensors.has(`sched.${key}.loop.${timesteps.length}.prev_sample`), "loop too short");
  return { worstInput, worstPrev, final: x };
}

Deno.test("scheduler loops: 20 steps of sched.loop_rule match diffusers, twice on one object", async () => {
  const seed0 = meta["sched.seed0"] as number;
  const report: string[] = [];
  for (const name of DETERMINISTIC) {
    const key = IDENTIFIERS[name];
    const scheduler = createScheduler(name, SD15_SCHEDULER_CONFIG);
    scheduler.setTimesteps(20);
    // loop.x0 is randn((1,4,8,8), seed0) · init_noise_sigma.
    const x0 = await file.readF32(`sched.${key}.loop.x0`);
    const sigma0 = scheduler.initNoiseSigma;
    const drawn = new TorchGenerator(seed0).randn(x0.length).map((v) => v * sigma0);
    const x0Error = relL2(drawn, x0);
    assert(x0Error < 1e-6, `${name}: loop.x0 vs randn·init_noise_sigma: ${x0Error}`);

    const first = await runLoop(name, scheduler);
    const second = await runLoop(name, scheduler); // state must reset on setTimesteps
    assertEquals(Array.from(second.final), Array.from(first.final), `${name}: second run differs`);
    report.push(
      `${name}: model_input rel L2 ${first.worstInput.toExponential(2)}, ` +
        `prev_sample rel L2 ${first.worstPrev.toExponential(2)}`,
    );
    assert(first.worstInput < 1e-5, `${name}: model_input rel L2 ${first.worstInput}`);
    assert(first.worstPrev < 1e-5, `${name}: prev_sample rel L2 ${first.worstPrev}`);
  }
  console.log(report.join("\n"));
});

Deno.test("scheduler euler-a: noise from randn at every step; last step lands on x̂₀", () => {
  const calls: number[] = [];
  const scheduler = createScheduler("euler-a", SD15_SCHEDULER_CONFIG, {
    randn: (n) => {
      calls.push(n);
      return new TorchGenerator(1000 + calls.length).randn(n);
    },
    rng: () => {
      throw new Error("rng must not be used when randn is given");
    },
  });
  scheduler.setTimesteps(20);
  const sigmas = scheduler.sigmas!;
  for (let i = 0; i < 20; i++) {
    const { up, down } = ancestralSigmas(sigmas[i], sigmas[i + 1]);
    assert(Math.abs(up * up + down * down - sigmas[i + 1] ** 2) <= 1e-9 * (1 + sigmas[i] ** 2));
  }
  let x = new TorchGenerator(7).randn(256).map((v) => v * scheduler.initNoiseSigma);
  const timesteps = scheduler.timesteps;
  let last: { x: Float32Array; eps: Float32Array } | null = null;
  for (const t of timesteps) {
    const eps = scheduler.scaleModelInput(x, t).map((v) => 0.3 * v);
    last = { x, eps };
    x = scheduler.step(eps, t, x);
  }
  assertEquals(calls, new Array(20).fill(256));
  // σ_20 = 0: σ_up = σ_down = 0, so x = x̂₀ = x − σ_19·ε whatever the noise.
  const sigmaLast = sigmas[19];
  const x0 = last!.x.map((v, i) => v - sigmaLast * last!.eps[i]);
  assert(relL2(x, x0) < 1e-6, `last step: ${relL2(x, x0)}`);
  // Same seed stream, same result; a different stream, a different image.
  const again = (offset: number) => {
    let k = 0;
    const s = createScheduler("euler-a", SD15_SCHEDULER_CONFIG, {
      randn: (n) => new TorchGenerator(offset + ++k).randn(n),
    });
    s.setTimesteps(20);
    let y = new TorchGenerator(7).randn(256).map((v) => v * s.initNoiseSigma);
    for (const t of s.timesteps) y = s.step(s.scaleModelInput(y, t).map((v) => 0.3 * v), t, y);
    return y;
  };
  assertEquals(Array.from(again(1000)), Array.from(x));
  assert(relL2(again(2000), x) > 1e-2, "noise had no effect");
});

Deno.test("scheduler ddim: η = 0 draws no noise; η = 1 adds σ_t·z from randn", () => {
  const run = (eta: number) => {
    const calls: number[] = [];
    const ddim = createScheduler("ddim", SD15_SCHEDULER_CONFIG, {
      eta,
      randn: (n) => {
        calls.push(n);
        return new TorchGenerator(500 + calls.length).randn(n);
      },
    });
    ddim.setTimesteps(10);
    let x = new TorchGenerator(9).randn(64);
    for (const t of ddim.timesteps) x = ddim.step(x.map((v) => 0.5 * v), t, x);
    return { x, calls };
  };
  const deterministic = run(0), stochastic = run(1);
  assertEquals(deterministic.calls, []);
  assertEquals(stochastic.calls, new Array(10).fill(64));
  assert(relL2(stochastic.x, deterministic.x) > 1e-2, "η = 1 changed nothing");
  assertEquals(Array.from(run(1).x), Array.from(stochastic.x));
});

Deno.test("scheduler addNoise: VP and VE forward processes agree (x_VE/√(σ²+1) = x_VP)", () => {
  const x0 = new TorchGenerator(3).randn(64);
  const noise = new TorchGenerator(4).randn(64);
  const ddim = createScheduler("ddim", SD15_SCHEDULER_CONFIG);
  const euler = createScheduler("euler", SD15_SCHEDULER_CONFIG);
  const dpm = createScheduler("dpm++2m", SD15_SCHEDULER_CONFIG);
  euler.setTimesteps(4); // t = 999, 666, 333, 0: integer training timesteps
  dpm.setTimesteps(4);
  for (const t of euler.timesteps) {
    const vp = ddim.addNoise(x0, noise, t);
    const ve = euler.addNoise(x0, noise, t);
    const sigma = euler.sigmas![euler.timesteps.indexOf(t)];
    const err = relL2(ve.map((v) => v / Math.sqrt(sigma * sigma + 1)), vp);
    assert(err < 1e-6, `t=${t}: ${err}`);
  }
  const err = relL2(dpm.addNoise(x0, noise, 999), ddim.addNoise(x0, noise, 999));
  assert(err < 1e-6, `dpm t=999: ${err}`);
});

Deno.test("scheduler lms: coefficients integrate the Lagrange basis (Σ c_j = σ_{i+1} − σ_i)", () => {
  const lms = createScheduler("lms", SD15_SCHEDULER_CONFIG);
  lms.setTimesteps(20);
  const sigmas = lms.sigmas!;
  for (let i = 0; i < 20; i++) {
    const order = Math.min(i + 1, 4);
    const c = lmsCoefficients(sigmas, i, order);
    const sum = c.reduce((a, b) => a + b, 0);
    const want = sigmas[i + 1] - sigmas[i];
    assert(Math.abs(sum - want) <= 1e-12 * Math.abs(sigmas[i]), `step ${i}: ${sum} vs ${want}`);
  }
  // First order is plain Euler: c_0 = Δσ.
  assertEquals(lmsCoefficients(sigmas, 0, 1), [sigmas[1] - sigmas[0]]);
});

Deno.test("scheduler errors: bad step counts, unknown names, unsupported options, misuse", () => {
  assertThrows(
    () => createScheduler("heun" as SchedulerName, SD15_SCHEDULER_CONFIG),
    'unknown scheduler "heun"',
  );
  for (const name of IN_SHARED_FIXTURE) {
    const s = createScheduler(name, SD15_SCHEDULER_CONFIG);
    const x = new Float32Array(4);
    assertThrows(() => s.step(x, 1, x), "call setTimesteps");
    for (const n of [0, -1, 2.5, 1001, NaN]) {
      assertThrows(
        () => s.setTimesteps(n),
        "the number of steps must be an integer from 1 to 1000",
      );
    }
    s.setTimesteps(1000); // the most there can be
    s.setTimesteps(4);
    assertThrows(() => s.step(x, s.timesteps[0], new Float32Array(5)), "different sizes");
  }
  assertThrows(
    () => createScheduler("euler", { ...SD15_SCHEDULER_CONFIG, prediction_type: "v_prediction" }),
    'prediction_type "v_prediction" is not supported',
  );
  assertThrows(
    () => createScheduler("pndm", { ...SD15_SCHEDULER_CONFIG, skip_prk_steps: false }),
    "skip_prk_steps false is not supported",
  );
  assertThrows(
    () => createScheduler("ddim", SD15_SCHEDULER_CONFIG, { eta: -1 }),
    "eta must be a number ≥ 0",
  );
  const euler = createScheduler("euler", SD15_SCHEDULER_CONFIG);
  euler.setTimesteps(4);
  assertThrows(
    () => euler.step(new Float32Array(1), 500, new Float32Array(1)),
    "not in the schedule",
  );
  const ddim = createScheduler("ddim", SD15_SCHEDULER_CONFIG);
  ddim.setTimesteps(4);
  assertThrows(() => ddim.step(new Float32Array(1), 1000, new Float32Array(1)), "timestep 1000");
  const one = new Float32Array(1);
  euler.setTimesteps(1);
  euler.step(one, euler.timesteps[0], one);
  assertThrows(() => euler.step(one, euler.timesteps[0], one), "all 1 steps are done");
});

Deno.test("scheduler config files: tiny-sd's loads; bare -Infinity parses; bad types are errors", async () => {
  const tiny = await loadSchedulerConfig(fixture("tiny-sd"));
  assertEquals(tiny._class_name, "PNDMScheduler");
  assertEquals(tiny.steps_offset, 1);
  // The saved file sets timestep_spacing "leading": diffusers, loading the folder, passes it on
  // (the features goldens' Euler runs "leading"); the config tiny-sd-golden was made with lists it
  // in _use_default_values (made in memory from SD 1.5's file), so there Euler runs "linspace".
  assertEquals(schedulerConfigFor("euler", tiny).timestep_spacing, "leading");
  const gold = JSON.parse(await Deno.readTextFile(fixture("tiny-sd-golden.json")));
  assertEquals(
    schedulerConfigFor("euler", gold.configs.scheduler).timestep_spacing,
    "linspace",
  );
  // An explicit, empty _use_default_values list means the file set it: Euler takes "leading".
  const explicit = { ...tiny, _use_default_values: [] } as typeof tiny;
  assertEquals(schedulerConfigFor("euler", explicit).timestep_spacing, "leading");
  const euler = createScheduler("euler", explicit);
  euler.setTimesteps(20);
  assertEquals(euler.timesteps[0], 951);
  assert(euler.initNoiseSigma > euler.sigmas![0], "leading spacing: √(σ_max²+1)");

  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/scheduler_config.json`;
    await Deno.writeTextFile(path, '{"solver_order": 2, "lambda_min_clipped": -Infinity}\n');
    assertEquals((await loadSchedulerConfig(path)).lambda_min_clipped, -Infinity);
    await Deno.writeTextFile(path, '{"num_train_timesteps": "1000"}');
    await loadSchedulerConfig(path).then(
      () => assert(false, "accepted a string num_train_timesteps"),
      (e: Error) => assert(e.message.includes('"num_train_timesteps" must be a number'), e.message),
    );
    await loadSchedulerConfig(`${dir}/missing`).then(
      () => assert(false, "loaded a missing file"),
      (e: Error) => assert(e.message.includes("cannot read scheduler config"), e.message),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  assertThrows(() => parseSchedulerConfig([1, 2]), "expected a JSON object");
});
