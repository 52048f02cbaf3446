/**
 * The generation parameters as text, in the form AUTOMATIC1111's web UI writes into a PNG's
 * `parameters` chunk and other Stable Diffusion tools (ComfyUI, InvokeAI, civitai, image viewers)
 * read back:
 *
 * ```text
 * a red fox in the snow
 * Negative prompt: blurry
 * Steps: 20, Sampler: DDIM, CFG scale: 7.5, Seed: 42, Size: 512x512, Model hash: c83908253f, Model: sd15, Version: sd 0.1.0
 * ```
 *
 * Image-to-image and inpainting add `Denoising strength: 0.6` after `Model`, where A1111 writes
 * it. No `Mask blur`: `sd` does not blur masks (diffusers' pipelines do not either).
 *
 * @module
 */

/** What one image was made with. */
export interface ImageParameters {
  prompt: string;
  /** "" for none (the line is then left out). */
  negative: string;
  steps: number;
  /** The sampler's display name ("DDIM", "Euler a", "DPM++ 2M Karras"). */
  sampler: string;
  guidance: number;
  /** The exact seed (up to 2^64−1). */
  seed: number | bigint;
  width: number;
  height: number;
  /** First 10 hex digits of the UNet weights' sha256, or "synth". */
  modelHash: string;
  /** Model name (sd15, sd14, a folder's name, synth). */
  model: string;
  /** Program version. */
  version: string;
  /** Image-to-image / inpainting strength; absent for text-to-image. */
  denoisingStrength?: number;
  /** A1111's `Lora hashes` value (`name: hash12, …`); "" or absent: no LoRA. */
  loraHashes?: string;
  /** A1111's clip skip; written when > 1 (`Clip skip: 2`). */
  clipSkip?: number;
  /** False with `--no-emphasis`: `Emphasis: None` when the prompts hold brackets, as A1111. */
  emphasis?: boolean;
}

/** Formats {@linkcode ImageParameters} as the `parameters` text. */
export function formatParameters(p: ImageParameters): string {
  const lines = [p.prompt];
  if (p.negative !== "") lines.push(`Negative prompt: ${p.negative}`);
  lines.push(
    [
      `Steps: ${p.steps}`,
      `Sampler: ${p.sampler}`,
      `CFG scale: ${p.guidance}`,
      `Seed: ${p.seed}`,
      `Size: ${p.width}x${p.height}`,
      `Model hash: ${p.modelHash}`,
      `Model: ${p.model}`,
      ...(p.denoisingStrength === undefined ? [] : [`Denoising strength: ${p.denoisingStrength}`]),
      ...(p.clipSkip ?? 1) > 1 ? [`Clip skip: ${p.clipSkip}`] : [],
      // Quoted as A1111 quotes values holding ":" or ",".
      ...(p.loraHashes ? [`Lora hashes: ${JSON.stringify(p.loraHashes)}`] : []),
      ...p.emphasis === false && /[([]/.test(p.prompt + p.negative) ? ["Emphasis: None"] : [],
      `Version: sd ${p.version}`,
    ].join(", "),
  );
  return lines.join("\n");
}
