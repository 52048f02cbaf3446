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
  seed: number;
  width: number;
  height: number;
  /** First 10 hex digits of the UNet weights' sha256, or "synth". */
  modelHash: string;
  /** Model name (sd15, sd14, a folder's name, synth). */
  model: string;
  /** Program version. */
  version: string;
  /** A1111's `Lora hashes` value (`name: hash12, …`); "" or absent: no LoRA. */
  loraHashes?: string;
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
      // Quoted as A1111 quotes values holding ":" or ",".
      ...(p.loraHashes ? [`Lora hashes: ${JSON.stringify(p.loraHashes)}`] : []),
      `Version: sd ${p.version}`,
    ].join(", "),
  );
  return lines.join("\n");
}
