/**
 * The bad inputs of the `sd` command that its tests try, shared by the end-to-end runs
 * (`cli_test.ts`: one line on stderr, exit code 2) and the in-process check that each is a
 * `UserError` (`errors_test.ts`). Each runs in a folder holding an empty file `blocker`.
 *
 * @module
 */

import { join } from "../src/std/path.ts";
import { fixture } from "./fixtures.ts";

/** The tiny fixture model (a diffusers folder). */
export const TINY: string = fixture("tiny-sd");

/** Options for a quick run on {@linkcode TINY}: 64×64, 2 steps. */
export const TINY_ARGS: string[] = [
  "--weights",
  TINY,
  "--width",
  "64",
  "--height",
  "64",
  "--steps",
  "2",
];

/** Arguments and a part of the one-line message each must give; all are usage errors (exit 2). */
export const BAD_INPUTS: [string[], string][] = [
  [["a cat", "--stepz", "2"], "unknown option --stepz"],
  [["a cat", "--steps", "0"], "--steps 0 is out of range"],
  [["a cat", "--guidance", "-1"], "--guidance -1 is out of range; use a scale from 0 to 50"],
  [["a cat", "--guidance", "1e30"], "--guidance 1e30 is not a decimal number"],
  [["a cat", "--height", "0x40"], "--height 0x40 is not a decimal integer"],
  [["a cat", "--steps", "0x2"], "--steps 0x2 is not a decimal integer"],
  [["a cat", "--seed", "1e3"], "--seed 1e3 is not a valid seed; use an integer from 0 to"],
  [["a cat", "--seed", "18446744073709551616"], "--seed 18446744073709551616 is not a valid seed"],
  [
    ["a cat", "--seed", "18446744073709551615", "--batch", "2"],
    "--seed 18446744073709551615 with --batch 2 needs seeds past 18446744073709551615",
  ],
  [["a cat ".repeat(1000)], "the prompt is 6000 characters long"],
  [["a cat", "--width", "100"], "--width 100 is not a multiple of 8"],
  [["a cat", "--height", "2056"], "--height 2056 is out of range"],
  [["a cat", "--scheduler", "plms"], 'unknown scheduler "plms"'],
  [["a cat", "--model", "sd9"], 'unknown model "sd9"'],
  [["a cat", "--out", "blocker/images"], "cannot create the directory"],
  [["a cat", "--weights", "no-such-folder"], "--weights no-such-folder: no such file"],
  [["a cat", "--weights", "blocker"], "neither a folder nor a .safetensors file"],
  [["a cat", "--clip-skip", "0"], "--clip-skip 0 is out of range"],
  [["a cat", "--chunks"], "--chunks applies to sd tokens"],
  [["a (cat:1.2.3)"], 'the prompt weight "1.2.3"'],
  [["a cat", "--mask", "blocker"], "--mask needs an init image"],
  [["a cat", "--strength", "0.5"], "--strength applies to an init image"],
  [["a cat", "--init-image", "blocker", "--strength", "1.5"], "--strength 1.5 is out of range"],
  [["a cat", "--lora", "no-such.safetensors:0.5"], "--lora no-such.safetensors: no such file"],
  [["a cat <lora:style:0.5>"], "no --lora-dir was given"],
  [["a cat <lora:style:0.5>", "--lora-dir", "."], "no style.safetensors in ."],
  [["a cat <lora:style:strong>"], '"strong" is not a decimal number'],
  [[], "no prompt and no jobs on stdin"],
];

/** A copy of {@linkcode TINY}'s component folders at `model` with both UNet files truncated. */
export function corruptTinyCopy(model: string): string {
  for (const e of Deno.readDirSync(TINY)) {
    if (!e.isDirectory) continue;
    Deno.mkdirSync(join(model, e.name), { recursive: true });
    for (const f of Deno.readDirSync(join(TINY, e.name))) {
      Deno.copyFileSync(join(TINY, e.name, f.name), join(model, e.name, f.name));
    }
  }
  for (
    const f of [
      "diffusion_pytorch_model.safetensors",
      "diffusion_pytorch_model.fp16.safetensors",
    ]
  ) {
    const p = join(model, "unet", f);
    const bytes = Deno.readFileSync(p);
    Deno.writeFileSync(p, bytes.subarray(0, bytes.length >> 1)); // truncated
  }
  return model;
}
