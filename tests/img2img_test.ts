/**
 * Image-to-image and inpainting latent math (src/img2img.ts) and, through the pipeline in f32, the
 * intermediates of every img2img/inpaint case of the features fixtures: posterior mean/log-variance,
 * the posterior's ε, image latents, noise, latents entering the loop, mask and masked-image
 * latents, timesteps, and the latents after each step (relative L2 < 1e-4).
 */

import { assert, assertEquals } from "../src/std/assert.ts";
import { getTimesteps, sampleLatents } from "../src/img2img.ts";
import { binarizeMask, readImage, toModelInput } from "../src/image.ts";
import { StableDiffusion } from "../src/pipeline.ts";
import { SafeTensorsFile } from "../src/weights/safetensors.ts";
import { createScheduler, SD15_SCHEDULER_CONFIG } from "../scheduler/mod.ts";
import { schedulerFromIdentifier } from "../scheduler/mod.ts";
import { fixture } from "./fixtures.ts";
import { imageCases } from "./features.ts";
import { hasGpu, relL2, testGpu } from "./gpu.ts";

Deno.test("getTimesteps: diffusers' get_timesteps (t_start = N − min(⌊N·strength⌋, N))", () => {
  const ts = [901, 801, 701, 601, 501, 401, 301, 201, 101, 1];
  assertEquals(getTimesteps(ts, 10, 0.6), { timesteps: ts.slice(4), tStart: 4 });
  assertEquals(getTimesteps(ts, 10, 1), { timesteps: ts, tStart: 0 });
  assertEquals(getTimesteps(ts, 10, 0.05).timesteps, []);
  // PNDM: 9 timesteps for 8 steps; strength 0.85 keeps ⌊6.8⌋ = 6 steps from index 2.
  const pndm = createScheduler("pndm", { ...SD15_SCHEDULER_CONFIG });
  pndm.setTimesteps(8);
  assertEquals(getTimesteps(pndm.timesteps, 8, 0.85).timesteps, pndm.timesteps.slice(2));
});

Deno.test("sampleLatents: scaling_factor · (mean + exp(logvar/2) · ε)", () => {
  const got = sampleLatents(
    new Float32Array([1, -2]),
    new Float32Array([0, Math.log(4)]),
    new Float32Array([0.5, 1]),
    0.5,
  );
  assert(Math.abs(got[0] - 0.75) < 1e-7 && Math.abs(got[1] - 0) < 1e-6, `${got}`);
});

Deno.test({
  name: "img2img/inpaint: every features case's intermediates through the pipeline (f32)",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await testGpu())!;
    const g = await SafeTensorsFile.open(fixture("features/tiny-sd-features.safetensors"));
    const errors: string[] = [];
    const worst: Record<string, number> = {};
    try {
      for (const c of await imageCases()) {
        const dir = c.model === "tiny-sd" ? "tiny-sd" : `features/${c.model}`;
        const sd = await StableDiffusion.load(gpu, { kind: "dir", dir: fixture(dir) }, {
          precision: "f32",
        });
        const init = toModelInput(await readImage(fixture(`features/${c.init_image}`), "init"));
        const mask = c.mask
          ? binarizeMask(await readImage(fixture(`features/${c.mask}`), "mask"))
          : undefined;
        const seen = new Map<string, Float32Array>();
        const steps: Float32Array[] = [];
        const out = await sd.generate({
          prompt: c.prompt,
          negative: c.negative_prompt,
          seed: c.seed,
          steps: c.steps,
          guidance: c.guidance_scale,
          width: c.width,
          height: c.height,
          scheduler: schedulerFromIdentifier(c.scheduler),
          init: { image: init, mask, strength: c.strength },
        }, {
          onInit: (name, v) => seen.set(name, v.slice()),
          onLatents: (k, v) => k > 0 && steps.push(v.slice()),
        });
        const ts = [...await g.readF64(`${c.key}.timesteps`)];
        if (JSON.stringify(out.timesteps) !== JSON.stringify(ts)) {
          errors.push(`${c.key}.timesteps: ${out.timesteps} instead of ${ts}`);
        }
        for (const [name, got] of seen) {
          // inpaint9's posterior keys are the init image's (its pipeline encodes only the masked one).
          if (!g.tensors.has(`${c.key}.${name}`) || name.startsWith("masked_image_posterior")) {
            continue;
          }
          if (c.unet_in_channels === 9 && name.startsWith("posterior")) continue;
          const e = relL2(got, await g.readF32(`${c.key}.${name}`));
          worst[`${c.key}.${name}`] = e;
          if (!(e < 1e-4)) errors.push(`${c.key}.${name}: rel L2 ${e.toExponential(2)}`);
        }
        for (const k of ["noise", "latents_start"]) assert(seen.has(k), `${c.key}: no ${k}`);
        if (c.kind === "img2img") assert(seen.has("posterior_mean"), `${c.key}: no posterior`);
        const want = await g.readF32(`${c.key}.latents_steps`);
        const n = want.length / steps.length;
        assertEquals(steps.length * n, want.length, `${c.key}: step count`);
        steps.forEach((s, i) => {
          const e = relL2(s, want.subarray(i * n, (i + 1) * n));
          worst[`${c.key}.latents_steps`] = Math.max(worst[`${c.key}.latents_steps`] ?? 0, e);
          if (!(e < 1e-4)) {
            errors.push(`${c.key}.latents_steps[${i}]: rel L2 ${e.toExponential(2)}`);
          }
        });
        sd.unet.store.release();
        sd.text.store.release();
        sd.vae.store.release();
      }
    } finally {
      g.close();
    }
    console.log(
      Object.entries(worst).map(([k, e]) => `${k} ${e.toExponential(1)}`).join("\n"),
    );
    assertEquals(errors, []);
  },
});
