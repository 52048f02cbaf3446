/**
 * Reading safetensors files (https://github.com/huggingface/safetensors#format):
 * an 8-byte little-endian header length `N`, `N` bytes of JSON mapping each tensor name to
 * `{dtype, shape, data_offsets: [begin, end]}` (offsets relative to the end of the header) plus an
 * optional `__metadata__` string map, then the raw little-endian tensor data.
 *
 * {@linkcode SafeTensorsFile.open} reads and validates only the header; each tensor is then read
 * on its own (seek + read), so files larger than 2 GiB (the SD 1.5 f32 UNet is 3.4 GB) never sit
 * in memory as one `ArrayBuffer`. {@linkcode SafeTensorsFile.stream} reads many tensors on a
 * worker thread (`safetensors_worker.ts`) for model loading. Writing: `safetensors_writer.ts`.
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

import { UserError } from "../errors.ts";
import { numel } from "../shape.ts";
import {
  convertTensor,
  isSafeDType,
  SAFE_DTYPE_BYTES,
  type SafeDType,
  toF32,
} from "./safetensors_dtype.ts";
import type { StreamItem, StreamReply, StreamRequest } from "./safetensors_worker.ts";

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
