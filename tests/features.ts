/**
 * The cases of the features fixtures (`features/tiny-sd-features.json`) that tests replay.
 *
 * @module
 */

import { fixture } from "./fixtures.ts";

/** One image-to-image or inpainting case of `features/tiny-sd-features.json`. */
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
  strength: number;
  init_image: string;
  mask?: string;
  unet_in_channels?: number;
  cli: string[];
}

/** The img2img and inpaint cases of the features fixtures. */
export async function imageCases(): Promise<FeatureCase[]> {
  const meta = JSON.parse(await Deno.readTextFile(fixture("features/tiny-sd-features.json")));
  return (meta.cases as FeatureCase[]).filter((c) => c.kind === "img2img" || c.kind === "inpaint");
}
