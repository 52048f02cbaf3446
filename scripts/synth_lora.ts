/**
 * Writes a synthetic kohya-format LoRA for SD 1.5's architecture — kohya's default targets (every
 * linear and 1×1 convolution of the UNet's transformer blocks, the text encoder's attention and
 * MLP), with `--locon` also the UNet ResNets' 3×3 convolutions — so that merging can be timed at
 * full size with `--model synth` where no real LoRA can be downloaded:
 *
 * ```sh
 * deno run -A scripts/synth_lora.ts /tmp/full.safetensors --rank 32 --locon
 * deno task sd "a cat" --model synth --steps 4 --lora /tmp/full.safetensors --profile
 * ```
 *
 * @module
 */

import { parseArgs } from "../src/std/args.ts";
import { sd15Configs } from "../src/models/config.ts";
import { UNet } from "../src/models/unet.ts";
import { ClipTextModel } from "../src/models/clip.ts";
import { type TensorToWrite, writeSafetensors } from "../src/weights/safetensors_writer.ts";

const { values, positionals } = parseArgs(Deno.args, {
  string: ["rank"],
  boolean: ["locon"],
});
const out = positionals[0];
if (!out) {
  console.error("usage: synth_lora.ts OUT.safetensors [--rank 32] [--locon]");
  Deno.exit(2);
}
const rank = Number(values.rank ?? 32);
const configs = sd15Configs();
const targets = [
  {
    prefix: "lora_unet_",
    params: new UNet(configs.unet, "f16").store.params,
    re: values.locon
      ? /(attn[12]\.to_(q|k|v|out\.0)|ff\.net\.(0\.proj|2)|proj_(in|out)|resnets\.\d+\.conv[12])\.weight$/
      : /(attn[12]\.to_(q|k|v|out\.0)|ff\.net\.(0\.proj|2)|proj_(in|out))\.weight$/,
  },
  {
    prefix: "lora_te_text_model_",
    params: new ClipTextModel(configs.text_encoder, "f16").store.params,
    re: /(self_attn\.(q|k|v|out)_proj|mlp\.fc[12])\.weight$/,
  },
];
let seed = 1;
const values01 = (n: number, scale: number) => {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    a[i] = ((seed / 2 ** 32) * 2 - 1) * scale;
  }
  return a;
};
const tensors: TensorToWrite[] = [];
for (const t of targets) {
  for (const p of t.params.filter((p) => t.re.test(p.key))) {
    const name = t.prefix + p.key.slice(0, -".weight".length).replaceAll(".", "_");
    const [o, i, kh = 1, kw = 1] = p.shape;
    const conv = p.shape.length === 4;
    const downShape = conv ? [rank, i, kh, kw] : [rank, i];
    const upShape = conv ? [o, rank, 1, 1] : [o, rank];
    tensors.push(
      {
        name: `${name}.lora_down.weight`,
        dtype: "F16",
        shape: downShape,
        data: values01(rank * i * kh * kw, 0.02),
      },
      {
        name: `${name}.lora_up.weight`,
        dtype: "F16",
        shape: upShape,
        data: values01(o * rank, 0.02),
      },
      { name: `${name}.alpha`, dtype: "F16", shape: [], data: new Float32Array([rank / 2]) },
    );
  }
}
await writeSafetensors(out, tensors, { ss_network_module: "networks.lora" });
console.log(`${out}: ${tensors.length / 3} modules, rank ${rank}`);
