/**
 * CLIP, UNet and VAE on tiny-sd against diffusers' golden tensors (f32: 1e-4 relative L2 on
 * every tensor and probe; f16 weights + f16 UNet: 1e-2 per call).
 */

import { assert } from "../src/std/assert.ts";
import { Tensor } from "../src/gpu/tensor.ts";
import { type Probe } from "../src/models/nn.ts";
import { StableDiffusion } from "../src/pipeline.ts";
import type { ModelSource } from "../src/weights/source.ts";
import { SafeTensorsFile } from "../src/weights/safetensors.ts";
import { hasGpu, relL2, testGpu } from "./gpu.ts";
import { cast } from "../src/ops/elementwise.ts";
import { fixture } from "./fixtures.ts";

const TINY: ModelSource = { kind: "dir", dir: fixture("tiny-sd") };

async function golden(): Promise<SafeTensorsFile> {
  return await SafeTensorsFile.open(fixture("tiny-sd-golden.safetensors"));
}

/** Collects probes as pinned f32 copies, then compares them after the call. */
function collector(): { probe: Probe; taken: Map<string, Tensor> } {
  const taken = new Map<string, Tensor>();
  return {
    taken,
    probe: (name, t) => taken.set(name, cast(t, "f32").pin()),
  };
}

async function check(
  g: SafeTensorsFile,
  key: string,
  t: Tensor | Float32Array,
  tol: number,
  errors: string[],
): Promise<number> {
  const got = t instanceof Tensor ? await t.read() : t;
  const want = await g.readF32(key);
  const e = relL2(got, want);
  if (!(e < tol)) errors.push(`${key}: rel L2 ${e.toExponential(2)}`);
  return e;
}

for (const precision of ["f32", "f16"] as const) {
  Deno.test({
    name:
      `models: tiny-sd ${precision} — text, UNet t=951/t=1 with probes, VAE decode/encode vs golden`,
    ignore: !hasGpu,
    async fn() {
      const gpu = (await testGpu())!;
      if (precision === "f16" && !gpu.hasF16) return;
      const tol = precision === "f32" ? 1e-4 : 1e-2;
      const sd = await StableDiffusion.load(gpu, TINY, { precision, vaeEncoder: true });
      const g = await golden();
      const errors: string[] = [];
      const worst: Record<string, number> = {};
      const note = (k: string, e: number) => worst[k] = Math.max(worst[k] ?? 0, e);

      // Text encoder: tokens must match, then last_hidden_state.
      const ids = await g.readI64("tokens.uncond_cond");
      const gj = JSON.parse(await Deno.readTextFile(fixture("tiny-sd-golden.json")));
      const mine = [gj.negative_prompt, gj.prompt].flatMap((p: string) =>
        sd.tokenizer.encode(p).ids
      );
      assert(mine.every((v, i) => v === Number(ids[i])), "tokens.uncond_cond");
      const text = await sd.encodeText(gj.prompt, gj.negative_prompt, true);
      note("text", await check(g, "text.uncond_cond", text, tol, errors));

      // UNet at both probe timesteps with cat([x, x]).
      const x = await g.readF32("unet.x");
      const n = x.length;
      const both = new Float32Array(2 * n);
      both.set(x);
      both.set(x, n);
      const sample = Tensor.from(
        gpu,
        both,
        [2, ...g.tensors.get("unet.x")!.shape.slice(1)],
        sd.unet.store.dtype,
      );
      const ctx = precision === "f32" ? text : cast(text, "f16");
      for (const t of [951, 1]) {
        const c = collector();
        const out = sd.unet.forward(sample, t, ctx, t === 951 ? c.probe : undefined);
        note("unet", await check(g, `unet.t${t}.out`, out, tol, errors));
        for (const [name, probe] of c.taken) {
          note("unet probes", await check(g, `unet.t951.probe.${name}`, probe, tol, errors));
          probe.release();
        }
        if (t === 951) {
          const expected = [...g.tensors.keys()].filter((k) =>
            k.startsWith("unet.t951.probe.")
          ).length;
          assert(c.taken.size === expected, `probed ${c.taken.size} of ${expected} UNet modules`);
        }
        out.release();
      }

      // VAE decode (z / scaling_factor) with probes, and encode.
      const z = await g.readF32("vae.z");
      const zs = z.map((v) => v / sd.configs.vae.scaling_factor);
      const zShape = g.tensors.get("vae.z")!.shape;
      const zt = Tensor.from(gpu, zs, zShape, sd.vae.store.dtype);
      const c = collector();
      note("vae decode", await check(g, "vae.decode.out", sd.vae.decode(zt, c.probe), tol, errors));
      for (const [name, probe] of c.taken) {
        note("vae probes", await check(g, `vae.decode.probe.${name}`, probe, tol, errors));
        probe.release();
      }
      const expectedVae = [...g.tensors.keys()].filter((k) =>
        k.startsWith("vae.decode.probe.")
      ).length;
      assert(c.taken.size === expectedVae, `probed ${c.taken.size} of ${expectedVae} VAE modules`);
      const image = await g.readF32("vae.encode.image");
      const it = Tensor.from(
        gpu,
        image,
        g.tensors.get("vae.encode.image")!.shape,
        sd.vae.store.dtype,
      );
      const { mean, logvar } = sd.vae.encode(it);
      note("vae encode", await check(g, "vae.encode.mean", mean, tol, errors));
      note("vae encode", await check(g, "vae.encode.logvar", logvar, tol, errors));
      g.close();
      console.error(
        `tiny-sd ${precision} worst rel L2: ` +
          Object.entries(worst).map(([k, v]) => `${k} ${v.toExponential(2)}`).join(", "),
      );
      assert(errors.length === 0, errors.join("\n"));
    },
  });
}

