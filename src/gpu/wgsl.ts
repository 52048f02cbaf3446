/**
 * WGSL sources from `kernels/` and the one specialization mechanism: `#include "name.wgsl"` lines
 * replaced by the snippet `kernels/common/name.wgsl` (each at most once a kernel), `${NAME}` tokens
 * replaced by values, and `#if NAME` / `#else` / `#endif` lines kept or dropped by a define's
 * truthiness. Shapes never go here (they are uniforms); only what changes the code (dtype, tile,
 * fusion). Also the bindings a kernel declares ({@linkcode parseBindings}).
 *
 * @module
 */

const sources = new Map<string, string>();

/** Values a kernel is specialized on. */
export type Defines = Record<string, string | number | boolean>;

/** Where shared snippets live: `#include "x.wgsl"` reads `kernels/common/x.wgsl`. */
export const INCLUDE_DIR = "common/";

function readKernelFile(path: string): string {
  return Deno.readTextFileSync(new URL(`../../kernels/${path}`, import.meta.url));
}

/**
 * The text of `kernels/<file>` with its includes expanded ({@linkcode expandIncludes}); read once.
 * `deno compile --include kernels/` embeds the folder, `kernels/common/` with it.
 */
export function kernelSource(file: string): string {
  let src = sources.get(file);
  if (src === undefined) {
    src = expandIncludes(readKernelFile(file), file);
    sources.set(file, src);
  }
  return src;
}

/**
 * Replaces every `#include "name.wgsl"` line (optionally followed by a `//` comment) of `src` (the
 * kernel `file`) by the text of
 * `common/name.wgsl`, read through `read` (a path relative to `kernels/`; by default from the
 * `kernels/` folder beside `src/`, as {@linkcode kernelSource} reads it), recursively. A snippet
 * already included into this kernel is skipped (WGSL forbids declaring a name twice), which also
 * ends include cycles. Includes are expanded before `#if`, so a snippet may use defines and
 * `${NAME}` tokens of the kernel that includes it; and the once-rule holds for the whole file
 * whatever its `#if`s, so a snippet that several sections use is included once, above them.
 *
 * @throws {Error} naming the including file and the missing snippet when `read` fails.
 */
export function expandIncludes(
  src: string,
  file: string,
  read: (path: string) => string = readKernelFile,
  seen: Set<string> = new Set(),
): string {
  const bad = /^[ \t]*#include\b(?![ \t]+"[\w.\-]+"[ \t]*(\/\/.*)?$).*$/m.exec(src);
  if (bad) {
    throw new Error(`kernels/${file}: malformed ${bad[0].trim()}: write #include "name.wgsl"`);
  }
  return src.replace(/^[ \t]*#include[ \t]+"([\w.\-]+)"[ \t]*(?:\/\/.*)?$/gm, (_, name: string) => {
    if (seen.has(name)) return `// #include "${name}": already included`;
    seen.add(name);
    const path = INCLUDE_DIR + name;
    let text: string;
    try {
      text = read(path);
    } catch (e) {
      const why = (e as Error).message;
      throw new Error(`kernels/${file}: #include "${name}": cannot read kernels/${path} (${why})`);
    }
    return expandIncludes(text.replace(/\n$/, ""), path, read, seen);
  });
}

/**
 * The bindings a kernel declares, from its WGSL: binding 0 must be the `var<uniform>` block,
 * 1…n storage buffers (`read` or `read_write`), all in group 0. Returns, for bindings 1…n,
 * whether each is read-only.
 *
 * @throws {Error} when the kernel breaks that rule (a bug in `kernels/`, not a user error).
 */
export function parseBindings(name: string, code: string): boolean[] {
  const re =
    /@group\(0\)\s*@binding\((\d+)\)\s*var<\s*(uniform|storage\s*,\s*read_write|storage\s*,\s*read|storage)\s*>/g;
  const found = new Map<number, string>();
  for (const m of code.matchAll(re)) found.set(Number(m[1]), m[2].replace(/\s+/g, ""));
  if (found.get(0) !== "uniform") {
    throw new Error(`kernel ${name}: binding 0 must be the var<uniform> parameter block`);
  }
  const readOnly: boolean[] = [];
  for (let i = 1; i < found.size; i++) {
    const kind = found.get(i);
    if (kind === undefined) {
      throw new Error(`kernel ${name}: bindings must be numbered 0…n without gaps`);
    }
    readOnly.push(kind === "storage,read");
  }
  return readOnly;
}

/**
 * Applies `defines` to WGSL `src`: `#if`/`#else`/`#endif` blocks, then `${NAME}` tokens. Adds
 * `enable f16;` when the result uses f16, and expands `#unroll` loops ({@linkcode unrollLoops}).
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
  return unrollLoops(code);
}

/**
 * Expands every loop whose header line is preceded by a `#unroll` line:
 * `for (var i = 0u; i < N; i++) { … }` where N is an integer literal (`4u`) or the name of a
 * `const N = <int>u;` declared in `src`. The body is repeated N times with `i` replaced by the
 * literal index, so that indices into private arrays become constants. Needed because at least one
 * driver (NVIDIA's Vulkan compiler, through wgpu) leaves such loops rolled and the arrays they
 * index in local memory: unrolled, the flash kernel ran 10.8× faster on an H200.
 */
export function unrollLoops(src: string): string {
  const consts = new Map<string, number>();
  for (const m of src.matchAll(/^\s*const\s+(\w+)\s*=\s*(\d+)u\s*;/gm)) {
    consts.set(m[1], Number(m[2]));
  }
  const head = /^[ \t]*#unroll[ \t]*\n[ \t]*for \(var (\w+) = 0u; \1 < (\w+); \1\+\+\) \{/m;
  let out = src;
  for (let m = head.exec(out); m; m = head.exec(out)) {
    const [, name, bound] = m;
    const n = /^\d+u?$/.test(bound) ? parseInt(bound) : consts.get(bound);
    if (n === undefined) throw new Error(`#unroll: loop bound ${bound} is not a constant`);
    const open = m.index + m[0].length - 1;
    let depth = 0, close = open;
    for (; close < out.length; close++) {
      if (out[close] === "{") depth++;
      else if (out[close] === "}" && --depth === 0) break;
    }
    if (depth !== 0) throw new Error(`#unroll: unbalanced braces after loop over ${name}`);
    const body = out.slice(open + 1, close);
    const use = new RegExp(`(?<![.\\w])${name}\\b`, "g");
    const copies = Array.from({ length: n }, (_, i) => `{${body.replace(use, `${i}u`)}}`);
    out = out.slice(0, m.index) + copies.join("\n") + out.slice(close + 1);
  }
  return out;
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
