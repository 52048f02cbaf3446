/**
 * Compares this implementation with a golden file of the reference (diffusers, PyTorch f32):
 * text states, UNet at t=951 and t=1, VAE decode and encode, and every pipeline case — for the
 * full SD 1.5 architecture with SYNTH.md's weights (`--model synth`, golden
 * `sd15-synth-golden.*`) or a model folder (`--weights DIR`, e.g. tiny-sd).
 *
 * Usage:
 *   deno run -A scripts/check_golden.ts --golden ../shared/fixtures/sd15-synth-golden \
 *     --model synth --tokenizer ../shared/fixtures/clip-tokenizer --precision f32 [--cases]
 *
 * Prints one line per tensor (relative L2, max abs) and a JSON summary on stdout.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { absDiff, relL2 } from "../src/compare.ts";
import { Gpu } from "../src/gpu/device.ts";
import { Tensor } from "../src/gpu/tensor.ts";
import { cast } from "../src/ops/elementwise.ts";
import { StableDiffusion } from "../src/pipeline.ts";
import type { ModelSource } from "../src/weights/source.ts";
import { SafeTensorsFile } from "../src/weights/safetensors.ts";
import { schedulerFromIdentifier } from "../scheduler/mod.ts";

const { values: args } = parseArgs({
  options: {
    golden: { type: "string" },
    model: { type: "string", default: "synth" },
    weights: { type: "string" },
    tokenizer: { type: "string" },
    precision: { type: "string", default: "f32" },
    cases: { type: "boolean", default: true },
    "no-cases": { type: "boolean", default: false },
  },
});
if (!args.golden) throw new Error("--golden PREFIX is required (path without .json/.safetensors)");

const precision = args.precision as "f32" | "f16";
const g = await SafeTensorsFile.open(`${args.golden}.safetensors`);
const meta = JSON.parse(await Deno.readTextFile(`${args.golden}.json`));
const gpu = await Gpu.create();
console.error(`device: ${gpu.description}; precision ${precision}`);
const source: ModelSource = args.weights
  ? { kind: "dir", dir: args.weights }
  : { kind: "synth", tokenizerDir: args.tokenizer ?? "../shared/fixtures/clip-tokenizer" };
const t0 = performance.now();
const sd = await StableDiffusion.load(gpu, source, { precision, vaeEncoder: true });
console.error(`loaded in ${(performance.now() - t0).toFixed(0)} ms`);

const results: Record<string, Record<string, number>> = {};
async function report(key: string, got: Tensor | Float32Array): Promise<void> {
  const a = got instanceof Tensor ? await got.read() : got;
  const b = await g.readF32(key);
  const e = relL2(a, b), s = absDiff(a, b);
  results[key] = { relL2: e, maxAbs: s.max, meanAbs: s.mean };
  console.error(
    `${key.padEnd(44)} relL2 ${e.toExponential(2)}  maxAbs ${s.max.toExponential(2)}  meanAbs ${
      s.mean.toExponential(2)
    }`,
  );
}

// Text encoder.
const text = await sd.encodeText(meta.prompt, meta.negative_prompt, true);
await report("text.uncond_cond", text);

// UNet on the golden text states (isolates the UNet's error).
const ctxGold = Tensor.from(
  gpu,
  await g.readF32("text.uncond_cond"),
  g.tensors.get("text.uncond_cond")!.shape,
  "f32",
);
const ctx = precision === "f32" ? ctxGold : cast(ctxGold, precision);
const x = await g.readF32("unet.x");
const xs = g.tensors.get("unet.x")!.shape;
const both = new Float32Array(2 * x.length);
both.set(x);
both.set(x, x.length);
const sample = Tensor.from(gpu, both, [2, ...xs.slice(1)], sd.unet.store.dtype);
for (const t of meta.timesteps_probe as number[]) {
  const t1 = performance.now();
  const out = sd.unet.forward(sample, t, ctx);
  await gpu.flush();
  console.error(`unet t=${t}: ${(performance.now() - t1).toFixed(0)} ms (incl. first-use compile)`);
  await report(`unet.t${t}.out`, out);
  out.release();
}

// VAE decode and encode.
const z = await g.readF32("vae.z");
const zt = Tensor.from(
  gpu,
  z.map((v) => v / sd.configs.vae.scaling_factor),
  g.tensors.get("vae.z")!.shape,
  sd.vae.store.dtype,
);
await report("vae.decode.out", sd.vae.decode(zt));
const img = Tensor.from(
  gpu,
  await g.readF32("vae.encode.image"),
  g.tensors.get("vae.encode.image")!.shape,
  sd.vae.store.dtype,
);
const enc = sd.vae.encode(img);
await report("vae.encode.mean", enc.mean);
await report("vae.encode.logvar", enc.logvar);

// Whole pipelines, with the VAE as text-to-image loads it (in f16 when the pipeline is: the
// encoder above made the loader keep the whole VAE in f32).
if (args.cases && !args["no-cases"]) {
  if (sd.vae.store.dtype !== precision) await sd.reloadVae(precision);
  for (const c of meta.pipeline_cases) {
    const lat0 = await g.readF32(`${c.key}.latents_in`);
    let latErr = NaN;
    const t1 = performance.now();
    const out = await sd.generate({
      prompt: meta.prompt,
      negative: meta.negative_prompt,
      seed: c.seed_latents,
      steps: c.steps,
      guidance: c.guidance_scale,
      width: c.width,
      height: c.height,
      scheduler: schedulerFromIdentifier(c.scheduler),
    }, {
      onLatents: (k, l) => {
        if (k === 0) latErr = relL2(l, lat0);
      },
    });
    const ms = performance.now() - t1;
    const want = await g.readF32(`${c.key}.image`);
    const s = absDiff(out.pixels, want);
    const gotT = [...out.timesteps];
    const wantT = Array.from(await g.readF64(`${c.key}.timesteps`));
    const tsOk = gotT.length === wantT.length && gotT.every((v, i) => v === wantT[i]);
    results[`${c.key}.image`] = {
      maxAbs: s.max,
      meanAbs: s.mean,
      latentsInRelL2: latErr,
      ms,
      timestepsMatch: tsOk ? 1 : 0,
    };
    console.error(
      `${(c.key + ".image").padEnd(44)} maxAbs ${s.max.toExponential(2)}  meanAbs ${
        s.mean.toExponential(2)
      }  ` +
        `latents_in relL2 ${latErr.toExponential(1)}  timesteps ${tsOk ? "equal" : "DIFFER"}  ${
          ms.toFixed(0)
        } ms`,
    );
  }
}
console.log(JSON.stringify({ device: gpu.description, precision, results }));
g.close();
