/**
 * Sizes whose latent sides are odd (200×136: latent 25×17; 136×72: 17×9) against diffusers'
 * goldens made by `scripts/odd_size_goldens.py` (tests/fixtures/odd-size-golden.*): the UNet at
 * t = 951 in f32 (relative L2 < 1e-4, with per-block probes to bisect), and a DDIM text-to-image
 * run through the `sd` command (image max abs < 0.02 + 1/255). Fails, saying how to make them,
 * while the goldens are missing.
 */

import { assert, assertEquals } from "../src/std/assert.ts";
import { fromFileUrl, join } from "../src/std/path.ts";
import { Tensor } from "../src/gpu/tensor.ts";
import { cast } from "../src/ops/elementwise.ts";
import { StableDiffusion } from "../src/pipeline.ts";
import { SafeTensorsFile } from "../src/weights/safetensors.ts";
import { existsSync } from "../src/std/fs.ts";
import { fixture } from "./fixtures.ts";
import { hasGpu, relL2, testGpu } from "./gpu.ts";
import { sd } from "./sd_command.ts";
import { decodePng, imageError, withinImageTolerance } from "./image_compare.ts";
import { withTmp } from "./temp.ts";

const GOLDEN = fromFileUrl(new URL("./fixtures/odd-size-golden.safetensors", import.meta.url));
const META = GOLDEN.replace(/\.safetensors$/, ".json");

interface OddCase {
  key: string;
  width: number;
  height: number;
  scheduler: string;
  steps: number;
  guidance_scale: number;
  seed: number;
}

/** The golden and its cases; an error naming the command that makes them when missing. */
async function golden(): Promise<
  { g: SafeTensorsFile; meta: { prompt: string; negative_prompt: string; cases: OddCase[] } }
> {
  if (!existsSync(GOLDEN) || !existsSync(META)) {
    throw new Error(
      `missing ${GOLDEN}: make it on a machine with torch and transformers: ` +
        "python3 scripts/odd_size_goldens.py --fixtures ../shared/fixtures " +
        "--diffusers ../shared/reference/diffusers-src.tgz --out tests/fixtures",
    );
  }
  return {
    g: await SafeTensorsFile.open(GOLDEN),
    meta: JSON.parse(await Deno.readTextFile(META)),
  };
}

Deno.test({
  name: "odd sizes: tiny-sd UNet at 200×136 and 136×72 (odd latent sides) vs diffusers, f32",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await testGpu())!;
    const { g, meta } = await golden();
    const sdm = await StableDiffusion.load(gpu, { kind: "dir", dir: fixture("tiny-sd") }, {
      precision: "f32",
    });
    const errors: string[] = [];
    try {
      for (const c of meta.cases) {
        const x = await g.readF32(`${c.key}.unet.x`);
        const both = new Float32Array(2 * x.length);
        both.set(x);
        both.set(x, x.length);
        const [h, w] = [c.height / 8, c.width / 8];
        const sample = Tensor.from(gpu, both, [2, 4, h, w], "f32");
        const text = await g.readF32(`${c.key}.text.uncond_cond`);
        const ctx = Tensor.from(gpu, text, [2, 77, text.length / 154], "f32");
        const probes = new Map<string, Tensor>();
        const out = sdm.unet.forward(sample, 951, ctx, (name, t) => {
          if (g.tensors.has(`${c.key}.unet.t951.probe.${name}`)) {
            probes.set(name, cast(t, "f32").pin());
          }
        });
        const e = relL2(await out.read(), await g.readF32(`${c.key}.unet.t951.out`));
        console.log(`${c.key}: UNet rel L2 ${e.toExponential(2)}`);
        if (!(e < 1e-4)) errors.push(`${c.key}.unet.t951.out: rel L2 ${e.toExponential(2)}`);
        for (const [name, t] of probes) {
          const pe = relL2(await t.read(), await g.readF32(`${c.key}.unet.t951.probe.${name}`));
          if (!(pe < 1e-4)) errors.push(`${c.key} probe ${name}: rel L2 ${pe.toExponential(2)}`);
          t.release();
        }
        sdm.unet.clearContextCache();
        for (const t of [sample, ctx, out]) t.release();
      }
    } finally {
      g.close();
      sdm.unet.store.release();
      sdm.text.store.release();
      sdm.vae.store.release();
    }
    assertEquals(errors, []);
  },
});

Deno.test({
  name: "odd sizes: `sd` text-to-image at 200×136 and 136×72 vs diffusers (DDIM, f32)",
  ignore: !hasGpu,
  async fn() {
    const { g, meta } = await golden();
    try {
      await withTmp(async (dir) => {
        for (const c of meta.cases) {
          const out = join(dir, `${c.key}.png`);
          const r = await sd(dir, [
            "--weights",
            fixture("tiny-sd"),
            "--precision",
            "f32",
            "--scheduler",
            c.scheduler,
            "--steps",
            String(c.steps),
            "--guidance",
            String(c.guidance_scale),
            "--seed",
            String(c.seed),
            "--width",
            String(c.width),
            "--height",
            String(c.height),
            "--negative",
            meta.negative_prompt,
            "--quiet",
            "-o",
            out,
            meta.prompt,
          ]);
          assertEquals(r.code, 0, r.stderr);
          const img = decodePng(await Deno.readFile(out));
          assertEquals([img.width, img.height], [c.width, c.height]);
          const e = imageError(img, await g.readF32(`${c.key}.pipe.image`));
          console.log(`${c.key}: image max abs ${e.max.toFixed(4)}`);
          assert(withinImageTolerance("f32", e), `${c.key}: image max abs ${e.max}`);
        }
      });
    } finally {
      g.close();
    }
  },
});
