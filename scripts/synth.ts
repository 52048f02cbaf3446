/**
 * Writes a diffusers-layout model folder whose weights are SYNTH.md's formula — the SD 1.5
 * architecture (or another config set) without any download — so that loading from local disk
 * (`sd --weights DIR`) can be measured and tested like a real model.
 *
 * Usage:
 *   deno run -A scripts/synth.ts --out /tmp/sd15-synth [--precision f16|f32|both]
 *     [--tokenizer ../shared/fixtures/clip-tokenizer] [--configs DIR]
 *
 * `--configs DIR` takes `unet/`, `vae/`, `text_encoder/config.json` from a model folder (e.g.
 * tiny-sd); by default SD 1.5's. The tokenizer's vocab.json/merges.txt are copied from
 * `--tokenizer`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { ClipTextModel } from "../src/models/clip.ts";
import { loadConfigs, type ModelConfigs, sd15Configs } from "../src/models/config.ts";
import type { ParamStore } from "../src/models/params.ts";
import { UNet } from "../src/models/unet.ts";
import { Vae } from "../src/models/vae.ts";
import { type TensorToWrite, writeSafetensors } from "../src/weights/safetensors_writer.ts";
import { SD15_SCHEDULER_CONFIG } from "../scheduler/mod.ts";
import { join } from "../src/std/path.ts";
import { synthTensor, synthTensorF16 } from "../src/weights/synth.ts";

const { values: args } = parseArgs({
  options: {
    out: { type: "string" },
    precision: { type: "string", default: "f16" },
    tokenizer: { type: "string", default: "../shared/fixtures/clip-tokenizer" },
    configs: { type: "string" },
  },
});
if (!args.out) {
  console.error("sd synth: --out DIR is required");
  Deno.exit(2);
}
const out = args.out;
const precisions = args.precision === "both" ? ["f16", "f32"] : [args.precision!];
const configs: ModelConfigs = args.configs ? await loadConfigs(args.configs) : sd15Configs();

async function writeComponent(
  dir: string,
  base: string,
  store: ParamStore,
  prefix: string,
  extra: TensorToWrite[],
): Promise<void> {
  await Deno.mkdir(join(out, dir), { recursive: true });
  for (const p of precisions) {
    const tensors: TensorToWrite[] = store.params.map((param) => ({
      name: prefix + param.key,
      dtype: p === "f16" ? "F16" : "F32",
      shape: [...param.shape],
      data: p === "f16"
        ? synthTensorF16(param.key, param.shape)
        : synthTensor(param.key, param.shape),
    }));
    const file = join(out, dir, `${base}${p === "f16" ? ".fp16" : ""}.safetensors`);
    await writeSafetensors(file, [...tensors, ...extra], { format: "pt" });
    console.error(`wrote ${file} (${tensors.length} tensors)`);
  }
}

const json = (v: unknown) => JSON.stringify(v, null, 2) + "\n";
const unet = new UNet(configs.unet, "f32");
const vae = new Vae(configs.vae, "f32");
const text = new ClipTextModel(configs.text_encoder, "f32");
const positions = new BigInt64Array(configs.text_encoder.max_position_embeddings).map((_, i) =>
  BigInt(i)
);
await writeComponent("unet", "diffusion_pytorch_model", unet.store, "", []);
await writeComponent("vae", "diffusion_pytorch_model", vae.store, "", []);
await writeComponent("text_encoder", "model", text.store, "text_model.", [{
  name: "text_model.embeddings.position_ids",
  dtype: "I64",
  shape: [1, positions.length],
  data: positions,
}]);
await Deno.writeTextFile(
  join(out, "unet", "config.json"),
  json({ _class_name: "UNet2DConditionModel", ...configs.unet }),
);
await Deno.writeTextFile(
  join(out, "vae", "config.json"),
  json({ _class_name: "AutoencoderKL", ...configs.vae }),
);
await Deno.writeTextFile(
  join(out, "text_encoder", "config.json"),
  json({ architectures: ["CLIPTextModel"], ...configs.text_encoder }),
);
await Deno.mkdir(join(out, "scheduler"), { recursive: true });
await Deno.writeTextFile(
  join(out, "scheduler", "scheduler_config.json"),
  json(SD15_SCHEDULER_CONFIG),
);
await Deno.mkdir(join(out, "tokenizer"), { recursive: true });
for (const f of ["vocab.json", "merges.txt"]) {
  await Deno.copyFile(join(args.tokenizer!, f), join(out, "tokenizer", f));
}
console.error(`synthetic model folder: ${out}`);
