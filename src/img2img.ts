/**
 * The latent arithmetic of image-to-image and inpainting, named and ordered as diffusers'
 * `StableDiffusionImg2ImgPipeline` and `StableDiffusionInpaintPipeline` (`get_timesteps`,
 * `prepare_latents`, `prepare_mask_latents`, the 4-channel blend). Everything here is on the CPU
 * over latents-sized arrays (4·h·w values); the VAE encoder runs on the GPU in the pipeline.
 *
 * Generator draws, in diffusers' order (the pipeline makes them through the callbacks):
 * - img2img: the posterior's ε (`latent_dist.sample(generator)`), then the noise;
 * - inpainting, 4-channel UNet: the image posterior's ε, the noise, the masked image posterior's ε
 *   (drawn, unused);
 * - inpainting, 9-channel UNet: the image posterior's ε only when strength < 1, the noise, the
 *   masked image posterior's ε.
 *
 * @module
 */

import type { Scheduler } from "../scheduler/mod.ts";

/** What an image-to-image or inpainting run starts from. */
export interface InitImage {
  /** The init image, CHW f32 in [−1, 1], at the output size. */
  image: Float32Array;
  /** The binarized mask (1 = repaint), HW at the output size; absent for image-to-image. */
  mask?: Float32Array;
  /** How much of the schedule runs, in (0, 1]. */
  strength: number;
}

/**
 * `get_timesteps`: the tail of the schedule that strength keeps — init_timestep =
 * min(⌊N·strength⌋, N), t_start = N − init_timestep, `timesteps[t_start · order:]`. Every
 * scheduler here has diffusers' `order` 1 (PNDM's repeated first timestep is in its list, so it
 * is only kept at strength 1).
 */
export function getTimesteps(
  timesteps: readonly number[],
  steps: number,
  strength: number,
): { timesteps: number[]; tStart: number } {
  const initTimestep = Math.min(Math.floor(steps * strength), steps);
  const tStart = Math.max(steps - initTimestep, 0);
  return { timesteps: timesteps.slice(tStart), tStart };
}

/**
 * `retrieve_latents(vae.encode(x), generator)` times `scaling_factor`: a sample of the posterior,
 * `scaling_factor · (mean + exp(logvar/2) · ε)`, rounded to f32 at each op as torch does.
 */
export function sampleLatents(
  mean: Float32Array,
  logvar: Float32Array,
  eps: Float32Array,
  scalingFactor: number,
): Float32Array {
  const sf = Math.fround(scalingFactor);
  return mean.map((m, i) => {
    const std = Math.fround(Math.exp(Math.fround(0.5 * logvar[i])));
    return Math.fround(sf * Math.fround(m + Math.fround(std * eps[i])));
  });
}

/**
 * The latents entering the loop (`prepare_latents`): the clean latents noised to the first
 * timestep, `scheduler.add_noise(image_latents, noise, t₀)` — except for inpainting at strength 1
 * (`is_strength_max`), which starts from pure noise, `noise · init_noise_sigma`, as text-to-image.
 */
export function prepareLatents(
  scheduler: Scheduler,
  imageLatents: Float32Array | null,
  noise: Float32Array,
  t0: number,
  pureNoise: boolean,
): Float32Array {
  if (pureNoise || !imageLatents) {
    const sigma = scheduler.initNoiseSigma;
    return noise.map((v) => v * sigma);
  }
  return scheduler.addNoise(imageLatents, noise, t0);
}

/**
 * `prepare_mask_latents`' UNet conditioning of a 9-channel inpainting UNet, for a batch of
 * `batch` (2 with guidance): per copy, mask [1, h, w] then masked-image latents [4, h, w], i.e.
 * the last 5 channels of `cat(scale_model_input(latents), mask, masked_image_latents)`.
 */
export function inpaintCondition(
  maskLatents: Float32Array,
  maskedImageLatents: Float32Array,
  batch: number,
): Float32Array {
  const per = maskLatents.length + maskedImageLatents.length;
  const out = new Float32Array(batch * per);
  for (let b = 0; b < batch; b++) {
    out.set(maskLatents, b * per);
    out.set(maskedImageLatents, b * per + maskLatents.length);
  }
  return out;
}

/**
 * The 4-channel inpainting blend after step `i` of the loop over `timesteps`: outside the mask
 * the original latents, noised to the next timestep (after the last step: clean),
 * `latents = (1 − m)·init_latents_proper + m·latents`.
 */
export function blendMasked(
  scheduler: Scheduler,
  latents: Float32Array,
  imageLatents: Float32Array,
  noise: Float32Array,
  maskLatents: Float32Array,
  timesteps: readonly number[],
  i: number,
): Float32Array {
  const proper = i < timesteps.length - 1
    ? scheduler.addNoise(imageLatents, noise, timesteps[i + 1])
    : imageLatents;
  const hw = maskLatents.length;
  return latents.map((v, j) => {
    const m = maskLatents[j % hw];
    return Math.fround((1 - m) * proper[j]) + Math.fround(m * v);
  });
}
