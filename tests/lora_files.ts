/**
 * LoRA test data: the lora cases of the features fixture, and LoRA files written for tests (bad
 * ones, each with the phrase its error must hold).
 *
 * @module
 */

import { join } from "../src/std/path.ts";
import { writeSafetensors } from "../src/weights/safetensors_writer.ts";
import { fixture } from "./fixtures.ts";

/** One lora case of `features/tiny-sd-features.json`. */
export interface LoraCase {
  key: string;
  prompt: string;
  negative_prompt: string;
  loras: { file: string; scale: number }[];
  merged_modules: { target: "te" | "unet"; module: string; rank: number; alpha: number }[];
  cli: string[];
}

/** The lora cases of the features fixture. */
export async function loraCases(): Promise<LoraCase[]> {
  const meta = JSON.parse(await Deno.readTextFile(fixture("features/tiny-sd-features.json")));
  return (meta.cases as (LoraCase & { kind: string })[]).filter((c) => c.kind === "lora");
}

/** Writes a safetensors file of `tensors` into `dir` and returns its path. */
export async function writeLora(
  dir: string,
  name: string,
  tensors: Record<string, { shape: number[]; data?: Float32Array }>,
  metadata?: Record<string, string>,
): Promise<string> {
  const path = join(dir, name);
  await writeSafetensors(
    path,
    Object.entries(tensors).map(([key, t]) => ({
      name: key,
      dtype: "F32" as const,
      shape: t.shape,
      data: t.data ?? new Float32Array(t.shape.reduce((a, b) => a * b, 1)).fill(0.01),
    })),
    metadata,
  );
  return path;
}

/** Bad LoRA files for tiny-sd, each with a phrase its error must contain. */
export async function badLoraFiles(dir: string): Promise<{ path: string; says: string }[]> {
  const q = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q";
  const nan = new Float32Array(4 * 64).fill(0.1);
  nan[7] = NaN;
  const notSafetensors = join(dir, "notes.safetensors");
  await Deno.writeTextFile(notSafetensors, "not a safetensors file");
  return [
    { path: notSafetensors, says: "LoRA must be a .safetensors" },
    {
      path: await writeLora(dir, "shape.safetensors", {
        [`${q}.lora_down.weight`]: { shape: [4, 48] },
        [`${q}.lora_up.weight`]: { shape: [64, 4] },
      }),
      says: "does not fit the layer",
    },
    {
      path: await writeLora(dir, "nan.safetensors", {
        [`${q}.lora_down.weight`]: { shape: [4, 64], data: nan },
        [`${q}.lora_up.weight`]: { shape: [64, 4] },
      }),
      says: "NaN/Inf",
    },
    {
      path: await writeLora(dir, "unknown.safetensors", {
        [`${q}.lora_down.weight`]: { shape: [4, 64] },
        [`${q}.lora_up.weight`]: { shape: [64, 4] },
        [`${q}.scale_factor`]: { shape: [1] },
      }),
      says: `unknown key ${q}.scale_factor`,
    },
    {
      path: await writeLora(dir, "sdxl.safetensors", {
        "lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": {
          shape: [4, 1280],
        },
        "lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight": {
          shape: [1280, 4],
        },
        "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q.lora_down.weight": {
          shape: [4, 640],
        },
        "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q.lora_up.weight": {
          shape: [640, 4],
        },
      }),
      says: "another architecture (SDXL",
    },
    {
      path: await writeLora(dir, "half.safetensors", {
        [`${q}.lora_down.weight`]: { shape: [4, 64] },
      }),
      says: "has no up half",
    },
    {
      path: await writeLora(dir, "loha.safetensors", {
        [`${q}.hada_w1_a`]: { shape: [64, 4] },
        [`${q}.hada_w1_b`]: { shape: [4, 64] },
      }),
      says: "LoHa",
    },
  ];
}

/** A LoRA with one module that maps to tiny-sd (`…attn1.to_q`) and one that maps to nothing. */
export async function partlyMatchingLora(dir: string): Promise<string> {
  const q = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q";
  return await writeLora(dir, "partly.safetensors", {
    [`${q}.lora_down.weight`]: { shape: [4, 64] },
    [`${q}.lora_up.weight`]: { shape: [64, 4] },
    "lora_unet_no_such_module.lora_down.weight": { shape: [4, 64] },
    "lora_unet_no_such_module.lora_up.weight": { shape: [64, 4] },
  });
}
