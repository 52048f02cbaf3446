/**
 * Input images for image-to-image and inpainting, prepared as diffusers' `VaeImageProcessor`
 * prepares them (the users' path: `load_image` → RGB, then `preprocess`):
 *
 * - decoding: PNG (8-bit gray, gray+alpha, RGB, RGBA, palette) and JPEG (gray, RGB; CMYK refused),
 *   by imagescript's pure JS/WebAssembly decoders (its package entry loads a native addon, which
 *   would need `--allow-ffi`). Alpha is
 *   dropped and gray replicated, as PIL's `convert("RGB")` does; PNGs of another bit depth than 8
 *   (16-bit, 1/2/4-bit) are refused (save the file as 8-bit);
 * - resizing: PIL's Lanczos filter (`Image.resize(size, LANCZOS)`, the processor's default), in
 *   PIL's 8-bit fixed point, so a resized image gives diffusers' pixels;
 * - the init image: `2·(v/255) − 1`, CHW;
 * - the mask: PIL's `convert("L")`, resized like the image, `/255`, binarized (≥ 0.5 → 1, white =
 *   repaint); its latent mask is `mask[8i, 8j]` (`F.interpolate(mode="nearest")` to h/8 × w/8);
 *   the masked image is `init·(mask < 0.5)`.
 *
 * @module
 */

import jpegCodec from "imagescript/wasm/node/jpeg.js";
import * as png from "imagescript/png/src/png.mjs";
import { UserError } from "./errors.ts";

/** An 8-bit image, `channels` interleaved values a pixel, row-major. */
export interface Pixels {
  width: number;
  height: number;
  /** 3 (RGB) or 1 (L). */
  channels: number;
  data: Uint8Array;
}

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47];
const JPEG_MAGIC = [0xff, 0xd8, 0xff];

function startsWith(bytes: Uint8Array, magic: number[]): boolean {
  return magic.every((b, i) => bytes[i] === b);
}

/**
 * Reads an image file as 8-bit RGB. `what` names it in messages (`--init-image`, `"mask"`).
 *
 * @throws {UserError} (usage) for a missing, unreadable, non-PNG/JPEG or 16-bit file
 */
export async function readImage(path: string, what: string): Promise<Pixels> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound ? "no such file" : (e as Error).message;
    throw new UserError(`${what} ${path}: cannot read it (${why}); give a PNG or JPEG file`, {
      kind: "usage",
      cause: e,
    });
  }
  const bad = (why: string, cause?: unknown) =>
    new UserError(`${what} ${path}: ${why}`, { kind: "usage", cause });
  let rgba: Uint8Array | Uint8ClampedArray, width: number, height: number;
  try {
    if (startsWith(bytes, PNG_MAGIC)) {
      const depth = bytes[24];
      if (depth !== 8) {
        throw bad(`a ${depth}-bit PNG is not supported; save it as an 8-bit PNG (or a JPEG)`);
      }
      const d = (png as unknown as {
        decode(b: Uint8Array): { width: number; height: number; buffer: Uint8Array };
      }).decode(bytes);
      [rgba, width, height] = [d.buffer, d.width, d.height];
    } else if (startsWith(bytes, JPEG_MAGIC)) {
      [rgba, width, height] = await decodeJpeg(bytes, bad);
    } else {
      throw bad("not a PNG or JPEG image; give a PNG or JPEG file");
    }
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw bad(`cannot decode it (${(e as Error).message}); give a valid PNG or JPEG file`, e);
  }
  if (!width || !height || rgba.length < width * height * 4) {
    throw bad("the image is empty or truncated; give a valid PNG or JPEG file");
  }
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) {
    data[3 * i] = rgba[4 * i];
    data[3 * i + 1] = rgba[4 * i + 1];
    data[3 * i + 2] = rgba[4 * i + 2];
  }
  return { width, height, channels: 3, data };
}

/** imagescript's WebAssembly JPEG decoder (CommonJS): pixel format 0 = gray, 1 = RGB, 2 = CMYK. */
interface JpegCodec {
  init(): Promise<{
    decode(b: Uint8Array): { width: number; height: number; format: number; buffer: Uint8Array };
  }>;
}

