/**
 * PNG output: 8-bit RGB with text chunks (the generation `parameters`) placed before the image
 * data, where other Stable Diffusion tools read them.
 *
 * The image data is deflated by the runtime's native zlib (`node:zlib`), not by imagescript's
 * pure-JS encoder: on the GPU machine imagescript took 50–100 ms for one 512×512 image, ~3% of
 * the whole job, against ~10 ms native; the CRC-32 is zlib's too (imagescript's decoder still
 * reads images back in tests). The PNG is on the critical path of every image, so by default
 * rows use filter 1 (Sub: each byte minus the same channel of the pixel to its left) and zlib's
 * run-length strategy at level 1: measured on a smooth 512×512 image, 0.68× the bytes of filter
 * 0 at level 6 in a fraction of the time (the match search of levels 1–9 is what costs; on noise
 * neither finds anything). `level` set explicitly gives filter 0 with zlib's default strategy. Text
 * chunks come right after IHDR: `tEXt` when the text is Latin-1, else `iTXt` (UTF-8), as PIL does.
 *
 * The CLI gets its scanlines (filter byte + Sub-filtered row) ready from the GPU
 * (src/ops/png_rows.ts) and only deflates them here ({@linkcode encodeScanlines}); the filter
 * choice stays in this module ({@linkcode SCANLINE_FILTER}), with {@linkcode pixelScanlines} the
 * CPU path that makes the same bytes from floats. zlib runs synchronously: Deno's
 * `node:zlib` `deflate()` measured no faster and no more parallel than `deflateSync` (it runs on
 * the main thread, which a GPU wait blocks), so an async encode would not overlap the next image.
 *
 * @module
 */

import { constants, crc32, deflateSync } from "node:zlib";

/** Options of {@linkcode encodePng}. */
export interface PngOptions {
  /** Text chunks, keyword → text (keywords: 1–79 Latin-1 characters). */
  text?: Record<string, string>;
  /**
   * zlib level 0–9 (default: level 1, run-length strategy). In {@linkcode encodePng} a level
   * also means filter 0 (default: filter 1, Sub); {@linkcode encodeScanlines} keeps the rows' own.
   */
  level?: number;
}

const SIGNATURE = new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]);

/**
 * Float RGB in [0, 1] (H×W×3, row-major) → bytes, as diffusers' `numpy_to_pil` does it on float32
 * arrays: `(x * 255).round()` — the product rounded to f32, then to the nearest integer with
 * halves to even (numpy) — clamped to [0, 255].
 */
export function toRgb8(pixels: Float32Array): Uint8Array {
  // The product rounded to f32 (Math.fround); storing into a Uint8ClampedArray (ECMAScript
  // ToUint8Clamp) clamps to [0, 255] and rounds halves to even, as numpy does: one pass.
  const out = new Uint8ClampedArray(pixels.length);
  for (let i = 0; i < pixels.length; i++) out[i] = Math.fround(pixels[i] * 255);
  return new Uint8Array(out.buffer);
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
 * The row filter of the default (fast) encoding: 1 (Sub), each byte minus the same channel of the
 * pixel to its left. The one place that chooses it: {@linkcode rgbScanlines} applies it on the CPU,
 * and `kernels/png_rows.wgsl` (src/ops/png_rows.ts) produces the same bytes on the GPU, checked
 * against {@linkcode pixelScanlines} in tests/png_rows_test.ts.
 */
export const SCANLINE_FILTER = 1;

/** Bytes of the scanlines of a `width` × `height` RGB image: per row a filter byte, then 3·width. */
export function scanlineBytes(width: number, height: number): number {
  return height * (1 + 3 * width);
}

/**
 * 8-bit RGB (`rgb.length === width * height * 3`) → PNG scanlines: per row its filter-type byte,
 * then the row filtered with {@linkcode SCANLINE_FILTER} (Sub), or unfiltered (type 0) with
 * `filter: 0`.
 */
export function rgbScanlines(
  rgb: Uint8Array,
  width: number,
  height: number,
  filter: 0 | typeof SCANLINE_FILTER = SCANLINE_FILTER,
): Uint8Array {
  if (rgb.length !== width * height * 3) {
    throw new Error(`PNG scanlines: ${rgb.length} bytes for ${width}×${height} RGB`);
  }
  const row = width * 3;
  const raw = new Uint8Array(scanlineBytes(width, height));
  for (let y = 0; y < height; y++) {
    const src = rgb.subarray(y * row, (y + 1) * row);
    const at = y * (row + 1);
    if (filter === 0) {
      raw.set(src, at + 1);
      continue;
    }
    raw[at] = SCANLINE_FILTER; // Sub
    for (let i = 0; i < row; i++) raw[at + 1 + i] = src[i] - (i >= 3 ? src[i - 3] : 0);
  }
  return raw;
}

/**
 * Float RGB in [0, 1] (H×W×3, row-major) → the default scanlines ({@linkcode toRgb8}, then
 * {@linkcode rgbScanlines}): the CPU reference of the GPU's `png_rows` kernel, and the path of a
 * caller that has only floats.
 */
export function pixelScanlines(pixels: Float32Array, width: number, height: number): Uint8Array {
  return rgbScanlines(toRgb8(pixels), width, height);
}

/** zlib's settings for the scanlines: level 1 with run-length matching, or `level` as given. */
function deflateOptions(level: number | undefined) {
  return level === undefined ? { level: 1, strategy: constants.Z_RLE } : { level };
}

/** The PNG around deflated image data: signature, IHDR, text chunks, IDAT, IEND. */
function assemble(idat: Uint8Array, width: number, height: number, opts: PngOptions): Uint8Array {
  const ihdr = new Uint8Array(13);
  const view = new DataView(ihdr.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit, truecolor RGB, deflate, filter method 0, no interlace
  const parts = [
    SIGNATURE,
    chunk("IHDR", ihdr),
    ...Object.entries(opts.text ?? {}).map(([k, v]) => textChunk(k, v)),
    chunk("IDAT", idat),
    chunk("IEND", new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
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
  const filter = opts.level === undefined ? SCANLINE_FILTER : 0;
  return encodeScanlines(rgbScanlines(rgb, width, height, filter), width, height, opts);
}

/**
 * Encodes ready scanlines (each row's filter byte, then its filtered bytes: e.g. from
 * {@linkcode pixelScanlines} or the GPU's `png_rows` kernel) as a PNG. The rows are deflated as
 * given, so `level` here sets only zlib's level (the filter was chosen when the rows were made).
 */
export function encodeScanlines(
  scanlines: Uint8Array,
  width: number,
  height: number,
  opts: PngOptions = {},
): Uint8Array {
  if (scanlines.length !== scanlineBytes(width, height)) {
    throw new Error(
      `encodeScanlines: ${scanlines.length} scanline bytes for ${width}×${height} RGB`,
    );
  }
  const idat = new Uint8Array(deflateSync(scanlines, deflateOptions(opts.level)));
  return assemble(idat, width, height, opts);
}
