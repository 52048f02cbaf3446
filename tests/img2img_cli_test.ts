/**
 * Image-to-image and inpainting through the `sd` command (a subprocess): every img2img/inpaint
 * case of the features fixtures with its own `cli` arguments, in f32 (image max abs < 0.02 + 1/255)
 * and f16 (mean abs < 0.01), with `Denoising strength` in the PNG; and the bad inputs — each one
 * line on stderr, exit 2, no file — and the inputs that are converted (alpha, grayscale, a mask
 * of another size, batch lines).
 */

import { assert, assertEquals } from "../src/std/assert.ts";
import { join } from "../src/std/path.ts";
import { encodePng } from "../src/png.ts";
import * as png from "imagescript/png/src/png.mjs";
import { SafeTensorsFile } from "../src/weights/safetensors.ts";
import { fixture } from "./fixtures.ts";
import { hasGpu, testGpu } from "./gpu.ts";
import { oneErrorLine, pngText, sd } from "./sd_command.ts";
import { decodePng, imageError, withinImageTolerance } from "./image_compare.ts";
import { listDir, withTmp } from "./temp.ts";
import { imageCases } from "./features.ts";

const TINY = ["--weights", fixture("tiny-sd"), "--steps", "2", "--quiet"];

/** imagescript's PNG encoder: any channel count and bit depth in the header. */
const encodeAny = (png as unknown as {
  encode(
    data: Uint8Array,
    o: { width: number; height: number; channels: number; depth?: number },
  ): Uint8Array;
}).encode;

/** A w×h RGB test pattern (smooth gradients, so resizing and encoding are exercised). */
function pattern(w: number, h: number): Uint8Array {
  const rgb = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = 3 * (y * w + x);
      rgb[i] = (255 * x) / (w - 1);
      rgb[i + 1] = (255 * y) / (h - 1);
      rgb[i + 2] = (x * y) % 256;
    }
  }
  return rgb;
}

/** A w×h mask: white (repaint) in the right half. */
function halfMask(w: number, h: number): Uint8Array {
  const rgb = new Uint8Array(w * h * 3);
  for (let p = 0; p < w * h; p++) if (p % w >= w / 2) rgb.fill(255, 3 * p, 3 * p + 3);
  return rgb;
}

for (const precision of ["f32", "f16"] as const) {
  Deno.test({
    name: `img2img CLI: every img2img/inpaint features case through \`sd\` (${precision})`,
    ignore: !hasGpu,
    async fn() {
      const gpu = (await testGpu())!;
      if (precision === "f16" && !gpu.hasF16) return;
      const g = await SafeTensorsFile.open(fixture("features/tiny-sd-features.safetensors"));
      const report: string[] = [], failures: string[] = [];
      try {
        await withTmp(async (dir) => {
          for (const c of await imageCases()) {
            const out = join(dir, `${c.key}.png`);
            const r = await sd(fixture("features"), [
              ...c.cli,
              "--precision",
              precision,
              "--out",
              out,
              "--quiet",
            ]);
            assertEquals(r.code, 0, `${c.key}: ${r.stderr}`);
            const bytes = await Deno.readFile(out);
            const text = pngText(bytes).parameters;
            assert(text.includes(`Denoising strength: ${c.strength},`), text);
            const img = decodePng(bytes);
            assertEquals([img.width, img.height], [c.width, c.height], c.key);
            const e = imageError(img, await g.readF32(`${c.key}.image`));
            report.push(`${c.key}: max ${e.max.toFixed(4)} mean ${e.mean.toExponential(2)}`);
            if (!withinImageTolerance(precision, e)) failures.push(report.at(-1)!);
          }
        });
      } finally {
        g.close();
      }
      console.error(`${precision}:\n  ${report.join("\n  ")}`);
      assertEquals(failures, []);
    },
  });
}

