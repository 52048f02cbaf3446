/**
 * Times merging a LoRA into the synthetic SD 1.5 model, CPU and GPU parts apart:
 *
 * ```sh
 * deno run -A scripts/synth_lora.ts /tmp/lora64.safetensors --rank 64
 * deno run -A scripts/lora_bench.ts /tmp/lora64.safetensors [--tokenizer DIR]
 * ```
 *
 * @module
 */

import { parseArgs } from "../src/std/args.ts";
import { Gpu } from "../src/gpu/device.ts";
import { sd15Configs } from "../src/models/config.ts";
import { UNet } from "../src/models/unet.ts";
import { ClipTextModel } from "../src/models/clip.ts";
import { SynthSource } from "../src/models/sources.ts";
import { LoraMerger } from "../src/models/lora_merge.ts";
import { loraTargets, readLora } from "../src/weights/lora.ts";

const { values, positionals } = parseArgs(Deno.args, { string: ["rounds"] });
const path = positionals[0];
if (!path) {
  console.error("usage: lora_bench.ts LORA.safetensors [--rounds 2]");
  Deno.exit(2);
}
const gpu = await Gpu.create();
const precision = gpu.hasF16 ? "f16" : "f32";
const configs = sd15Configs();
const sd = {
  unet: new UNet(configs.unet, precision),
  text: new ClipTextModel(configs.text_encoder, precision),
};
let t = performance.now();
await sd.text.store.load(gpu, new SynthSource());
await sd.unet.store.load(gpu, new SynthSource());
await gpu.flush();
console.log(
  `${gpu.description}, ${precision}: synthetic UNet and text encoder loaded in ${
    (performance.now() - t).toFixed(0)
  } ms`,
);

// Counts and CPU time of buffer creation, writes and submits.
const counts = {
  createBuffer: 0,
  mapped: 0,
  writeBuffer: 0,
  submit: 0,
  submitMs: 0,
  ms: 0,
};
const device = gpu.device;
const createBuffer = device.createBuffer.bind(device);
device.createBuffer = (d: GPUBufferDescriptor) => {
  const t = performance.now();
  counts.createBuffer++;
  if (d.mappedAtCreation) counts.mapped++;
  const b = createBuffer(d);
  counts.ms += performance.now() - t;
  return b;
};
const writeBuffer = device.queue.writeBuffer.bind(device.queue);
device.queue.writeBuffer = ((...a: Parameters<GPUQueue["writeBuffer"]>) => {
  const t = performance.now();
  counts.writeBuffer++;
  writeBuffer(...a);
  counts.ms += performance.now() - t;
}) as GPUQueue["writeBuffer"];
const submit = device.queue.submit.bind(device.queue);
device.queue.submit = (c: GPUCommandBuffer[]) => {
  counts.submit++;
  const t = performance.now();
  submit(c);
  counts.submitMs += performance.now() - t;
};
const count = () => {
  const s =
    `${counts.createBuffer} buffers created (${counts.mapped} mapped), ${counts.writeBuffer} writeBuffer, ${counts.submit} submits (${
      counts.submitMs.toFixed(0)
    } ms), ${counts.ms.toFixed(0)} ms in create/write`;
  Object.assign(counts, {
    createBuffer: 0,
    mapped: 0,
    writeBuffer: 0,
    submit: 0,
    submitMs: 0,
    ms: 0,
  });
  return s;
};
// Upload paths, 32 × 1 MiB each.
{
  const data = new Uint8Array(1 << 20).fill(1);
  const dst = device.createBuffer({ size: 1 << 20, usage: GPUBufferUsage.COPY_DST });
  const t0 = performance.now();
  for (let i = 0; i < 32; i++) {
    const s = device.createBuffer({
      size: 1 << 20,
      usage: GPUBufferUsage.COPY_SRC,
      mappedAtCreation: true,
    });
    new Uint8Array(s.getMappedRange()).set(data);
    s.unmap();
    s.destroy();
  }
  const t1 = performance.now();
  for (let i = 0; i < 32; i++) device.queue.writeBuffer(dst, 0, data);
  const t2 = performance.now();
  await device.queue.onSubmittedWorkDone();
  console.log(
    `1 MiB upload: mappedAtCreation ${((t1 - t0) / 32).toFixed(2)} ms, writeBuffer ${
      ((t2 - t1) / 32).toFixed(2)
    } ms (+ ${(performance.now() - t2).toFixed(0)} ms wait for 32)`,
  );
  dst.destroy();
}
const ms = (a: number, b: number) => `${(b - a).toFixed(0)} ms`;

t = performance.now();
const file = await readLora(
  path,
  loraTargets({ unet: sd.unet.store, text_encoder: sd.text.store }),
);
console.log(`readLora: ${ms(t, performance.now())} (${file.modules.length} modules)`);

const merger = new LoraMerger(gpu, { unet: sd.unet.store, text_encoder: sd.text.store });
const rounds = Number(values.rounds ?? 2);
for (let round = 0; round < rounds; round++) {
  count();
  const t0 = performance.now();
  await merger.use([{ path, te: 1, unet: 1 }]);
  const t1 = performance.now();
  await gpu.flush();
  const t2 = performance.now();
  console.log(
    `use #${round + 1}: ${ms(t0, t2)} (JS ${ms(t0, t1)}${
      round === 0 ? ", reading included" : ""
    }, flush ${ms(t1, t2)}); ${count()}`,
  );
  const t3 = performance.now();
  merger.withText(() => {});
  const t4 = performance.now();
  await gpu.flush();
  const t5 = performance.now();
  console.log(`withText: ${ms(t3, t5)} (JS ${ms(t3, t4)}, flush ${ms(t4, t5)}); ${count()}`);
  const t6 = performance.now();
  merger.reset();
  const t7 = performance.now();
  await gpu.flush();
  console.log(`reset: ${ms(t6, performance.now())} (JS ${ms(t6, t7)}); ${count()}`);
  t = performance.now();
}
