/**
 * PNG output: the encoder's bytes are parsed back here independently (chunk walk with CRC check,
 * zlib inflate through node:zlib, PNG row filters undone) and compared with the input pixels; the
 * `parameters` text must come before the image data, as tEXt for Latin-1 text and iTXt otherwise.
 */

import { inflateSync } from "node:zlib";
import { assert, assertEquals, assertThrows } from "../src/std/assert.ts";
import {
  encodePng,
  encodeScanlines,
  pixelScanlines,
  rgbScanlines,
  SCANLINE_FILTER,
  textChunk,
  toRgb8,
} from "../src/png.ts";

const SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];

/** CRC-32 of the PNG spec (ISO 3309), bit by bit — independent of the encoder's table. */
function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

interface Chunk {
  type: string;
  data: Uint8Array;
}

function chunks(png: Uint8Array): Chunk[] {
  assertEquals([...png.subarray(0, 8)], SIGNATURE, "PNG signature");
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  const out: Chunk[] = [];
  for (let at = 8; at < png.length;) {
    const len = view.getUint32(at);
    const type = String.fromCharCode(...png.subarray(at + 4, at + 8));
    const data = png.subarray(at + 8, at + 8 + len);
    const crc = view.getUint32(at + 8 + len);
    assertEquals(crc, crc32(png.subarray(at + 4, at + 8 + len)), `CRC of ${type}`);
    out.push({ type, data });
    at += 12 + len;
  }
  return out;
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/** Decodes 8-bit RGB image data (all five row filters). */
function decodeRgb(cs: Chunk[], width: number, height: number): Uint8Array {
  const idat = cs.filter((c) => c.type === "IDAT").map((c) => c.data);
  const z = new Uint8Array(idat.reduce((n, d) => n + d.length, 0));
  let o = 0;
  for (const d of idat) z.set(d, (o += d.length) - d.length);
  const raw = new Uint8Array(inflateSync(z));
  const stride = width * 3;
  assertEquals(raw.length, height * (stride + 1), "inflated size");
  const out = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)];
    for (let x = 0; x < stride; x++) {
      const v = raw[y * (stride + 1) + 1 + x];
      const a = x >= 3 ? out[y * stride + x - 3] : 0;
      const b = y > 0 ? out[(y - 1) * stride + x] : 0;
      const c = x >= 3 && y > 0 ? out[(y - 1) * stride + x - 3] : 0;
      const pred = [0, a, b, (a + b) >> 1, paeth(a, b, c)][f];
      assert(pred !== undefined, `row ${y}: filter type ${f}`);
      out[y * stride + x] = (v + pred) & 255;
    }
  }
  return out;
}

function ihdr(cs: Chunk[]) {
  const d = cs[0].data;
  const v = new DataView(d.buffer, d.byteOffset, d.byteLength);
  return {
    width: v.getUint32(0),
    height: v.getUint32(4),
    depth: d[8],
    colorType: d[9],
    interlace: d[12],
  };
}

Deno.test("encodePng: 8-bit RGB that decodes to the input, text chunk before IDAT", () => {
  const width = 37, height = 23; // odd sizes: no row alignment luck
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0; i < rgb.length; i++) rgb[i] = (i * 97 + (i >> 5) * 13) & 255;
  const text = "a cat\nNegative prompt: blurry\nSteps: 20, Sampler: DDIM, CFG scale: 7.5, Seed: 42";
  const png = encodePng(rgb, width, height, { text: { parameters: text } });
  const cs = chunks(png);
  assertEquals(cs.map((c) => c.type).filter((t) => t !== "IDAT").join(","), "IHDR,tEXt,IEND");
  assertEquals(ihdr(cs), { width, height, depth: 8, colorType: 2, interlace: 0 });
  const tIdx = cs.findIndex((c) => c.type === "tEXt");
  const firstIdat = cs.findIndex((c) => c.type === "IDAT");
  assert(tIdx < firstIdat, "the parameters chunk comes before the image data");
  const t = cs[tIdx].data;
  const nul = t.indexOf(0);
  assertEquals(String.fromCharCode(...t.subarray(0, nul)), "parameters");
  assertEquals(String.fromCharCode(...t.subarray(nul + 1)), text);
  assertEquals(decodeRgb(cs, width, height), rgb);
});

