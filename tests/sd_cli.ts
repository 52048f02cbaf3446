/**
 * Running the `sd` command in tests: the real program as a subprocess (`deno run -A main.ts …`,
 * or a compiled binary) in a directory of the test's, with its own weights cache; the PNGs it
 * writes read back (pixels and text chunks); its one-line errors checked.
 *
 * @module
 */

import { assert, assertEquals } from "../src/std/assert.ts";
import { fromFileUrl, join } from "../src/std/path.ts";
import * as png from "imagescript/png/src/png.mjs";

/** The repository root. */
export const REPO: string = fromFileUrl(new URL("../", import.meta.url));
/** The program's entry point. */
export const MAIN: string = join(REPO, "main.ts");

/** What a run of `sd` gave. */
export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Environment for every subprocess: its own weights cache, no colours, Mesa's runtime dir. */
export function childEnv(
  cache: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    SD_CACHE: cache,
    NO_COLOR: "1",
    XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp",
    ...extra,
  };
}

/**
 * Runs `sd args…` (through `deno run -A main.ts`, or `bin`) in `cwd` with `stdin` text or none;
 * the weights cache is `cwd/.cache`.
 */
export async function sd(
  cwd: string,
  args: string[],
  opts: { stdin?: string; env?: Record<string, string>; bin?: string } = {},
): Promise<Result> {
  const cmd = new Deno.Command(opts.bin ?? Deno.execPath(), {
    args: opts.bin ? args : ["run", "-A", MAIN, ...args],
    cwd,
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    env: childEnv(join(cwd, ".cache"), opts.env),
  });
  const child = cmd.spawn();
  if (opts.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(opts.stdin));
    await w.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** The text chunks of a PNG, keyword → text (tEXt as Latin-1, iTXt as UTF-8), before IDAT. */
export function pngText(bytes: Uint8Array): Record<string, string> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Record<string, string> = {};
  const order: string[] = [];
  for (let at = 8; at < bytes.length;) {
    const len = view.getUint32(at);
    const type = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
    order.push(type);
    const data = bytes.subarray(at + 8, at + 8 + len);
    if (type === "tEXt" || type === "iTXt") {
      const nul = data.indexOf(0);
      const key = String.fromCharCode(...data.subarray(0, nul));
      out[key] = type === "tEXt"
        ? String.fromCharCode(...data.subarray(nul + 1))
        : new TextDecoder().decode(data.subarray(nul + 5));
      assert(order.indexOf("IDAT") === -1, `${type} ${key} comes before the image data`);
    }
    at += 12 + len;
  }
  assertEquals(order[0], "IHDR");
  assertEquals(order.at(-1), "IEND");
  return out;
}

/** A PNG's pixels as H×W×3 RGB values in [0, 1] (diffusers' `output_type="np"` layout). */
export function pngRgb(bytes: Uint8Array): { width: number; height: number; rgb: Float32Array } {
  const d = png.decode(bytes) as { width: number; height: number; buffer: Uint8Array };
  const rgb = new Float32Array(d.width * d.height * 3);
  for (let p = 0; p < d.width * d.height; p++) {
    for (let c = 0; c < 3; c++) rgb[3 * p + c] = d.buffer[4 * p + c] / 255; // RGBA
  }
  return { width: d.width, height: d.height, rgb };
}

/** Asserts that stderr is one line `sd: …` including `includes`. */
export function oneErrorLine(r: Result, includes: string): void {
  const lines = r.stderr.trimEnd().split("\n").filter((l) => !/^error: XDG_RUNTIME_DIR/.test(l));
  assertEquals(lines.length, 1, `one line on stderr, got:\n${r.stderr}`);
  assert(lines[0].startsWith("sd: "), `"sd: " prefix: ${lines[0]}`);
  assert(lines[0].includes(includes), `"${includes}" in: ${lines[0]}`);
}
