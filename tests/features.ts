/**
 * The features fixture (`features/tiny-sd-features.{json,safetensors}`): its cases by kind, the
 * `sd` arguments that replay them, and its golden tensors.
 *
 * @module
 */

import { SafeTensorsFile } from "../src/weights/safetensors.ts";
import { existsSync } from "../src/std/fs.ts";
import { join } from "../src/std/path.ts";
import { fixture } from "./fixtures.ts";

/** Fields of every case of `features/tiny-sd-features.json` (`cli`: the `sd` arguments). */
export interface FeatureCase {
  key: string;
  kind: string;
  model: string;
  prompt: string;
  negative_prompt: string;
  seed: number;
  steps: number;
  scheduler: string;
  guidance_scale: number;
  width: number;
  height: number;
  cli: string[];
}

/** An image-to-image or inpainting case. */
export interface ImageCase extends FeatureCase {
  strength: number;
  init_image: string;
  mask?: string;
  unet_in_channels?: number;
}

/** A text-stage case (emphasis, long prompt, clip skip). */
export interface TextCase extends FeatureCase {
  clip_skip: number;
  /** Chunks of 77 tokens per prompt. */
  chunks: number;
  cond_token_count: number;
  uncond_token_count: number;
  /** A1111's fragments: [text, weight]. */
  cond_fragments: [string, number][];
  uncond_fragments: [string, number][];
}

async function cases(): Promise<FeatureCase[]> {
  const meta = JSON.parse(await Deno.readTextFile(fixture("features/tiny-sd-features.json")));
  return meta.cases as FeatureCase[];
}

/** The img2img and inpaint cases of the features fixtures. */
export async function imageCases(): Promise<ImageCase[]> {
  return (await cases()).filter((c) => c.kind === "img2img" || c.kind === "inpaint") as ImageCase[];
}

/** The text-stage cases, in the fixture's order. */
export async function textCases(): Promise<TextCase[]> {
  return (await cases()).filter((c) => c.kind === "text") as TextCase[];
}

/** The golden tensors (close it after use). */
export function featureGolden(): Promise<SafeTensorsFile> {
  return SafeTensorsFile.open(fixture("features/tiny-sd-features.safetensors"));
}

/**
 * A case's `sd` arguments with its paths (relative to `features/` in the JSON) made absolute: an
 * option's value that names a file or folder there.
 */
export function featureCli(c: { cli: readonly string[] }): string[] {
  const base = fixture("features");
  return c.cli.map((arg, i) =>
    i > 0 && c.cli[i - 1].startsWith("--") && existsSync(join(base, arg)) ? join(base, arg) : arg
  );
}
