/**
 * src/image.ts: decoding, PIL's Lanczos resize (against PIL itself when the odd-size golden
 * holds its `resize.*` keys), the luma and mask rules of diffusers' mask processor, the latent
 * mask and the masked image.
 */

import { assert, assertEquals } from "../src/std/assert.ts";
import { fromFileUrl } from "../src/std/path.ts";
import { existsSync } from "../src/std/fs.ts";
import {
  binarizeMask,
  defaultSize,
  latentMask,
  maskedImage,
  type Pixels,
  readImage,
  resizeLanczos,
  toLuma,
  toModelInput,
} from "../src/image.ts";
import { SafeTensorsFile } from "../src/weights/safetensors.ts";
import { fixture } from "./fixtures.ts";

const GOLDEN = fromFileUrl(new URL("./fixtures/odd-size-golden.safetensors", import.meta.url));

const rgb = (w: number, h: number, f: (x: number, y: number, c: number) => number): Pixels => {
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) data[(y * w + x) * 3 + c] = f(x, y, c);
  }
  return { width: w, height: h, channels: 3, data };
};

Deno.test("readImage: the features init image as 8-bit RGB; model input 2·v/255 − 1", async () => {
  const img = await readImage(fixture("features/init-128x96.png"), "--init-image");
  assertEquals([img.width, img.height, img.channels, img.data.length], [128, 96, 3, 128 * 96 * 3]);
  const x = toModelInput(img);
  assertEquals(x.length, 3 * 128 * 96);
  const model = (v: number) => Math.fround(Math.fround(2 * Math.fround(v / 255)) - 1);
  assertEquals(x[0], model(img.data[0]));
  assertEquals(x[128 * 96], model(img.data[1])); // G plane
  assert(x.every((v) => v >= -1 && v <= 1));
});

Deno.test("resizeLanczos: identity, constant images stay constant, symmetric", () => {
  const src = rgb(40, 30, (x, y, c) => (x * 6 + y * 3 + c * 50) % 256);
  assertEquals(resizeLanczos(src, 40, 30), src);
  const flat = rgb(37, 23, () => 173);
  for (const [w, h] of [[64, 48], [16, 8], [37, 50]]) {
    assert(resizeLanczos(flat, w, h).data.every((v) => v === 173), `${w}×${h}`);
  }
  // A left-right symmetric image stays symmetric.
  const sym = rgb(20, 10, (x) => Math.abs(2 * x - 19) * 13);
  const r = resizeLanczos(sym, 32, 16);
  for (let y = 0; y < 16; y++) {
    for (let x = 0; x < 32; x++) {
      assertEquals(r.data[(y * 32 + x) * 3], r.data[(y * 32 + 31 - x) * 3], `${x},${y}`);
    }
  }
});

Deno.test({
  name: "resizeLanczos: PIL's Image.resize(LANCZOS) bit for bit (odd-size golden's resize keys)",
  async fn() {
    if (!existsSync(GOLDEN)) {
      throw new Error(
        `missing ${GOLDEN}: make it with python3 scripts/odd_size_goldens.py (see tests/odd_size_test.ts)`,
      );
    }
    const g = await SafeTensorsFile.open(GOLDEN);
    try {
      const keys = [...g.tensors.keys()].filter((k) => k.startsWith("resize.lanczos."));
      if (keys.length === 0) {
        console.warn("odd-size golden made without PIL: no resize keys to compare");
        return;
      }
      const srcValues = await g.readF32("resize.src");
      const [sh, sw] = g.tensors.get("resize.src")!.shape;
      const src: Pixels = {
        width: sw,
        height: sh,
        channels: 3,
        data: Uint8Array.from(srcValues),
      };
      for (const key of keys) {
        const [w, h] = key.slice("resize.lanczos.".length).split("x").map(Number);
        const want = await g.readF32(key);
        const got = resizeLanczos(src, w, h).data;
        const diff = want.reduce((n, v, i) => n + (v === got[i] ? 0 : 1), 0);
        assertEquals(diff, 0, `${key}: ${diff} values differ from PIL`);
      }
    } finally {
      g.close();
    }
  },
});

Deno.test("toLuma, binarizeMask: PIL's convert('L') and diffusers' binarize (≥ 0.5 → 1)", () => {
  const img = rgb(
    4,
    1,
    (x, _y, c) => [[255, 0, 0], [0, 255, 0], [127, 127, 127], [128, 128, 128]][x][c],
  );
  assertEquals([...toLuma(img).data], [76, 150, 127, 128]);
  assertEquals([...binarizeMask(img)], [0, 1, 0, 1]);
});

Deno.test("defaultSize, latentMask, maskedImage", () => {
  assertEquals(defaultSize(rgb(517, 300, () => 0)), { width: 512, height: 296 });
  // 16×8 mask: repaint columns ≥ 9 → latent columns j with mask[0, 8j]: j = 1 only from 8 → 0.
  const mask = new Float32Array(16 * 8).map((_, i) => (i % 16) >= 9 ? 1 : 0);
  assertEquals([...latentMask(mask, 16, 8)], [0, 0]);
  const mask2 = new Float32Array(16 * 8).map((_, i) => (i % 16) >= 8 ? 1 : 0);
  assertEquals([...latentMask(mask2, 16, 8)], [0, 1]);
  const init = new Float32Array(3 * 16 * 8).fill(0.5);
  const masked = maskedImage(init, mask2);
  assertEquals([masked[7], masked[8], masked[16 * 8 + 7], masked[16 * 8 + 8]], [0.5, 0, 0.5, 0]);
});

/** A binary PNM (P5 gray or P6 RGB, maxval 255) as 8-bit RGB. */
function readPnm(path: string): Pixels {
  const bytes = Deno.readFileSync(path);
  const header = new TextDecoder().decode(bytes.subarray(0, 64)).split(/\s+/);
  const [magic, w, h] = [header[0], Number(header[1]), Number(header[2])];
  let at = 0;
  for (let fields = 0; fields < 4; at++) if (/\s/.test(String.fromCharCode(bytes[at]))) fields++;
  const channels = magic === "P6" ? 3 : 1;
  const raw = bytes.subarray(at, at + w * h * channels);
  const data = new Uint8Array(w * h * 3);
  for (let i = 0; i < w * h * 3; i++) data[i] = raw[channels === 3 ? i : Math.floor(i / 3)];
  return { width: w, height: h, channels: 3, data };
}

Deno.test("readImage: RGB and grayscale JPEGs give libjpeg-turbo's (PIL's) pixels (chroma upsampling: ±4, mean < 0.25)", async () => {
  for (const name of ["init-128x96", "init-128x96-gray"]) {
    const img = await readImage(fixture(`jpeg/${name}.jpg`), "--init-image");
    const ref = readPnm(fixture(`jpeg/${name}.djpeg.${name.endsWith("gray") ? "pgm" : "ppm"}`));
    assertEquals([img.width, img.height, img.channels], [ref.width, ref.height, 3]);
    let max = 0, sum = 0;
    for (let i = 0; i < ref.data.length; i++) {
      const d = Math.abs(img.data[i] - ref.data[i]);
      max = Math.max(max, d);
      sum += d;
    }
    const mean = sum / ref.data.length;
    assert(max <= 4 && mean < 0.25, `${name}: max ${max}, mean ${mean.toFixed(3)} against djpeg`);
  }
});