Deno.test({
  name: "img2img CLI: bad inputs → one line, exit 2, no file",
  ignore: !hasGpu,
  async fn() {
    await withTmp(async (dir) => {
      await Deno.writeFile(join(dir, "init.png"), encodePng(pattern(64, 64), 64, 64));
      await Deno.writeFile(join(dir, "mask.png"), encodePng(halfMask(64, 64), 64, 64));
      await Deno.writeFile(join(dir, "small.png"), encodePng(pattern(40, 40), 40, 40));
      await Deno.writeTextFile(join(dir, "notes.png"), "not an image\n");
      await Deno.writeFile(
        join(dir, "deep.png"),
        encodeAny(pattern(64, 64), { width: 64, height: 64, channels: 3, depth: 16 }),
      );
      const cases: [string[], string][] = [
        [["--init-image", "missing.png"], "--init-image missing.png: cannot read it"],
        [["--init-image", "notes.png"], "--init-image notes.png: not a PNG or JPEG image"],
        [["--init-image", "deep.png"], "a 16-bit PNG is not supported"],
        [["--init-image", "init.png", "--mask", "notes.png"], "--mask notes.png: not a PNG"],
        [["--mask", "mask.png"], "--mask needs an init image"],
        [["--strength", "0.5"], "--strength applies to an init image"],
        [["--init-image", "init.png", "--strength", "0"], "--strength 0 is out of range"],
        [["--init-image", "init.png", "--strength", "1.5"], "--strength 1.5 is out of range"],
        [["--init-image", "init.png", "--strength", "x"], "--strength x is not a decimal number"],
        [["--init-image", "small.png"], "the width of --init-image small.png: 40 is out of range"],
        [["--init-image", "init.png", "--strength", "0.1"], "leaves no denoising step"],
      ];
      for (const [args, message] of cases) {
        const r = await sd(dir, [...TINY, "a cat", ...args]);
        assertEquals(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
        oneErrorLine(r, message);
        assertEquals(listDir(dir), ["deep.png", "init.png", "mask.png", "notes.png", "small.png"]);
      }
    });
  },
});

Deno.test({
  name:
    "img2img CLI: alpha and grayscale are converted as PIL's convert('RGB'); other mask sizes resized; batch lines",
  ignore: !hasGpu,
  async fn() {
    await withTmp(async (dir) => {
      const rgb = pattern(64, 64);
      const rgba = new Uint8Array(64 * 64 * 4);
      const gray = new Uint8Array(64 * 64);
      for (let p = 0; p < 64 * 64; p++) {
        rgba.set(rgb.subarray(3 * p, 3 * p + 3), 4 * p);
        rgba[4 * p + 3] = p % 251; // any alpha: dropped
        gray[p] = rgb[3 * p];
      }
      const grayRgb = Uint8Array.from({ length: 3 * 64 * 64 }, (_, i) => gray[Math.floor(i / 3)]);
      const files: Record<string, Uint8Array> = {
        "rgb.png": encodePng(rgb, 64, 64),
        "rgba.png": encodeAny(rgba, { width: 64, height: 64, channels: 4 }),
        "gray.png": encodeAny(gray, { width: 64, height: 64, channels: 1 }),
        "gray-rgb.png": encodePng(grayRgb, 64, 64),
        "mask.png": encodePng(halfMask(64, 64), 64, 64),
        "mask-small.png": encodePng(halfMask(32, 32), 32, 32),
      };
      for (const [name, bytes] of Object.entries(files)) {
        await Deno.writeFile(join(dir, name), bytes);
      }
      // One process (the model loads once; its first image-to-image line uploads the encoder):
      // jobs whose images must give the same PNG, and bad lines, which fail alone.
      const job = (out: string, init: string, extra: Record<string, unknown> = {}) =>
        JSON.stringify({ prompt: "a cat", seed: 3, init_image: init, out, ...extra });
      const jobs = [
        job("a.png", "rgba.png"),
        job("b.png", "rgb.png"),
        job("c.png", "gray.png"),
        job("d.png", "gray-rgb.png"),
        // A 32×32 mask for a 64×64 image: resized (Lanczos, then binarized) like diffusers.
        job("e.png", "rgb.png", { mask: "mask-small.png" }),
        job("f.png", "rgb.png", { mask: "mask.png" }),
        JSON.stringify({ prompt: "a cat", mask: "mask.png" }),
        job("x.png", "rgb.png", { strength: 2 }),
        job("y.png", "missing.png"),
      ].join("\n");
      const r = await sd(dir, [...TINY, "-"], { stdin: jobs });
      assertEquals(r.code, 1, r.stderr);
      const read = (name: string) => Deno.readFile(join(dir, name));
      assertEquals(await read("a.png"), await read("b.png"), "RGBA = RGB");
      assertEquals(await read("c.png"), await read("d.png"), "gray = RGB with R = G = B");
      assertEquals(await read("e.png"), await read("f.png"), "resized mask");
      assert(pngText(await read("e.png")).parameters.includes("Denoising strength: 1,"));
      assert(pngText(await read("b.png")).parameters.includes("Denoising strength: 0.8,"));
      const errors = r.stderr.trim().split("\n").filter((l) => l.startsWith("sd: line"));
      assertEquals(errors.length, 3, r.stderr);
      assert(errors[0].includes('line 7: "mask" needs an init image'), errors[0]);
      assert(errors[1].includes('line 8: "strength": 2 is out of range'), errors[1]);
      assert(errors[2].includes('line 9: "init_image" missing.png: cannot read it'), errors[2]);
      assert(!listDir(dir).some((f) => ["x.png", "y.png"].includes(f)), "no file for a bad line");
      // The command line and a batch line give the same image.
      const single = await sd(dir, [...TINY, "a cat", "--seed", "3", "--init-image", "rgb.png"]);
      assertEquals(single.code, 0, single.stderr);
      assertEquals(await read(single.stdout.trim()), await read("b.png"));
    });
  },
});