Deno.test("encodePng: no text, every level decodes the same pixels", () => {
  const rgb = new Uint8Array(8 * 8 * 3).map((_, i) => (i * 31) & 255);
  for (const level of [0, 1, 9]) {
    const cs = chunks(encodePng(rgb, 8, 8, { level }));
    assertEquals(cs.map((c) => c.type).filter((t) => t !== "IDAT"), ["IHDR", "IEND"]);
    assertEquals(decodeRgb(cs, 8, 8), rgb);
  }
  assertThrows(() => encodePng(rgb, 8, 9), "bytes for 8×9");
});

Deno.test("rgbScanlines/encodeScanlines: Sub rows by default, the PNG encodePng makes", () => {
  const width = 5, height = 3;
  const rgb = new Uint8Array(width * height * 3).map((_, i) => (i * 53 + 7) & 255);
  const sub = rgbScanlines(rgb, width, height);
  assertEquals(sub.length, height * (1 + 3 * width));
  assertEquals(SCANLINE_FILTER, 1);
  for (let y = 0; y < height; y++) {
    const at = y * (1 + 3 * width);
    assertEquals(sub[at], SCANLINE_FILTER, `row ${y}: filter byte`);
    // Sub: the first pixel as is, then each byte minus the same channel one pixel left.
    for (let i = 0; i < 3 * width; i++) {
      const left = i >= 3 ? rgb[y * 3 * width + i - 3] : 0;
      assertEquals(sub[at + 1 + i], (rgb[y * 3 * width + i] - left) & 255, `row ${y} byte ${i}`);
    }
  }
  const none = rgbScanlines(rgb, width, height, 0);
  assertEquals([...none.subarray(0, 1 + 3 * width)], [0, ...rgb.subarray(0, 3 * width)]);
  const opts = { text: { parameters: "x" } };
  assertEquals(encodeScanlines(sub, width, height, opts), encodePng(rgb, width, height, opts));
  // level applies to the rows as given: the filter stays what the rows say.
  for (const level of [0, 9]) {
    assertEquals(decodeRgb(chunks(encodeScanlines(sub, width, height, { level })), 5, 3), rgb);
  }
  assertThrows(() => encodeScanlines(sub, width, height + 1), "scanline bytes for 5×4");
  const pixels = new Float32Array(rgb.length).map((_, i) => rgb[i] / 255);
  assertEquals(pixelScanlines(pixels, width, height), sub);
});

Deno.test("textChunk: tEXt for Latin-1, uncompressed iTXt (UTF-8) otherwise, NULs dropped", () => {
  const latin = chunks(
    new Uint8Array([...SIGNATURE, ...textChunk("parameters", "café\0 au lait")]),
  );
  assertEquals(latin[0].type, "tEXt");
  assertEquals([...latin[0].data.subarray(11)], [..."café au lait"].map((c) => c.charCodeAt(0)));

  const cjk = chunks(new Uint8Array([...SIGNATURE, ...textChunk("parameters", "a 猫 on a mat")]));
  assertEquals(cjk[0].type, "iTXt");
  const d = cjk[0].data;
  // keyword NUL, compression flag 0, method 0, empty language NUL, empty translated keyword NUL
  assertEquals([...d.subarray(10, 15)], [0, 0, 0, 0, 0]);
  assertEquals(new TextDecoder().decode(d.subarray(15)), "a 猫 on a mat");

  assertThrows(() => textChunk("", "x"), "keyword");
  assertThrows(() => textChunk("x".repeat(80), "x"), "keyword");
});

Deno.test("toRgb8: (x·255).round() in f32 with numpy's half-to-even, clamped", () => {
  assertEquals([...toRgb8(new Float32Array([0, 1, 0.2, 0.5, -0.3, 1.7]))], [
    0,
    255,
    51,
    128,
    0,
    255,
  ]);
  // f32 inputs whose f32 product with 255 is exactly k + ½: numpy rounds those to the even one.
  const ties: [number, number][] = [];
  for (let k = 0; k < 255 && ties.length < 8; k++) {
    for (const v of [Math.fround((k + 0.5) / 255)]) {
      for (let d = -4; d <= 4; d++) {
        const u = v + d * 2 ** -30;
        const f = Math.fround(u);
        if (Math.fround(f * 255) === k + 0.5) ties.push([f, k % 2 === 0 ? k : k + 1]);
      }
    }
  }
  assert(
    ties.some(([f, want]) => Math.round(Math.fround(f * 255)) !== want),
    "found ties where rounding half up would differ",
  );
  const got = toRgb8(new Float32Array(ties.map(([f]) => f)));
  assertEquals([...got], ties.map(([, want]) => want));
});
