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

/** Bytes and alignment of a WGSL scalar or vector type of workgroup variables. */
function typeLayout(type: string): { size: number; align: number } {
  const scalar = (
    t: string,
  ) => (t === "f16" ? 2 : t === "f32" || t === "u32" || t === "i32" ? 4 : 0);
  let m = /^(f16|f32|u32|i32)$/.exec(type);
  if (m) return { size: scalar(m[1]), align: scalar(m[1]) };
  m = /^atomic<(u32|i32)>$/.exec(type);
  if (m) return { size: 4, align: 4 };
  m = /^vec([234])<(f16|f32|u32|i32)>$/.exec(type);
  if (m) {
    const n = Number(m[1]), s = scalar(m[2]);
    const align = (n === 2 ? 2 : 4) * s; // vec3 aligns (and strides, in arrays) as vec4
    return { size: n * s, align };
  }
  throw new Error(`workgroup variable of type ${type}: not a scalar or vector`);
}

/**
 * Evaluates an integer WGSL constant expression (`+ - * / %`, parentheses, `u`/`i` literals and
 * names of module-scope `const`s from `consts`, themselves evaluated on demand).
 */
function evalConst(expr: string, consts: Map<string, string>, depth = 0): number {
  if (depth > 32) throw new Error(`constant ${expr}: nested too deep`);
  const tokens = expr.match(/\d+[ui]?|[A-Za-z_]\w*|[-+*/%()]/g) ?? [];
  if (tokens.join("") !== expr.replace(/\s+/g, "")) {
    throw new Error(`constant ${expr}: not integer`);
  }
  let i = 0;
  const factor = (): number => {
    const t = tokens[i++];
    if (t === "(") {
      const v = sum();
      i++; // ")"
      return v;
    }
    if (t === "-") return -factor();
    if (/^\d/.test(t)) return parseInt(t, 10);
    const def = consts.get(t);
    if (def === undefined) throw new Error(`constant ${t}: not declared`);
    return evalConst(def, consts, depth + 1);
  };
  const product = (): number => {
    let v = factor();
    while (tokens[i] === "*" || tokens[i] === "/" || tokens[i] === "%") {
      const op = tokens[i++], r = factor();
      v = op === "*" ? v * r : op === "/" ? Math.trunc(v / r) : v % r;
    }
    return v;
  };
  const sum = (): number => {
    let v = product();
    while (tokens[i] === "+" || tokens[i] === "-") {
      const op = tokens[i++], r = product();
      v = op === "+" ? v + r : v - r;
    }
    return v;
  };
  return sum();
}

/**
 * Bytes of workgroup memory a (specialized) kernel declares: every `var<workgroup>` scalar,
 * vector or array of them, array lengths evaluated from module-scope `const`s, each variable
 * rounded up to 16 bytes. Wgpu (Deno 2.9) does not check this against
 * `maxComputeWorkgroupStorageSize` — Metal, D3D12 and Vulkan drivers with 16 or 32 KiB do — so
 * the device checks it itself ({@linkcode Gpu.kernel} in device.ts).
 *
 * @throws {Error} naming the variable when a type or length cannot be read (a bug in `kernels/`).
 */
export function workgroupBytes(code: string): number {
  const src = code.replace(/\/\/.*$/gm, "");
  const consts = new Map<string, string>();
  for (const m of src.matchAll(/^\s*const\s+(\w+)\s*(?::\s*\w+\s*)?=\s*([^;]+);/gm)) {
    consts.set(m[1], m[2].trim());
  }
  let total = 0;
  for (const m of src.matchAll(/var<workgroup>\s+(\w+)\s*:\s*([^;]+);/g)) {
    const [, name, type] = m;
    const t = type.replace(/\s+/g, "");
    let bytes: number;
    const arr = /^array<(.+),([^,<>]+)>$/.exec(t);
    try {
      if (arr) {
        const el = typeLayout(arr[1]);
        const stride = Math.ceil(el.size / el.align) * el.align;
        bytes = stride * evalConst(arr[2], consts);
      } else {
        bytes = typeLayout(t).size;
      }
    } catch (e) {
      throw new Error(`var<workgroup> ${name}: ${(e as Error).message}`);
    }
    total += Math.ceil(bytes / 16) * 16;
  }
  return total;
}
