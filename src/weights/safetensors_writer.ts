/**
 * Writing safetensors files (the format: see `safetensors.ts`), tensor by tensor so that the
 * output may exceed 2 GiB: the synthetic model's files and the tests' fixtures.
 *
 * @module
 */

import { numel } from "../shape.ts";
import { SafetensorsError } from "./safetensors.ts";
import { isSafeDType, SAFE_DTYPE_BYTES, type SafeDType, toBF16 } from "./safetensors_dtype.ts";

/** Writes all of `buf`, looping over short writes. */
async function writeAll(file: Deno.FsFile, buf: Uint8Array): Promise<void> {
  let done = 0;
  while (done < buf.length) done += await file.write(buf.subarray(done));
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
