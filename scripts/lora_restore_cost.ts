/**
 * What undoing a LoRA merge costs, to choose how jobs with different LoRAs are kept apart:
 * 1. the bytes a typical SD 1.5 LoRA touches (kohya's default targets: every linear and 1×1
 *    convolution of the UNet's transformer blocks and the text encoder's attention and MLP;
 *    LoCon adds the ResNet 3×3 convolutions, stored as their Winograd transforms);
 * 2. on this machine's adapter, per SD-sized weight: restoring a kept GPU copy (a buffer copy),
 *    unmerging (the merge kernel again with −scale; inexact in f16) and re-uploading the
 *    original from host memory.
 *
 * Usage: `deno run -A scripts/lora_restore_cost.ts [--precision f16|f32] [--rank 32]`
 *
 * @module
 */

import { parseArgs } from "../src/std/args.ts";
import { Gpu } from "../src/gpu/device.ts";
import { Tensor } from "../src/gpu/tensor.ts";
import { sd15Configs } from "../src/models/config.ts";
import { UNet } from "../src/models/unet.ts";
import { ClipTextModel } from "../src/models/clip.ts";
import { addLowRank } from "../src/ops/lora_merge.ts";

const { values } = parseArgs(Deno.args, { string: ["precision", "rank"] });
const dtype = (values.precision ?? "f16") as "f16" | "f32";
const rank = Number(values.rank ?? 32);
const elt = dtype === "f16" ? 2 : 4;

// 1. Bytes touched.
const configs = sd15Configs();
const unet = new UNet(configs.unet, dtype).store;
const text = new ClipTextModel(configs.text_encoder, dtype).store;
const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const attention = /(attn[12]\.to_(q|k|v|out\.0)|ff\.net\.(0\.proj|2)|proj_(in|out))\.weight$/;
const resnetConv = /resnets\.\d+\.conv[12]\.weight$/;
const teLinear = /(self_attn\.(q|k|v|out)_proj|mlp\.fc[12])\.weight$/;
const sum = (ps: { key: string; shape: readonly number[] }[], re: RegExp, factor = 1) =>
  ps.filter((p) => re.test(p.key)).reduce((a, p) => a + numel(p.shape) * elt * factor, 0);
const gb = (b: number) => `${(b / 1e9).toFixed(3)} GB`;
const unetAttn = sum(unet.params, attention);
const unetConv = sum(unet.params, resnetConv, 16 / 9); // Winograd transforms: 16/9 × (+ padding)
const te = sum(text.params, teLinear);
console.log(`SD 1.5, ${dtype}: UNet ${gb(unet.count * elt)}, text encoder ${gb(text.count * elt)}`);
console.log(`  LoRA (kohya default targets): UNet ${gb(unetAttn)}, text encoder ${gb(te)}`);
console.log(`  LoCon adds the ResNet 3×3 convolutions' transforms: ${gb(unetConv)}`);

// 2. Time per operation on SD-sized weights.
const gpu = await Gpu.create({});
console.log(`adapter: ${gpu.description}`);
const shapes = [[320, 320], [1280, 1280], [10240, 1280], [1280, 5120]];
const time = async (fn: () => void, reps = 3) => {
  fn();
  await gpu.flush();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) fn();
  await gpu.flush();
  return (performance.now() - t0) / reps;
};
for (const [o, i] of shapes) {
  const host = new Float32Array(o * i).map((_, k) => Math.sin(k));
  const typed = dtype === "f16" ? new Float16Array(host) : host;
  const w = Tensor.from(gpu, typed, [o, i], dtype);
  const copy = Tensor.from(gpu, typed, [o, i], dtype);
  const up = Tensor.from(gpu, new Float32Array(o * rank).fill(0.01), [o, rank], "f32");
  const down = Tensor.from(gpu, new Float32Array(rank * i).fill(0.01), [rank, i], "f32");
  const restore = await time(() => gpu.copy(copy.buffer, 0, w.buffer, 0, w.bytes));
  const unmerge = await time(() => addLowRank(w, up, down, -1));
  const upload = await time(() => gpu.write(w.buffer, typed));
  console.log(
    `  [${o}, ${i}] ${(w.bytes / 1e6).toFixed(1)} MB: copy back ${restore.toFixed(2)} ms, ` +
      `unmerge (rank ${rank}) ${unmerge.toFixed(2)} ms, re-upload ${upload.toFixed(2)} ms`,
  );
  for (const t of [w, copy, up, down]) t.release();
}
