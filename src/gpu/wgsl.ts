/**
 * WGSL sources from `kernels/` and the one specialization mechanism: `${NAME}` tokens replaced by
 * values, and `#if NAME` / `#else` / `#endif` lines kept or dropped by a define's truthiness.
 * Shapes never go here (they are uniforms); only what changes the code (dtype, tile, fusion).
 *
 * @module
 */

const sources = new Map<string, string>();

/** Values a kernel is specialized on. */
export type Defines = Record<string, string | number | boolean>;

/** The text of `kernels/<file>` (read once; embedded by `deno compile --include kernels/`). */
export function kernelSource(file: string): string {
  let src = sources.get(file);
  if (src === undefined) {
    src = Deno.readTextFileSync(new URL(`../../kernels/${file}`, import.meta.url));
    sources.set(file, src);
  }
  return src;
}

/**
 * Applies `defines` to WGSL `src`: `#if`/`#else`/`#endif` blocks, then `${NAME}` tokens. Adds
 * `enable f16;` when the result uses f16.
 */
export function specialize(src: string, defines: Defines): string {
  const out: string[] = [];
  const stack: { active: boolean; parentActive: boolean; taken: boolean }[] = [];
  let active = true;
  for (const line of src.split("\n")) {
    const t = line.trim();
    const m = /^#(if|elif)\s+(!?)(\w+)\s*$/.exec(t);
    if (m && m[1] === "if") {
      const cond = !!defines[m[3]] !== (m[2] === "!");
      stack.push({ active, parentActive: active, taken: cond });
      active = active && cond;
      continue;
    }
    if (m && m[1] === "elif") {
      const top = stack.at(-1);
      if (!top) throw new Error(`#elif without #if in kernel source`);
      const cond = !!defines[m[3]] !== (m[2] === "!");
      active = top.parentActive && !top.taken && cond;
      top.taken ||= cond;
      continue;
    }
    if (t === "#else") {
      const top = stack.at(-1);
      if (!top) throw new Error(`#else without #if in kernel source`);
      active = top.parentActive && !top.taken;
      top.taken = true;
      continue;
    }
    if (t === "#endif") {
      const top = stack.pop();
      if (!top) throw new Error(`#endif without #if in kernel source`);
      active = top.parentActive;
      continue;
    }
    if (active) out.push(line);
  }
  if (stack.length) throw new Error("unterminated #if in kernel source");
  let code = out.join("\n").replace(/\$\{(\w+)\}/g, (_, k: string) => {
    if (!(k in defines)) throw new Error(`kernel source uses \${${k}} but no value was given`);
    return String(defines[k]);
  });
  const codeOnly = code.replace(/\/\/[^\n]*/g, "").replace(/\/\*[\s\S]*?\*\//g, "");
  if (/\bf16\b/.test(codeOnly) && !/enable\s+f16\s*;/.test(codeOnly)) code = "enable f16;\n" + code;
  return code;
}

/** Packs uniform fields (4-byte scalars, in struct order) into an ArrayBuffer. */
export class Uniforms {
  #view = new DataView(new ArrayBuffer(256));
  #n = 0;

  /** Appends an unsigned 32-bit integer. */
  u32(x: number): this {
    this.#view.setUint32(4 * this.#n++, x, true);
    return this;
  }

  /** Appends a signed 32-bit integer. */
  i32(x: number): this {
    this.#view.setInt32(4 * this.#n++, x, true);
    return this;
  }

  /** Appends a 32-bit float. */
  f32(x: number): this {
    this.#view.setFloat32(4 * this.#n++, x, true);
    return this;
  }

  /** The packed bytes, padded to 16. */
  get buffer(): ArrayBuffer {
    const bytes = Math.max(16, Math.ceil((4 * this.#n) / 16) * 16);
    return this.#view.buffer.slice(0, bytes);
  }
}