/** Decodes a JPEG to RGBA. */
async function decodeJpeg(
  bytes: Uint8Array,
  bad: (why: string) => Error,
): Promise<[Uint8Array, number, number]> {
  const { width, height, format, buffer } = (await (jpegCodec as JpegCodec).init()).decode(bytes);
  if (format === 2) throw bad("a CMYK JPEG is not supported; save it as an RGB JPEG or a PNG");
  const channels = format === 0 ? 1 : 3;
  const n = width * height;
  if (buffer.length < n * channels) return [new Uint8Array(0), width, height];
  const rgba = new Uint8Array(n * 4);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < 3; c++) rgba[4 * i + c] = buffer[channels * i + (channels === 1 ? 0 : c)];
    rgba[4 * i + 3] = 255;
  }
  return [rgba, width, height];
}

/** PIL's `convert("L")` of RGB: L = (19595·R + 38470·G + 7471·B + 2¹⁵) >> 16 (ITU-R 601-2). */
export function toLuma(img: Pixels): Pixels {
  if (img.channels === 1) return img;
  const n = img.width * img.height;
  const data = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const r = img.data[3 * i], g = img.data[3 * i + 1], b = img.data[3 * i + 2];
    data[i] = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >>> 16;
  }
  return { ...img, channels: 1, data };
}

/** PIL's Lanczos window: sinc(x)·sinc(x/3) on [−3, 3). */
function lanczos(x: number): number {
  const sinc = (v: number) => v === 0 ? 1 : Math.sin(Math.PI * v) / (Math.PI * v);
  return -3 <= x && x < 3 ? sinc(x) * sinc(x / 3) : 0;
}

/** PIL's fixed-point precision of 8-bit resampling (`PRECISION_BITS` = 32 − 8 − 2). */
const PRECISION_BITS = 22;

/**
 * PIL's `precompute_coeffs` + `normalize_coeffs_8bpc` for one axis: for each output index, the
 * first input index, the tap count, and the taps in fixed point.
 */
function lanczosCoeffs(inSize: number, outSize: number) {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = 3 * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Float64Array(outSize * ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let ww = 0;
    const w = new Float64Array(xmax);
    for (let x = 0; x < xmax; x++) {
      w[x] = lanczos((x + xmin - center + 0.5) / filterscale);
      ww += w[x];
    }
    for (let x = 0; x < xmax; x++) {
      const k = ww !== 0 ? w[x] / ww : w[x];
      const f = k * (1 << PRECISION_BITS);
      kk[xx * ksize + x] = k < 0 ? Math.trunc(-0.5 + f) : Math.trunc(0.5 + f);
    }
    bounds[2 * xx] = xmin;
    bounds[2 * xx + 1] = xmax;
  }
  return { ksize, bounds, kk };
}

