/**
 * A single-file checkpoint (original key names) gives the same outputs as the diffusers folder it
 * was converted from: `tiny-sd-single.fp16.safetensors` with `--config tiny-sd` against
 * `--weights tiny-sd --precision f16`, through the `sd` command, PNG pixels compared.
 */

import { assert, assertEquals } from "../src/std/assert.ts";
import * as png from "imagescript/png/src/png.mjs";
import { hasGpu } from "./gpu.ts";
import { singleFileUNetInChannels } from "../src/models/single_file.ts";
import { writeSafetensors } from "../src/weights/safetensors_writer.ts";
import { fixture } from "./fixtures.ts";

const ROOT = new URL("../", import.meta.url).pathname;

async function generate(dir: string, name: string, weights: string[]): Promise<Uint8Array> {
  const out = `${dir}/${name}.png`;
  const r = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `${ROOT}main.ts`,
      "a red fox",
      ...weights,
      "--precision",
      "f16",
      "--seed",
      "5",
      "--steps",
      "3",
      "--width",
      "64",
      "--height",
      "64",
      "--quiet",
      "--out",
      out,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert(r.code === 0, `${name}: ${new TextDecoder().decode(r.stderr)}`);
  return (png.decode(await Deno.readFile(out)) as { buffer: Uint8Array }).buffer;
}

Deno.test({
  name: "single-file checkpoint: same image as the diffusers folder (f16)",
  ignore: !hasGpu,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const folder = await generate(dir, "folder", ["--weights", fixture("tiny-sd")]);
      const single = await generate(dir, "single", [
        "--weights",
        fixture("tiny-sd-single.fp16.safetensors"),
        "--config",
        fixture("tiny-sd"),
      ]);
      assertEquals(single.length, folder.length);
      let differing = 0;
      for (let i = 0; i < folder.length; i++) if (single[i] !== folder[i]) differing++;
      assertEquals(differing, 0, `${differing} of ${folder.length} bytes differ`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("singleFileUNetInChannels: conv_in's input channels (4 normal, 9 inpainting)", async () => {
  assertEquals(
    await singleFileUNetInChannels(fixture("tiny-sd-single.fp16.safetensors")),
    4,
  );
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/inpaint.safetensors`;
    const data = new Float32Array(8 * 9 * 3 * 3);
    await writeSafetensors(path, [
      {
        name: "model.diffusion_model.input_blocks.0.0.weight",
        dtype: "F16",
        shape: [8, 9, 3, 3],
        data,
      },
    ]);
    assertEquals(await singleFileUNetInChannels(path), 9);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
