/**
 * `resolveModel` on a locked model shaped like `sd15-inpaint` (only f16 weights, the UNet config
 * inline in the lock), with its files already in the cache and no server to reach: the precision
 * picks the files, the model hash comes from the lock, and the configs the pipeline loads are the
 * cached ones (9 UNet input channels).
 */

import { assert, assertEquals } from "../src/std/assert.ts";
import { join } from "../src/std/path.ts";
import { loadConfigs } from "../src/models/config.ts";
import { contentBytes, type LockedFile } from "../src/weights/lock.ts";
import { newSha256 } from "../src/weights/sha256.ts";
import { configDirOf, type ModelOptions, resolveModel } from "../src/weights/source.ts";
import { fixture } from "./fixtures.ts";
import { withTmp } from "./temp.ts";

const sha256 = (data: Uint8Array) => newSha256().update(data).digest("hex");

/** tiny-sd's f16 weights, tokenizer and configs; `unet/config.json` inline with 9 channels. */
async function inpaintLikeFiles(): Promise<{ files: LockedFile[]; copy: string[] }> {
  const copy = [
    "unet/diffusion_pytorch_model.fp16.safetensors",
    "text_encoder/model.fp16.safetensors",
    "vae/diffusion_pytorch_model.fp16.safetensors",
    "tokenizer/vocab.json",
    "tokenizer/merges.txt",
    "vae/config.json",
    "text_encoder/config.json",
    "scheduler/scheduler_config.json",
  ];
  const files: LockedFile[] = [];
  for (const path of copy) {
    const data = await Deno.readFile(fixture(`tiny-sd/${path}`));
    const f: LockedFile = { path, bytes: data.length, sha256: sha256(data) };
    if (path.endsWith(".fp16.safetensors")) f.variants = ["f16", "f32"];
    files.push(f);
  }
  const content = (await Deno.readTextFile(fixture("tiny-sd/unet/config.json")))
    .replace('"in_channels": 4,', '"in_channels": 9,');
  const data = contentBytes(content);
  files.push({ path: "unet/config.json", bytes: data.length, sha256: sha256(data), content });
  return { files, copy };
}

Deno.test("--model sd15-inpaint-like: f32 takes the f16 files, the hash is the lock's, the cached config says 9 channels", async () => {
  await withTmp(async (tmp) => {
    const { files, copy } = await inpaintLikeFiles();
    const revision = "8a4288a76071f7280aedbdb3253bdb9e9d5d84bb";
    const lock = {
      version: 1,
      models: { "sd15-inpaint": { revision, base: "http://127.0.0.1:1/inpaint/", files } },
    };
    const lockPath = join(tmp, "test.lock");
    await Deno.writeTextFile(lockPath, JSON.stringify(lock));
    // The weights copied into the cache by hand (nothing answers at 127.0.0.1:1).
    const cache = join(tmp, "cache");
    const modelDir = join(cache, "sd15-inpaint-8a4288a7");
    for (const path of copy) {
      await Deno.mkdir(join(modelDir, path, ".."), { recursive: true });
      await Deno.copyFile(fixture(`tiny-sd/${path}`), join(modelDir, path));
    }
    const saved = Deno.env.get("SD_CACHE");
    Deno.env.set("SD_CACHE", cache);
    try {
      const opts: ModelOptions = {
        model: "sd15-inpaint",
        weights: null,
        config: null,
        tokenizer: null,
        lock: lockPath,
        precision: "f32",
      };
      const resolved = await resolveModel(opts);
      assertEquals(resolved.source, { kind: "dir", dir: modelDir });
      assertEquals(resolved.name, "sd15-inpaint");
      const unet = files.find((f) => f.path === "unet/diffusion_pytorch_model.fp16.safetensors")!;
      assertEquals(await resolved.hash("f32"), unet.sha256.slice(0, 10));
      assertEquals(await resolved.hash("f16"), unet.sha256.slice(0, 10));
      const configs = await loadConfigs(configDirOf(resolved.source)!);
      assertEquals(configs.unet.in_channels, 9);
      assert(await Deno.stat(join(modelDir, "unet/config.json.verified")));
    } finally {
      if (saved === undefined) Deno.env.delete("SD_CACHE");
      else Deno.env.set("SD_CACHE", saved);
    }
  });
});
