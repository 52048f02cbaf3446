/**
 * LoRA files (src/weights/lora.ts): every key of the kohya and PEFT fixture files maps to a real
 * tiny-sd parameter with the modules the reference merged; bad files are one-line user errors;
 * A1111's short hash. With the merge (src/models/lora_merge.ts): the text encoder's states with
 * the LoRAs merged against the reference's `text.uncond_cond` (f32, relative L2 < 1e-4).
 */

import { assert, assertEquals, assertRejects } from "../src/std/assert.ts";
import { join } from "../src/std/path.ts";
import { UserError } from "../src/errors.ts";
import { ClipTextModel } from "../src/models/clip.ts";
import { loadConfigs } from "../src/models/config.ts";
import { UNet } from "../src/models/unet.ts";
import { LoraMerger, type LoraRequest } from "../src/models/lora_merge.ts";
import { StableDiffusion } from "../src/pipeline.ts";
import { SafeTensorsFile } from "../src/weights/safetensors.ts";
import { loraShortHash, type LoraTargets, loraTargets, readLora } from "../src/weights/lora.ts";
import { sha256File } from "../src/weights/sha256.ts";
import { fixture } from "./fixtures.ts";
import { badLoraFiles, loraCases, partlyMatchingLora, writeLora } from "./lora_files.ts";
import { hasGpu, relL2, testGpu } from "./gpu.ts";

async function tinyTargets(): Promise<LoraTargets> {
  const configs = await loadConfigs(fixture("tiny-sd"));
  return loraTargets({
    unet: new UNet(configs.unet, "f32").store,
    text_encoder: new ClipTextModel(configs.text_encoder, "f32").store,
  });
}

Deno.test("lora: every module of the kohya and PEFT files maps to a tiny-sd parameter", async () => {
  const targets = await tinyTargets();
  const cases = await loraCases();
  const expected = new Map<string, { component: string; module: string; alpha: number }[]>();
  for (const c of cases) {
    // The reference lists the modules of every file it merged, in file order.
    let at = 0;
    for (const l of c.loras) {
      const file = await readLora(fixture(`features/${l.file}`), targets);
      const mine = file.modules.map((m) => ({
        component: m.component === "unet" ? "unet" : "te",
        module: m.key.replace(/\.weight$/, ""),
        alpha: m.alpha,
      }));
      expected.set(l.file, mine);
      assertEquals(file.unmatched, [], `${l.file}: unmatched modules`);
      const src = await SafeTensorsFile.open(fixture(`features/${l.file}`));
      const halves = [...src.tensors.keys()].filter((k) => !k.endsWith(".alpha")).length;
      src.close();
      assertEquals(2 * file.modules.length, halves, `${l.file}: every down/up pair is used`);
      for (const m of file.modules) {
        const shape = targets[m.component].get(m.key)!;
        assert(shape, `${m.key} is a real parameter`);
        assertEquals(m.up.length, shape[0] * m.rank);
        assertEquals(m.down.length * shape[0], shape.reduce((a, b) => a * b, 1) * m.rank);
      }
      const ref = c.merged_modules.slice(at, at + mine.length);
      at += mine.length;
      const sort = <T extends { module: string }>(xs: T[]) =>
        [...xs].sort((a, b) => a.module.localeCompare(b.module));
      assertEquals(
        sort(mine).map((m) => [m.component, m.module, m.alpha]),
        sort(ref).map((m) => [m.target, m.module, m.alpha]),
        `${c.key}: ${l.file} merges the reference's modules`,
      );
    }
  }
  assert(expected.size === 2, "both files checked");
});

Deno.test("lora: bad files are one-line user errors naming the file and the key", async () => {
  const targets = await tinyTargets();
  const dir = await Deno.makeTempDir({ prefix: "sd-lora-" });
  try {
    for (const bad of await badLoraFiles(dir)) {
      const e = await assertRejects(() => readLora(bad.path, targets), bad.says);
      assert(e instanceof UserError, `${bad.path}: a UserError (${e.name})`);
      assert(e.message.startsWith(bad.path), `names the file: ${e.message}`);
      assert(!e.message.includes("\n"), `one line: ${e.message}`);
    }
    // Some modules unmatched: used, with the rest counted (the caller warns).
    const partly = await partlyMatchingLora(dir);
    const f = await readLora(partly, targets);
    assertEquals(f.modules.length, 1);
    assertEquals(f.unmatched, ["lora_unet_no_such_module"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("lora: A1111's short hash is sha256 of the data after the header, or sshs_model_hash", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sd-lora-" });
  try {
    const t = { "a.lora_down.weight": { shape: [1, 2] }, "a.lora_up.weight": { shape: [2, 1] } };
    const plain = await writeLora(dir, "a.safetensors", t);
    const bytes = await Deno.readFile(plain);
    const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    const data = join(dir, "data.bin");
    await Deno.writeFile(data, bytes.subarray(8 + headerLen));
    assertEquals(await loraShortHash(plain), (await sha256File(data)).slice(0, 12));
    const given = await writeLora(dir, "b.safetensors", t, { sshs_model_hash: "0123456789abcdef" });
    assertEquals(await loraShortHash(given), "0123456789ab");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "lora: text encoder states with the LoRAs merged vs reference (f32, rel L2 < 1e-4)",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await testGpu())!;
    const sd = await StableDiffusion.load(gpu, { kind: "dir", dir: fixture("tiny-sd") }, {
      precision: "f32",
    });
    const merger = new LoraMerger(gpu, { unet: sd.unet.store, text_encoder: sd.text.store });
    const g = await SafeTensorsFile.open(fixture("features/tiny-sd-features.safetensors"));
    const errors: string[] = [];
    try {
      const base = await (await sd.encodeText("a watercolor landscape", "blurry", true)).read();
      for (const c of await loraCases()) {
        const reqs: LoraRequest[] = c.loras.map((l) => ({
          path: fixture(`features/${l.file}`),
          te: l.scale,
          unet: l.scale,
        }));
        await merger.use(reqs);
        const got = await (await merger.withText(() =>
          sd.encodeText(c.prompt, c.negative_prompt, true)
        )).read();
        const want = await g.readF32(`${c.key}.text.uncond_cond`);
        const e = relL2(got, want);
        console.error(`${c.key}: text.uncond_cond rel L2 ${e.toExponential(2)}`);
        if (!(e < 1e-4)) errors.push(`${c.key}: rel L2 ${e.toExponential(2)}`);
      }
      // withText undoes its merge: the plain encoder is back.
      const after = await (await sd.encodeText("a watercolor landscape", "blurry", true)).read();
      assertEquals(relL2(after, base), 0, "text encoder restored exactly");
    } finally {
      g.close();
      merger.reset();
      sd.unet.store.release();
      sd.text.store.release();
      sd.vae.store.release();
    }
    assert(errors.length === 0, errors.join("\n"));
  },
});
