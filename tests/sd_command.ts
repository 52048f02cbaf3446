/**
 * The `sd` command as tests run it: the real program as a subprocess (`deno run -A main.ts …`)
 * in a folder of the test's, and what tests read back (stderr's one error line, a PNG's text
 * chunks).
 *
 * @module
 */

import { assert, assertEquals } from "../src/std/assert.ts";
import { fromFileUrl, join } from "../src/std/path.ts";

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

/** How {@linkcode sd} runs the program. */
export interface SdOptions {
  /** Text on stdin (none: stdin is null). */
  stdin?: string;
  /** Variables on top of {@linkcode childEnv}'s. */
  env?: Record<string, string>;
  /** Variables the child must not inherit (e.g. `XDG_RUNTIME_DIR`). */
  unset?: string[];
  /** A compiled executable to run instead of `deno run -A <script>`. */
  bin?: string;
  /** The entry point, relative to the repository (default `main.ts`; tests stand-ins too). */
  script?: string;
}

/** Runs `sd args…` (through `deno run -A main.ts`, or `bin`) in `cwd` with `stdin` text or none. */
export async function sd(cwd: string, args: string[], opts: SdOptions = {}): Promise<Result> {
  const env = childEnv(join(cwd, ".cache"), opts.env);
  const inherited = Deno.env.toObject();
  for (const name of opts.unset ?? []) {
    delete inherited[name];
    delete env[name];
  }
  const cmd = new Deno.Command(opts.bin ?? Deno.execPath(), {
    args: opts.bin ? args : ["run", "-A", join(REPO, opts.script ?? "main.ts"), ...args],
    cwd,
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    clearEnv: opts.unset !== undefined,
    env: opts.unset !== undefined ? { ...inherited, ...env } : env,
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

/** The text chunks of a PNG, keyword → text (tEXt as Latin-1, iTXt as UTF-8). */
export function pngText(png: Uint8Array): Record<string, string> {
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  const out: Record<string, string> = {};
  const order: string[] = [];
  for (let at = 8; at < png.length;) {
    const len = view.getUint32(at);
    const type = String.fromCharCode(...png.subarray(at + 4, at + 8));
    order.push(type);
    const data = png.subarray(at + 8, at + 8 + len);
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

/** Checks that stderr is one line `sd: …` holding `includes`. */
export function oneErrorLine(r: Result, includes: string): void {
  const lines = r.stderr.trimEnd().split("\n").filter((l) => !/^error: XDG_RUNTIME_DIR/.test(l));
  assertEquals(lines.length, 1, `one line on stderr, got:\n${r.stderr}`);
  assert(lines[0].startsWith("sd: "), `"sd: " prefix: ${lines[0]}`);
  assert(lines[0].includes(includes), `"${includes}" in: ${lines[0]}`);
}