/** Rounds a fixed-point sum to 8 bits with PIL's clamp (`clip8`). */
function clip8(ss: number): number {
  const v = Math.floor(ss / (1 << PRECISION_BITS));
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/**
 * `Image.resize((width, height), Image.LANCZOS)` as PIL computes it for 8-bit images: a
 * horizontal pass over the rows the vertical pass needs, rounded to 8 bits, then a vertical pass.
 */
export function resizeLanczos(img: Pixels, width: number, height: number): Pixels {
  if (img.width === width && img.height === height) return img;
  const c = img.channels;
  const half = 1 << (PRECISION_BITS - 1);
  const h = lanczosCoeffs(img.width, width);
  const v = lanczosCoeffs(img.height, height);
  const needH = width !== img.width, needV = height !== img.height;
  // Rows of the input the vertical pass reads.
  const yFirst = v.bounds[0];
  const yLast = v.bounds[2 * height - 2] + v.bounds[2 * height - 1];
  let src = img.data, srcW = img.width, rows = img.height, rowOff = 0;
  if (needH) {
    rows = yLast - yFirst;
    rowOff = yFirst;
    const tmp = new Uint8Array(width * rows * c);
    for (let y = 0; y < rows; y++) {
      const inRow = (y + yFirst) * img.width;
      for (let xx = 0; xx < width; xx++) {
        const xmin = h.bounds[2 * xx], xmax = h.bounds[2 * xx + 1];
        for (let ch = 0; ch < c; ch++) {
          let ss = half;
          for (let x = 0; x < xmax; x++) {
            ss += img.data[(inRow + xmin + x) * c + ch] * h.kk[xx * h.ksize + x];
          }
          tmp[(y * width + xx) * c + ch] = clip8(ss);
        }
      }
    }
    src = tmp;
    srcW = width;
  }
  if (!needV) return { width, height, channels: c, data: src };
  const out = new Uint8Array(width * height * c);
  for (let yy = 0; yy < height; yy++) {
    const ymin = v.bounds[2 * yy] - rowOff, ymax = v.bounds[2 * yy + 1];
    for (let xx = 0; xx < width; xx++) {
      for (let ch = 0; ch < c; ch++) {
        let ss = half;
        for (let y = 0; y < ymax; y++) {
          ss += src[((ymin + y) * srcW + xx) * c + ch] * v.kk[yy * v.ksize + y];
        }
        out[(yy * width + xx) * c + ch] = clip8(ss);
      }
    }
  }
  return { width, height, channels: c, data: out };
}

/** The size a generation takes from an image without `--width/--height`: rounded down to 8. */
export function defaultSize(img: Pixels): { width: number; height: number } {
  return { width: img.width - (img.width % 8), height: img.height - (img.height % 8) };
}

/** RGB 8-bit HWC → the VAE's input, CHW f32 in [−1, 1] (`2·(v/255) − 1`, rounded as torch). */
export function toModelInput(img: Pixels): Float32Array {
  if (img.channels !== 3) throw new Error("toModelInput: an RGB image is expected");
  const n = img.width * img.height;
  const out = new Float32Array(3 * n);
  for (let i = 0; i < n; i++) {
    for (let ch = 0; ch < 3; ch++) {
      const unit = Math.fround(img.data[3 * i + ch] / 255);
      out[ch * n + i] = Math.fround(2 * unit) - 1;
    }
  }
  return out;
}

/** The mask as the pipeline uses it: L 8-bit → `v/255 ≥ 0.5 ? 1 : 0` (1 = repaint), HW. */
export function binarizeMask(mask: Pixels): Float32Array {
  const l = toLuma(mask);
  return Float32Array.from(l.data, (v) => Math.fround(v / 255) >= 0.5 ? 1 : 0);
}

/** The latent mask [h, w] of a pixel mask [8h, 8w]: nearest-neighbour, `mask[8i, 8j]`. */
export function latentMask(mask: Float32Array, width: number, height: number): Float32Array {
  const w = width / 8, h = height / 8;
  const out = new Float32Array(w * h);
  for (let i = 0; i < h; i++) {
    for (let j = 0; j < w; j++) out[i * w + j] = mask[8 * i * width + 8 * j];
  }
  return out;
}

/** The masked image `init · (mask < 0.5)` (CHW, repainted pixels 0). */
export function maskedImage(init: Float32Array, mask: Float32Array): Float32Array {
  const n = mask.length;
  return init.map((v, i) => mask[i % n] < 0.5 ? v : 0);
}

/** The init image (and mask) of a run, prepared at the output size. */
export interface PreparedInit {
  /** CHW f32 in [−1, 1]. */
  image: Float32Array;
  /** HW, 1 = repaint; absent for image-to-image. */
  mask?: Float32Array;
  width: number;
  height: number;
}

/**
 * Reads `initPath` (and `maskPath`) and prepares them for a `width` × `height` output; a null
 * side takes the init image's, rounded down to a multiple of 8 (diffusers'
 * `get_default_height_width`); `checkSize` validates what comes out. Both images are resized to
 * the output size with PIL's Lanczos filter when they differ from it, as diffusers does.
 */
export async function prepareInit(
  initPath: string,
  maskPath: string | null,
  size: { width: number | null; height: number | null },
  names: { init: string; mask: string },
  checkSize: (value: number, what: string) => number,
): Promise<PreparedInit> {
  const init = await readImage(initPath, names.init);
  const mask = maskPath === null ? null : await readImage(maskPath, names.mask);
  const auto = defaultSize(init);
  const width = size.width ?? checkSize(auto.width, `the width of ${names.init} ${initPath}`);
  const height = size.height ??
    checkSize(auto.height, `the height of ${names.init} ${initPath}`);
  return {
    image: toModelInput(resizeLanczos(init, width, height)),
    mask: mask ? binarizeMask(resizeLanczos(toLuma(mask), width, height)) : undefined,
    width,
    height,
  };
}
