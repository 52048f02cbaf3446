/**
 * The element types of safetensors files and their conversions to and from the f32 and f16 the
 * models compute in (shared by the reader, its worker and the writer).
 *
 * @module
 */

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

/** Whether `s` names a {@linkcode SafeDType}. */
export function isSafeDType(s: unknown): s is SafeDType {
  return typeof s === "string" && Object.hasOwn(SAFE_DTYPE_BYTES, s);
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

/** Converts little-endian F32/F16/BF16/F64 bytes to f32 (copying first if misaligned). */
export function toF32(raw: Uint8Array, dtype: SafeDType): Float32Array {
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
export function toBF16(src: Float32Array): Uint16Array {
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
