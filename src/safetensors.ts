/**
 * Reading and writing safetensors files (https://github.com/huggingface/safetensors#format):
 * an 8-byte little-endian header length `N`, `N` bytes of JSON mapping each tensor name to
 * `{dtype, shape, data_offsets: [begin, end]}` (offsets relative to the end of the header) plus an
 * optional `__metadata__` string map, then the raw little-endian tensor data.
 *
 * {@linkcode SafeTensorsFile.open} reads and validates only the header; each tensor is then read
 * on its own (seek + read), so files larger than 2 GiB (the SD 1.5 f32 UNet is 3.4 GB) never sit
 * in memory as one `ArrayBuffer`. {@linkcode SafeTensorsFile.stream} reads many tensors on a
 * worker thread (`safetensors_worker.ts`) for model loading.
 *
 * @example
 * ```ts
 * const f = await SafeTensorsFile.open("unet/diffusion_pytorch_model.safetensors");
 * const w = await f.readAs("conv_in.weight", "f16");
 * f.close();
 * ```
 *
 * @module
 */

import { UserError } from "./errors.ts";
import { numel } from "./shape.ts";

/**
 * Element types this reader understands. F64 is beyond SD weights: the reference fixtures store
 * scheduler timesteps and sigmas in it.
 */
export type SafeDType = "F32" | "F16" | "BF16" | "F64" | "I64";

/** Bytes per element of each {@linkcode SafeDType}. */
export const SAFE_DTYPE_BYTES: Readonly<Record<SafeDType, number>> = {
  F32: 4,
  F16: 2,
  BF16: 2,
  F64: 8,
  I64: 8,
};

/** One tensor's entry in a safetensors header. */
export interface TensorInfo {
  /** Checkpoint key. */
  name: string;
  /** Element type in the file. */
  dtype: SafeDType;
  /** Shape, outermost first (PyTorch order). */
  shape: number[];
  /** Absolute byte offset of the first data byte in the file. */
  begin: number;
  /** Absolute byte offset one past the last data byte in the file. */
  end: number;
}

/** A malformed or unreadable safetensors file; the message names the file and the problem. */
export class SafetensorsError extends UserError {
  override name = "SafetensorsError";
}

/** The reference implementation's cap on the JSON header (100 MB). */
const MAX_HEADER_BYTES = 100_000_000;

function isSafeDType(s: unknown): s is SafeDType {
  return typeof s === "string" && Object.hasOwn(SAFE_DTYPE_BYTES, s);
}

function isCount(x: unknown): x is number {
  return typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
}

/** Reads exactly `buf.length` bytes at `offset`, looping over short reads. */
async function readExact(
  file: Deno.FsFile,
  offset: number,
  buf: Uint8Array,
  path: string,
): Promise<void> {
  await file.seek(offset, Deno.SeekMode.Start);
  let got = 0;
  while (got < buf.length) {
    const n = await file.read(buf.subarray(got));
    if (n === null) {
      throw new SafetensorsError(
        `${path}: unexpected end of file at byte ${
          offset + got
        } (wanted ${buf.length} bytes from ${offset})`,
      );
    }
    got += n;
  }
}

/** Writes all of `buf`, looping over short writes. */
async function writeAll(file: Deno.FsFile, buf: Uint8Array): Promise<void> {
  let done = 0;
  while (done < buf.length) done += await file.write(buf.subarray(done));
}

/** An open safetensors file whose header has been read and validated. */
export class SafeTensorsFile {
  /** Path the file was opened from (used in every error message). */
  readonly path: string;
  /** File size in bytes. */
  readonly size: number;
  /** Tensor entries by name, in header order. */
  readonly tensors: Map<string, TensorInfo>;
  /** The header's `__metadata__` (empty when absent). */
  readonly metadata: Record<string, string>;
  #file: Deno.FsFile | null;
  /** Serializes seek + read pairs on the one file handle. */
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(
    path: string,
    file: Deno.FsFile,
    size: number,
    tensors: Map<string, TensorInfo>,
    metadata: Record<string, string>,
  ) {
    this.path = path;
    this.#file = file;
    this.size = size;
    this.tensors = tensors;
    this.metadata = metadata;
  }

