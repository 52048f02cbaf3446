/**
 * Model configurations, read from a diffusers-layout folder's `config.json` files, with SD 1.5's
 * values as the defaults (mirroring
 * https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5/tree/main `unet/`, `vae/`
 * and `text_encoder/config.json`). Only the fields this implementation reads are typed; others
 * are ignored, and unsupported architecture switches are rejected with a clear error.
 *
 * @module
 */

import { UserError } from "../errors.ts";
import { join } from "../std/path.ts";

/** `UNet2DConditionModel` fields used by {@linkcode UNet}. */
export interface UNetConfig {
  in_channels: number;
  out_channels: number;
  block_out_channels: number[];
  down_block_types: string[];
  up_block_types: string[];
  layers_per_block: number;
  /** SD 1.x: the number of heads (diffusers' historical naming). May be per block. */
  attention_head_dim: number | number[];
  cross_attention_dim: number;
  norm_num_groups: number;
  norm_eps: number;
  flip_sin_to_cos: boolean;
  freq_shift: number;
  downsample_padding: number;
  mid_block_scale_factor: number;
  use_linear_projection: boolean;
  transformer_layers_per_block: number;
  sample_size: number;
}

/** `AutoencoderKL` fields used by {@linkcode Vae}. */
export interface VaeConfig {
  in_channels: number;
  out_channels: number;
  latent_channels: number;
  block_out_channels: number[];
  layers_per_block: number;
  norm_num_groups: number;
  scaling_factor: number;
  force_upcast: boolean;
  use_quant_conv: boolean;
  use_post_quant_conv: boolean;
  mid_block_add_attention: boolean;
  sample_size: number;
}

/** `CLIPTextModel` fields used by {@linkcode ClipTextModel}. */
export interface ClipTextConfig {
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_attention_heads: number;
  num_hidden_layers: number;
  max_position_embeddings: number;
  layer_norm_eps: number;
  hidden_act: "quick_gelu" | "gelu";
}

/** The three model configs of a pipeline. */
export interface ModelConfigs {
  unet: UNetConfig;
  vae: VaeConfig;
  text_encoder: ClipTextConfig;
}

/** SD 1.5 `unet/config.json`. */
export const SD15_UNET: Readonly<UNetConfig> = {
  in_channels: 4,
  out_channels: 4,
  block_out_channels: [320, 640, 1280, 1280],
  down_block_types: [
    "CrossAttnDownBlock2D",
    "CrossAttnDownBlock2D",
    "CrossAttnDownBlock2D",
    "DownBlock2D",
  ],
  up_block_types: ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
  layers_per_block: 2,
  attention_head_dim: 8,
  cross_attention_dim: 768,
  norm_num_groups: 32,
  norm_eps: 1e-5,
  flip_sin_to_cos: true,
  freq_shift: 0,
  downsample_padding: 1,
  mid_block_scale_factor: 1,
  use_linear_projection: false,
  transformer_layers_per_block: 1,
  sample_size: 64,
};

/** SD 1.5 `vae/config.json`. */
export const SD15_VAE: Readonly<VaeConfig> = {
  in_channels: 3,
  out_channels: 3,
  latent_channels: 4,
  block_out_channels: [128, 256, 512, 512],
  layers_per_block: 2,
  norm_num_groups: 32,
  scaling_factor: 0.18215,
  force_upcast: true,
  use_quant_conv: true,
  use_post_quant_conv: true,
  mid_block_add_attention: true,
  sample_size: 512,
};

/** SD 1.5 `text_encoder/config.json` (CLIP ViT-L/14 text tower). */
export const SD15_TEXT: Readonly<ClipTextConfig> = {
  vocab_size: 49408,
  hidden_size: 768,
  intermediate_size: 3072,
  num_attention_heads: 12,
  num_hidden_layers: 12,
  max_position_embeddings: 77,
  layer_norm_eps: 1e-5,
  hidden_act: "quick_gelu",
};

/** SD 1.5's configs (the `--model synth` architecture and the single-file default). */
export function sd15Configs(): ModelConfigs {
  return structuredClone({
    unet: SD15_UNET,
    vae: SD15_VAE,
    text_encoder: SD15_TEXT,
  }) as ModelConfigs;
}

function pick<T extends object>(defaults: Readonly<T>, raw: Record<string, unknown>): T {
  const out = structuredClone(defaults) as T;
  for (const k of Object.keys(defaults) as (keyof T)[]) {
    const v = raw[k as string];
    if (v !== undefined && v !== null) out[k] = v as T[keyof T];
  }
  return out;
}

async function readJson(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new UserError(`cannot read ${path}: ${(e as Error).message.split("\n")[0]}`);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new UserError(`${path} is not valid JSON`);
  }
}

/** Checks the switches this implementation does not support and fails with a clear line. */
function validateUNet(c: UNetConfig, raw: Record<string, unknown>, path: string): void {
  const unsupported: [string, unknown, unknown][] = [
    ["time_embedding_type", raw.time_embedding_type, "positional"],
    ["resnet_time_scale_shift", raw.resnet_time_scale_shift, "default"],
    ["class_embed_type", raw.class_embed_type, null],
    ["addition_embed_type", raw.addition_embed_type, null],
  ];
  for (const [k, v, ok] of unsupported) {
    if (v !== undefined && v !== ok) {
      throw new UserError(`${path}: ${k} = ${JSON.stringify(v)} is not supported (SD 1.x only)`);
    }
  }
  if (c.block_out_channels.length !== c.down_block_types.length) {
    throw new UserError(`${path}: block_out_channels and down_block_types differ in length`);
  }
}

/** Reads `unet/`, `vae/` and `text_encoder/config.json` of a diffusers-layout folder. */
export async function loadConfigs(dir: string): Promise<ModelConfigs> {
  const u = await readJson(join(dir, "unet", "config.json"));
  const v = await readJson(join(dir, "vae", "config.json"));
  const t = await readJson(join(dir, "text_encoder", "config.json"));
  const unet = pick(SD15_UNET, u);
  validateUNet(unet, u, join(dir, "unet", "config.json"));
  return { unet, vae: pick(SD15_VAE, v), text_encoder: pick(SD15_TEXT, t) };
}