Deno.test({
  name: "models: tiny-sd f16 VAE decoder vs golden, then reloaded in f32 (the overflow fallback)",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await testGpu())!;
    if (!gpu.hasF16) return;
    // Text-to-image loads no encoder: the VAE follows the pipeline's precision.
    const sd = await StableDiffusion.load(gpu, TINY, { precision: "f16" });
    const g = await golden();
    const z = await g.readF32("vae.z");
    const shape = g.tensors.get("vae.z")!.shape;
    const decode = () =>
      sd.vae.decode(
        Tensor.from(
          gpu,
          z.map((v) => v / sd.configs.vae.scaling_factor),
          shape,
          sd.vae.store.dtype,
        ),
      );
    const errors: string[] = [];
    const e16 = await check(g, "vae.decode.out", decode(), 1e-2, errors);
    const before: string = sd.vae.store.dtype;
    await sd.reloadVae("f32");
    const after: string = sd.vae.store.dtype;
    const e32 = await check(g, "vae.decode.out", decode(), 1e-4, errors);
    console.log(
      `VAE decode rel L2: f16 ${e16.toExponential(2)}, reloaded f32 ${e32.toExponential(2)}`,
    );
    assert(before === "f16" && after === "f32", `${before} → ${after}`);
    assert(errors.length === 0, errors.join("\n"));
  },
});

Deno.test({
  name: "generate: onStep reports every step once, in order; waiting more often changes no pixel",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await testGpu())!;
    const sd = await StableDiffusion.load(gpu, TINY, { precision: "f32" });
    // PNDM with 10 steps makes 11 UNet calls: the loop waits every 8 without hooks, every 3 for a
    // progress line (a last group of 2), every 1 with syncSteps.
    const params = {
      prompt: "a cat",
      seed: 7,
      steps: 10,
      guidance: 7.5,
      width: 64,
      height: 64,
      scheduler: "pndm" as const,
    };
    const plain = await sd.generate(params);
    const seen: string[] = [];
    const progress = await sd.generate(params, { onStep: (k, n) => seen.push(`${k}/${n}`) });
    const synced = await sd.generate(params, { syncSteps: true });
    assert(
      seen.join() === Array.from({ length: 11 }, (_, i) => `${i + 1}/11`).join(),
      `onStep calls: ${seen.join()}`,
    );
    for (const [name, r] of [["onStep", progress], ["syncSteps", synced]] as const) {
      const same = r.pixels.length === plain.pixels.length &&
        r.pixels.every((v, i) => v === plain.pixels[i]);
      assert(same, `${name}: pixels differ from the run without hooks`);
    }
  },
});