  /**
   * Opens `path` and reads and validates its header (not the data). Throws
   * {@linkcode SafetensorsError} for a file shorter than 8 bytes, a header length past the end of
   * the file, invalid JSON, an unknown dtype, bad shapes or offsets (out of range, overlapping,
   * not matching shape × dtype size) and data past the end of the file.
   */
  static async open(path: string): Promise<SafeTensorsFile> {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true });
    } catch (e) {
      throw new SafetensorsError(`${path}: cannot open (${(e as Error).message})`);
    }
    try {
      const size = (await file.stat()).size;
      const { tensors, metadata } = await SafeTensorsFile.#readHeader(file, path, size);
      return new SafeTensorsFile(path, file, size, tensors, metadata);
    } catch (e) {
      file.close();
      throw e;
    }
  }

  static async #readHeader(
    file: Deno.FsFile,
    path: string,
    size: number,
  ): Promise<{ tensors: Map<string, TensorInfo>; metadata: Record<string, string> }> {
    const fail = (what: string): never => {
      throw new SafetensorsError(`${path}: ${what}`);
    };
    if (size < 8) {
      fail(`not a safetensors file: ${size} bytes, shorter than the 8-byte header length`);
    }
    const lenBytes = new Uint8Array(8);
    await readExact(file, 0, lenBytes, path);
    const headerLen = new DataView(lenBytes.buffer).getBigUint64(0, true);
    if (headerLen > BigInt(size - 8)) {
      fail(`header length ${headerLen} runs past the end of the file (${size} bytes)`);
    }
    const n = Number(headerLen);
    if (n > MAX_HEADER_BYTES) fail(`header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
    const dataStart = 8 + n;
    const headerBytes = new Uint8Array(n);
    await readExact(file, 8, headerBytes, path);

    let header: unknown;
    try {
      header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(headerBytes));
    } catch (e) {
      fail(`header is not valid JSON (${(e as Error).message.split("\n")[0]})`);
    }
    if (typeof header !== "object" || header === null || Array.isArray(header)) {
      fail("header is not a JSON object");
    }

    const metadata: Record<string, string> = {};
    const tensors = new Map<string, TensorInfo>();
    for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
      if (name === "__metadata__") {
        if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
          fail(`__metadata__ is not an object`);
        }
        for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
          if (typeof v !== "string") fail(`__metadata__ value of "${k}" is not a string`);
          metadata[k] = v as string;
        }
        continue;
      }
      const t = `tensor "${name}"`;
      if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
        fail(`${t}: entry is not an object`);
      }
      const { dtype, shape, data_offsets: offs } = entry as Record<string, unknown>;
      if (!isSafeDType(dtype)) {
        fail(
          `${t} has unknown dtype ${JSON.stringify(dtype)} (supported: F32, F16, BF16, F64, I64)`,
        );
      }
      if (!Array.isArray(shape) || !shape.every(isCount)) {
        fail(`${t} has invalid shape ${JSON.stringify(shape)}`);
      }
      if (!Array.isArray(offs) || offs.length !== 2 || !offs.every(isCount)) {
        fail(`${t} has invalid data_offsets ${JSON.stringify(offs)}`);
      }
      const [b, e] = offs as [number, number];
      if (e < b) fail(`${t} has data_offsets [${b}, ${e}] that end before they begin`);
      const dt = dtype as SafeDType;
      const want = numel(shape as number[]) * SAFE_DTYPE_BYTES[dt];
      if (e - b !== want) {
        fail(
          `${t} has ${e - b} data bytes but shape [${shape}] × ${dt} needs ${want}`,
        );
      }
      if (dataStart + e > size) {
        fail(
          `truncated: ${t} ends at byte ${dataStart + e} but the file has ${size} bytes`,
        );
      }
      tensors.set(name, {
        name,
        dtype: dt,
        shape: [...(shape as number[])],
        begin: dataStart + b,
        end: dataStart + e,
      });
    }

    // Tensors may not share bytes (gaps are tolerated).
    const byBegin = [...tensors.values()].filter((t) => t.end > t.begin)
      .sort((a, b) => a.begin - b.begin);
    for (let i = 1; i < byBegin.length; i++) {
      const prev = byBegin[i - 1], cur = byBegin[i];
      if (cur.begin < prev.end) {
        fail(
          `tensors "${prev.name}" and "${cur.name}" overlap (bytes ${cur.begin}..${
            Math.min(prev.end, cur.end)
          })`,
        );
      }
    }
    return { tensors, metadata };
  }

  /** The entry for `name`; throws naming the file when there is none. */
  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new SafetensorsError(`${this.path}: no tensor "${name}"`);
    return t;
  }

  /**
   * The raw bytes of tensor `name` in a fresh buffer (so always aligned for typed-array views),
   * read with seek + read; other tensors are not touched.
   */
  readRaw(name: string): Promise<Uint8Array> {
    const info = this.info(name);
    const run = this.#queue.then(async () => {
      const file = this.#file;
      if (!file) throw new SafetensorsError(`${this.path}: read of "${name}" after close()`);
      const buf = new Uint8Array(info.end - info.begin);
      await readExact(file, info.begin, buf, this.path);
      return buf;
    });
    this.#queue = run.catch(() => {});
    return run;
  }

  /** Tensor `name` as f32 (F32 as is, F16 and BF16 widened exactly, F64 rounded to nearest). */
  async readF32(name: string): Promise<Float32Array> {
    const info = this.#float(name);
    const raw = await this.readRaw(name);
    return toF32(raw, info.dtype);
  }

  /**
   * Tensor `name` as f32 or f16. Asking for f16 from an F32 (or BF16) tensor rounds each value to
   * nearest (ties to even); F16 data is returned without conversion.
   */
  async readAs(name: string, dtype: "f32" | "f16"): Promise<Float32Array | Float16Array> {
    const info = this.#float(name);
    return convertTensor(await this.readRaw(name), info.dtype, dtype);
  }

  /**
   * Tensors `names` as f32 or f16 (converted as {@linkcode readAs} does), read in file order on a
   * worker thread and yielded in that order, so that reading and converting overlap with whatever
   * the caller does with each tensor (uploading it). Tensors are read in groups of about
   * `groupBytes` (16 MiB); at most `window` groups (4) are read ahead of the caller.
   *
   * @throws {SafetensorsError} naming the file when a read fails
   */
  async *stream(
    names: readonly string[],
    dtype: "f32" | "f16",
    opts: { groupBytes?: number; window?: number } = {},
  ): AsyncGenerator<{ name: string; data: Float32Array | Float16Array }> {
    const items: StreamItem[] = names.map((name) => {
      const { begin, end, dtype } = this.#float(name);
      return { name, begin, end, dtype };
    }).sort((a, b) => a.begin - b.begin);
    if (items.length === 0) return;
    const worker = new Worker(new URL("./safetensors_worker.ts", import.meta.url), {
      type: "module",
    });
    const inbox: StreamReply[] = [];
    let wake: (() => void) | null = null;
    const deliver = (m: StreamReply) => {
      inbox.push(m);
      wake?.();
      wake = null;
    };
    worker.onmessage = (e: MessageEvent<StreamReply>) => deliver(e.data);
    worker.onerror = (e) => {
      e.preventDefault();
      deliver({ type: "error", message: e.message });
    };
    const request: StreamRequest = {
      path: this.path,
      items,
      to: dtype,
      groupBytes: opts.groupBytes ?? 16 << 20,
      window: opts.window ?? 4,
    };
    worker.postMessage(request);
    try {
      for (;;) {
        while (inbox.length === 0) await new Promise<void>((r) => wake = r);
        const m = inbox.shift()!;
        if (m.type === "error") throw new SafetensorsError(`${this.path}: ${m.message}`);
        if (m.type === "done") return;
        for (const t of m.tensors) {
          const data = t.f16
            ? new Float16Array(t.buffer, t.byteOffset, t.length)
            : new Float32Array(t.buffer, t.byteOffset, t.length);
          yield { name: t.name, data };
        }
        worker.postMessage("credit"); // this group is consumed: one more may be read ahead
      }
    } finally {
      worker.terminate();
    }
  }

  /** Tensor `name` as f64 (F64 as is, the other float dtypes widened exactly). */
  async readF64(name: string): Promise<Float64Array> {
    const info = this.#float(name);
    const raw = await this.readRaw(name);
    if (info.dtype === "F64") return new Float64Array(raw.buffer, raw.byteOffset, raw.length / 8);
    return new Float64Array(toF32(raw, info.dtype));
  }

  /** An I64 tensor. */
  async readI64(name: string): Promise<BigInt64Array> {
    const info = this.info(name);
    if (info.dtype !== "I64") {
      throw new SafetensorsError(`${this.path}: tensor "${name}" is ${info.dtype}, not I64`);
    }
    const raw = await this.readRaw(name);
    return new BigInt64Array(raw.buffer, raw.byteOffset, raw.length / 8);
  }

  /** Closes the file; later reads throw. */
  close(): void {
    this.#file?.close();
    this.#file = null;
  }

  #float(name: string): TensorInfo {
    const info = this.info(name);
    if (info.dtype === "I64") {
      throw new SafetensorsError(`${this.path}: tensor "${name}" is I64, not floating point`);
    }
    return info;
  }
}

/**
 * Raw little-endian tensor bytes of dtype `src` as f32 or f16: F16 to f16 and F32 to f32 without
 * conversion (a view when aligned), anything else rounded to nearest (ties to even).
 */
export function convertTensor(
  raw: Uint8Array,
  src: SafeDType,
  to: "f32" | "f16",
): Float32Array | Float16Array {
  if (to === "f32") return toF32(raw, src);
  if (src === "F16") {
    if (raw.byteOffset % 2 !== 0) raw = raw.slice();
    return new Float16Array(raw.buffer, raw.byteOffset, raw.length / 2);
  }
  if (src === "F64") {
    if (raw.byteOffset % 8 !== 0) raw = raw.slice();
    return new Float16Array(new Float64Array(raw.buffer, raw.byteOffset, raw.length / 8));
  }
  return new Float16Array(toF32(raw, src));
}

/** One tensor for the worker of {@linkcode SafeTensorsFile.stream} (absolute byte range). */
export interface StreamItem {
  name: string;
  begin: number;
  end: number;
  dtype: SafeDType;
}

/** What {@linkcode SafeTensorsFile.stream} asks of its worker (then one "credit" a group). */
export interface StreamRequest {
  path: string;
  /** In file order. */
  items: StreamItem[];
  to: "f32" | "f16";
  groupBytes: number;
  window: number;
}

/** The worker's messages: a group of converted tensors (buffers transferred), the end, a failure. */
export type StreamReply =
  | {
    type: "group";
    tensors: {
      name: string;
      f16: boolean;
      buffer: ArrayBuffer;
      byteOffset: number;
      length: number;
    }[];
  }
  | { type: "done" }
  | { type: "error"; message: string };

/** Converts little-endian F32/F16/BF16/F64 bytes to f32 (copying first if misaligned). */
function toF32(raw: Uint8Array, dtype: SafeDType): Float32Array {
  if (raw.byteOffset % 8 !== 0) raw = raw.slice();
  switch (dtype) {
    case "F32":
      return new Float32Array(raw.buffer, raw.byteOffset, raw.length / 4);
    case "F16":
      return new Float32Array(new Float16Array(raw.buffer, raw.byteOffset, raw.length / 2));
    case "BF16": {
      const src = new Uint16Array(raw.buffer, raw.byteOffset, raw.length / 2);
      const bits = new Uint32Array(src.length);
      for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
      return new Float32Array(bits.buffer);
    }
    case "F64":
      return new Float32Array(new Float64Array(raw.buffer, raw.byteOffset, raw.length / 8));
    default:
      throw new Error(`toF32: ${dtype} is not a float dtype`);
  }
}

/** f32 → bf16 bits, round to nearest even (NaN kept quiet). */
function toBF16(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const x = bits[i];
    if ((x & 0x7fffffff) > 0x7f800000) {
      out[i] = (x >>> 16) | 0x40;
    } else {
      out[i] = ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
    }
  }
  return out;
}

/** One tensor to write with {@linkcode writeSafetensors}. */
export interface TensorToWrite {
  /** Checkpoint key. */
  name: string;
  /** Element type in the file. */
  dtype: SafeDType;
  /** Shape, outermost first. */
  shape: number[];
  /**
   * The values: raw little-endian bytes in `dtype`, or a typed array. A Float32Array may be
   * written as F32, F16 or BF16 (rounded to nearest even), a Float16Array as F16 or F32, a
   * Float64Array as F64, a BigInt64Array as I64.
   */
  data: Uint8Array | Float32Array | Float16Array | Float64Array | BigInt64Array;
}

/** Which dtypes each typed array may be written as (a Uint8Array is raw bytes of any dtype). */
function canWrite(data: TensorToWrite["data"], dtype: SafeDType): boolean {
  if (data instanceof Uint8Array) return true;
  if (data instanceof Float32Array) return dtype === "F32" || dtype === "F16" || dtype === "BF16";
  if (data instanceof Float16Array) return dtype === "F16" || dtype === "F32";
  if (data instanceof Float64Array) return dtype === "F64";
  return dtype === "I64";
}

/** `t.data` as bytes of `t.dtype`, converting where {@linkcode TensorToWrite} allows it. */
function encode(t: TensorToWrite): Uint8Array {
  const { data, dtype } = t;
  const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  if (data instanceof Uint8Array) return data;
  if (data instanceof Float32Array) {
    if (dtype === "F16") return bytesOf(new Float16Array(data));
    if (dtype === "BF16") return bytesOf(toBF16(data));
  } else if (data instanceof Float16Array) {
    if (dtype === "F32") return bytesOf(new Float32Array(data));
  }
  return bytesOf(data);
}

/**
 * Writes `tensors` (in the given order, contiguously) and optional `metadata` to `path`. The JSON
 * header is padded with spaces to a multiple of 8 bytes, as the reference writer does. Tensors are
 * written one at a time, so the output may exceed 2 GiB.
 */
export async function writeSafetensors(
  path: string,
  tensors: readonly TensorToWrite[],
  metadata?: Record<string, string>,
): Promise<void> {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    if (!isSafeDType(t.dtype)) {
      throw new SafetensorsError(`${path}: tensor "${t.name}" has unknown dtype "${t.dtype}"`);
    }
    if (t.name === "__metadata__" || Object.hasOwn(header, t.name)) {
      throw new SafetensorsError(`${path}: duplicate or reserved tensor name "${t.name}"`);
    }
    const bytes = numel(t.shape) * SAFE_DTYPE_BYTES[t.dtype];
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  const jsonLen = new TextEncoder().encode(json).length;
  json += " ".repeat((8 - (jsonLen % 8)) % 8);
  const headerBytes = new TextEncoder().encode(json);
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(headerBytes.length), true);

  // Check everything first so a bad tensor does not leave a half-written file.
  for (const t of tensors) {
    if (!canWrite(t.data, t.dtype)) {
      throw new SafetensorsError(
        `${path}: cannot write a ${t.data.constructor.name} as ${t.dtype} (tensor "${t.name}")`,
      );
    }
    const want = numel(t.shape) * SAFE_DTYPE_BYTES[t.dtype];
    const got = t.data instanceof Uint8Array
      ? t.data.length
      : t.data.length * SAFE_DTYPE_BYTES[t.dtype];
    if (got !== want) {
      throw new SafetensorsError(
        `${path}: tensor "${t.name}" has ${got} data bytes but shape [${t.shape}] × ${t.dtype} needs ${want}`,
      );
    }
  }
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  try {
    await writeAll(file, prefix);
    await writeAll(file, headerBytes);
    for (const t of tensors) await writeAll(file, encode(t));
  } finally {
    file.close();
  }
}
