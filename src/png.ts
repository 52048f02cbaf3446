/**
 * PNG output: 8-bit RGB with text chunks (the generation `parameters`) placed before the image
 * data, where other Stable Diffusion tools read them.
 *
 * The image itself is encoded by imagescript's pure-JS PNG encoder (`png/src/png.mjs`: zlib by
 * fflate, no native code — imagescript's main entry would load native binaries). Its own text
 * option writes the chunks after IDAT and as UTF-8 inside `tEXt` (whose text is Latin-1 by the
 * PNG spec), so the chunks are written here and spliced in right after IHDR: `tEXt` when the text
 * is Latin-1, else `iTXt` (UTF-8), as PIL does.
 *
 * @module
 */

import * as imagescriptPng from "imagescript/png/src/png.mjs";
import * as imagescriptCrc from "imagescript/png/src/crc.mjs";

// The .mjs files ship without types; these are their signatures.
const imagescriptEncode = (imagescriptPng as unknown as {
  encode(
    data: Uint8Array,
    opts: { width: number; height: number; channels: 1 | 2 | 3 | 4; level?: number },
  ): Uint8Array;
}).encode;
const crc32 = (imagescriptCrc as unknown as { crc32(bytes: Uint8Array): number }).crc32;

/** Options of {@linkcode encodePng}. */
export interface PngOptions {
  /** Text chunks, keyword → text (keywords: 1–79 Latin-1 characters). */
  text?: Record<string, string>;
  /** zlib level 0–9 (default 6). */
  level?: number;
}

const SIGNATURE_BYTES = 8;
const IHDR_CHUNK_BYTES = 4 + 4 + 13 + 4;

/**
 * Float RGB in [0, 1] (H×W×3, row-major) → bytes, as diffusers' `numpy_to_pil` does it on float32
 * arrays: `(x * 255).round()` — the product rounded to f32, then to the nearest integer with
 * halves to even (numpy) — clamped to [0, 255].
 */
export function toRgb8(pixels: Float32Array): Uint8Array {
  const out = new Uint8Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) {
    const x = Math.min(255, Math.max(0, Math.fround(pixels[i] * 255)));
    let r = Math.round(x);
    if (r - x === 0.5 && r % 2 === 1) r -= 1; // a tie: numpy rounds to even
    out[i] = r;
  }
  return out;
}

function isLatin1(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0xff) return false;
  return true;
}

function latin1(s: string): Uint8Array {
  const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i);
  return b;
}

/** One PNG chunk: length, type, data, CRC of type + data. */
function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  out.set(latin1(type), 4);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)) >>> 0);
  return out;
}

/**
 * A `tEXt` chunk (Latin-1 text) or, when the text has other characters, an uncompressed `iTXt`
 * (UTF-8). NUL characters, which neither may hold, are dropped.
 */
export function textChunk(keyword: string, text: string): Uint8Array {
  if (!/^[\x20-\x7e\xa1-\xff]{1,79}$/.test(keyword) || /^ | $| {2}/.test(keyword)) {
    throw new Error(`PNG text keyword ${JSON.stringify(keyword)} is not valid`);
  }
  const clean = text.replaceAll("\0", "");
  const key = latin1(keyword);
  if (isLatin1(clean)) {
    const body = latin1(clean);
    const data = new Uint8Array(key.length + 1 + body.length);
    data.set(key, 0);
    data.set(body, key.length + 1);
    return chunk("tEXt", data);
  }
  // iTXt: keyword, NUL, compression flag 0, method 0, language "" NUL, translated keyword "" NUL.
  const body = new TextEncoder().encode(clean);
  const data = new Uint8Array(key.length + 5 + body.length);
  data.set(key, 0);
  data.set(body, key.length + 5);
  return chunk("iTXt", data);
}

/**
 * Encodes 8-bit RGB (`rgb.length === width * height * 3`) as a PNG whose text chunks come right
 * after IHDR, before the image data.
 *
 * @example
 * ```ts
 * const png = encodePng(toRgb8(pixels), 512, 512, { text: { parameters: "a cat\nSteps: 20" } });
 * await Deno.writeFile("a-cat.png", png);
 * ```
 */
export function encodePng(
  rgb: Uint8Array,
  width: number,
  height: number,
  opts: PngOptions = {},
): Uint8Array {
  if (rgb.length !== width * height * 3) {
    throw new Error(`encodePng: ${rgb.length} bytes for ${width}×${height} RGB`);
  }
  const png = imagescriptEncode(rgb, { width, height, channels: 3, level: opts.level ?? 6 });
  const texts = Object.entries(opts.text ?? {}).map(([k, v]) => textChunk(k, v));
  if (texts.length === 0) return png;
  const head = SIGNATURE_BYTES + IHDR_CHUNK_BYTES;
  const extra = texts.reduce((n, c) => n + c.length, 0);
  const out = new Uint8Array(png.length + extra);
  out.set(png.subarray(0, head), 0);
  let at = head;
  for (const c of texts) {
    out.set(c, at);
    at += c.length;
  }
  out.set(png.subarray(head), at);
  return out;
}
