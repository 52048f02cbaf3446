/**
 * Wrong or incomplete weights get the right advice, as a user sees it (the `sd` command as a
 * subprocess): an empty folder, a folder without its UNet, `sd fetch --weights`, a single-file
 * checkpoint of another size — each one line with its exact first words, its exit code, and no
 * file left behind (no image, no cache folder).
 */

import { assert, assertEquals } from "../src/std/assert.ts";
import { join } from "../src/std/path.ts";
import { DIFFUSERS_LAYOUT, missingFromFolder } from "../src/weights/source.ts";
import { TINY, TINY_ARGS } from "./bad_inputs.ts";
import { fixture } from "./fixtures.ts";
import { hasGpu } from "./gpu.ts";
import { oneErrorLine, sd } from "./sd_command.ts";
import { withTmp } from "./temp.ts";

/** A copy of the tiny-sd folder in `dest`. */
function copyTiny(dest: string): string {
  for (const e of Deno.readDirSync(TINY)) {
    if (!e.isDirectory) {
      Deno.copyFileSync(join(TINY, e.name), join(dest, e.name));
      continue;
    }
    Deno.mkdirSync(join(dest, e.name), { recursive: true });
    for (const f of Deno.readDirSync(join(TINY, e.name))) {
      Deno.copyFileSync(join(TINY, e.name, f.name), join(dest, e.name, f.name));
    }
  }
  return dest;
}

/** Every name in `dir` (one level), sorted. */
function names(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
}

Deno.test("missingFromFolder: a whole folder lacks nothing; each missing part is named", async () => {
  await withTmp((dir) => {
    assertEquals(missingFromFolder(TINY), []);
    assertEquals(missingFromFolder(dir), [
      "unet/",
      "vae/",
      "text_encoder/",
      "tokenizer/",
      "scheduler/scheduler_config.json",
    ]);
    const model = copyTiny(join(dir, "model"));
    Deno.removeSync(join(model, "unet", "diffusion_pytorch_model.safetensors"));
    assertEquals(missingFromFolder(model), [], "one of f16/f32 is enough");
    Deno.removeSync(join(model, "unet", "diffusion_pytorch_model.fp16.safetensors"));
    Deno.removeSync(join(model, "tokenizer", "merges.txt"));
    assertEquals(missingFromFolder(model), [
      "unet/diffusion_pytorch_model[.fp16].safetensors",
      "tokenizer/merges.txt",
    ]);
  });
});

Deno.test("sd --weights EMPTY: not a Stable Diffusion folder, what one holds, exit 2, no file", async () => {
  await withTmp(async (dir) => {
    Deno.mkdirSync(join(dir, "empty"));
    const r = await sd(dir, ["a cat", "--weights", "empty"]);
    assertEquals(r.code, 2, r.stderr);
    oneErrorLine(r, "");
    assertEquals(
      r.stderr.trim(),
      `sd: --weights empty is not a Stable Diffusion folder (no model_index.json, no unet/); a ` +
        `diffusers folder holds ${DIFFUSERS_LAYOUT}; or give a .safetensors checkpoint`,
    );
    assertEquals(names(dir), ["empty"]);
    assertEquals(names(join(dir, "empty")), []);
  });
});

Deno.test("sd --weights DIR without its UNet: names the missing file, no `sd fetch` advice, exit 2", async () => {
  await withTmp(async (dir) => {
    const model = copyTiny(join(dir, "model"));
    for (
      const f of ["diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors"]
    ) {
      Deno.removeSync(join(model, "unet", f));
    }
    const r = await sd(dir, ["a cat", "--weights", "model"]);
    assertEquals(r.code, 2, r.stderr);
    oneErrorLine(r, "");
    const line = r.stderr.trim();
    assert(
      line.startsWith(
        `sd: --weights model lacks unet/diffusion_pytorch_model[.fp16].safetensors; a diffusers folder holds unet/, vae/, text_encoder/`,
      ),
      line,
    );
    assert(!line.includes("sd fetch"), line);

    Deno.removeSync(join(model, "unet"), { recursive: true });
    const gone = await sd(dir, ["a cat", "--weights", "model"]);
    assertEquals(gone.code, 2, gone.stderr);
    assert(gone.stderr.startsWith("sd: --weights model lacks unet/; a diffusers folder holds "));
    assertEquals(names(dir), ["model"], "no image, no cache folder");
  });
});

Deno.test("sd fetch --weights DIR: a usage error saying what fetch does, exit 2, nothing fetched", async () => {
  await withTmp(async (dir) => {
    const r = await sd(dir, ["fetch", "--weights", TINY]);
    assertEquals(r.code, 2, r.stderr);
    oneErrorLine(r, "");
    assert(
      r.stderr.startsWith(
        "sd: sd fetch downloads a model of the weights lock into the cache (--model NAME); --weights names local files, which have nothing to fetch",
      ),
      r.stderr,
    );
    assertEquals(r.stdout, "");
    assertEquals(names(dir), [], "no cache folder");
  });
});

Deno.test({
  name:
    "a single-file checkpoint of another size: counts, the first mismatch, --config advice, exit 1",
  ignore: !hasGpu,
  fn: async () => {
    await withTmp(async (dir) => {
      const file = fixture("tiny-sd-single.fp16.safetensors");
      const size = TINY_ARGS.slice(2); // --width 64 --height 64 …, without tiny-sd's --weights
      const tokenizer = fixture("clip-tokenizer");
      const r = await sd(dir, ["a cat", "--weights", file, "--tokenizer", tokenizer, ...size]);
      assertEquals(r.code, 1, r.stderr);
      oneErrorLine(r, "");
      const line = r.stderr.trim();
      assert(
        line.startsWith(
          `sd: ${file} does not match the text_encoder config: 52 tensors of another shape (e.g. embeddings.token_embedding.weight is [49408,32], not [49408,768]), 144 missing; `,
        ),
        line,
      );
      assert(
        line.endsWith(
          "add --config DIR with this SD 1.x model's diffusers configs (SD 2.x and SDXL are not supported)",
        ),
        line,
      );
      assertEquals(names(dir), [], "no image");
    });
  },
});
