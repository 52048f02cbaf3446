/**
 * scripts/synth.ts writes a model folder equal to the reference's: with tiny-sd's configs, every
 * tensor of every file (f32 and f16) matches the tiny-sd fixture byte for byte.
 */

import { assert, assertEquals } from "../src/std/assert.ts";
import { SafeTensorsFile } from "../src/weights/safetensors.ts";
import { fixture } from "./fixtures.ts";

const ROOT = new URL("../", import.meta.url).pathname;

Deno.test("scripts/synth.ts: tiny-sd configs reproduce the fixture folder byte for byte", async () => {
  const out = await Deno.makeTempDir();
  try {
    const r = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        `${ROOT}scripts/synth.ts`,
        "--out",
        out,
        "--precision",
        "both",
        "--configs",
        fixture("tiny-sd"),
        "--tokenizer",
        fixture("clip-tokenizer"),
      ],
      stderr: "piped",
    }).output();
    assert(r.code === 0, new TextDecoder().decode(r.stderr));
    let tensors = 0;
    for (
      const f of [
        "unet/diffusion_pytorch_model",
        "vae/diffusion_pytorch_model",
        "text_encoder/model",
      ]
    ) {
      for (const suffix of [".safetensors", ".fp16.safetensors"]) {
        const mine = await SafeTensorsFile.open(`${out}/${f}${suffix}`);
        const ref = await SafeTensorsFile.open(fixture(`tiny-sd/${f}${suffix}`));
        assertEquals([...mine.tensors.keys()].sort(), [...ref.tensors.keys()].sort(), f);
        for (const [name, info] of ref.tensors) {
          assertEquals(mine.tensors.get(name)!.shape, info.shape, name);
          assertEquals(await mine.readRaw(name), await ref.readRaw(name), `${f}${suffix}: ${name}`);
          tensors++;
        }
        mine.close();
        ref.close();
      }
    }
    assert(tensors > 1900, `${tensors} tensors compared`);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
