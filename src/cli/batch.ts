/**
 * Jobs from stdin, one a line, for shell pipelines: a plain line is a prompt that takes the
 * command-line settings; a line starting with `{` is a JSON object whose fields override them:
 * `{"prompt", "negative", "seed", "steps", "guidance", "width", "height", "scheduler", "out",
 * "lora", "init_image", "mask", "strength"}` (`"lora"`: a list of `"FILE[:SCALE]"` as `--lora`
 * takes them, replacing `--lora`'s; image paths relative to the working directory: jobs come from
 * stdin, which has no folder of its own). `"out"` is relative to the output folder (`-o`'s, or
 * the working directory) and, unless `--allow-any-out`, stays inside it: jobs often come from
 * generated or untrusted files.
 * Each field has one JSON type and is checked as its command-line option is, numbers with the
 * flags' grammar (see `args.ts`). Empty lines are skipped with a note; a bad line becomes an error
 * item carrying its line number, and the batch goes on.
 *
 * @module
 */

import {
  checkImageInputs,
  checkPromptLength,
  checkSeedRange,
  excerpt,
  IMAGE_FIELDS,
  JOB_FIELDS,
  type JobSettings,
  parseGuidance,
  parseScheduler,
  parseSeed,
  parseSize,
  parseSteps,
  parseStrength,
} from "./args.ts";
import { type LoraUse, parseLoraOption } from "./lora.ts";
import { UsageError } from "../errors.ts";
import { dirname, isAbsolute, join, relative } from "../std/path.ts";

/** Every key a batch line may hold. */
const LINE_KEYS: readonly string[] = [...JOB_FIELDS, ...Object.keys(IMAGE_FIELDS)];

/** One image request (before its seed is drawn and `--batch` expands it). */
export interface Job extends JobSettings {
  /** 1-based stdin line, or null for the command line's prompt. */
  line: number | null;
}

/** What one stdin line gives. */
export type BatchItem =
  | { kind: "job"; job: Job }
  | { kind: "skip"; line: number; note: string }
  | { kind: "error"; line: number; message: string };

/** What {@linkcode parseJobLine} needs from the command line besides its settings. */
export interface LineOptions {
  /** `--batch`: the images each line makes (its seeds must stay ≤ 2^64−1). */
  batch?: number;
  /** `--allow-any-out`: an `"out"` may hold `..` or be absolute. */
  allowAnyOut?: boolean;
  /** The output folder (`-o`'s, or the working directory) a line's `"out"` is relative to. */
  outDir?: string;
}

/** Whether `out` stays inside the folder it is relative to: not absolute, no `..` part. */
export function staysInside(out: string): boolean {
  if (/^[\\/]/.test(out) || /^[A-Za-z]:/.test(out)) return false; // POSIX, UNC, Windows drive
  return !out.split(/[\\/]/).includes("..");
}

/**
 * Whether `out` (which {@linkcode staysInside} passed) also stays inside `outDir` on disk: the
 * nearest part of `outDir/out` that exists, with its symbolic links resolved, is `outDir` or in
 * it. A folder that does not exist yet holds no links.
 */
export function resolvesInside(outDir: string, out: string): boolean {
  let root: string;
  try {
    root = Deno.realPathSync(outDir);
  } catch {
    return true;
  }
  for (let p = join(outDir, out);; p = dirname(p)) {
    try {
      const rel = relative(root, Deno.realPathSync(p));
      return rel === "" || (!isAbsolute(rel) && !rel.split(/[\\/]/).includes(".."));
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound) || dirname(p) === p) return true;
    }
  }
}

/**
 * Checks that a line's `out` stays inside `outDir`, by its text ({@linkcode staysInside}) and on
 * disk ({@linkcode resolvesInside}).
 *
 * @throws {UsageError} naming the way out and `--allow-any-out`
 */
function checkOutInside(outDir: string, out: string): void {
  const how = !staysInside(out)
    ? 'leaves the output folder; give a path inside it (no "..", not absolute)'
    : !resolvesInside(outDir, out)
    ? "leads out of the output folder through a symbolic link; give a path inside it"
    : null;
  if (how) {
    throw new UsageError(
      `"out": ${JSON.stringify(excerpt(out))} ${how}, or run sd with --allow-any-out`,
    );
  }
}

/**
 * A batch line's JSON object with each field checked for its one JSON type: text fields are
 * strings; numeric fields are JSON numbers, handed on as written (their source text) so that
 * the option parsers read them with the flags' grammar, exactly (seeds up to 2^64−1 included).
 * `null` is the same as a missing field: the command line's value.
 */
class LineFields {
  readonly #o: Record<string, unknown>;
  readonly #numbers: Map<string, string>;

  constructor(o: Record<string, unknown>, numbers: Map<string, string>) {
    this.#o = o;
    this.#numbers = numbers;
  }

  #shown(v: unknown): string {
    return excerpt(JSON.stringify(v));
  }

  /** A text field, or undefined when absent. */
  text(key: string): string | undefined {
    const v = this.#o[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "string") {
      throw new Error(`"${key}": ${this.#shown(v)} is not a string; write "${key}": "…"`);
    }
    return v;
  }

  /** A numeric field as written (its JSON source text), or undefined when absent. */
  number(key: string): string | undefined {
    const v = this.#o[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "number") {
      throw new Error(
        `"${key}": ${this.#shown(v)} is ${
          typeof v === "string" ? "a string" : "not a number"
        }; write a JSON number without quotes, e.g. "${key}": ${EXAMPLES[key] ?? 1}`,
      );
    }
    return this.#numbers.get(key)!;
  }

  /** `"lora"`: one `"FILE[:SCALE]"` or a list of them, or undefined when absent. */
  lora(): LoraUse[] | undefined {
    const v = this.#o.lora;
    if (v === undefined || v === null) return undefined;
    const list = typeof v === "string" ? [v] : v;
    if (!Array.isArray(list) || !list.every((x) => typeof x === "string")) {
      throw new Error(
        `"lora": ${this.#shown(v)} is not a list of files; write "lora": ["file.safetensors:0.8"]`,
      );
    }
    return list.map((raw) => parseLoraOption(raw, '"lora"'));
  }
}

const EXAMPLES: Record<string, string> = {
  seed: "42",
  steps: "20",
  guidance: "7.5",
  width: "512",
  height: "512",
  strength: "0.8",
};

/** JSON.parse's reviver context (V8's JSON.parse source text access). */
interface ReviverContext {
  source?: string;
}

/**
 * Parses a line's JSON, returning the value and the source text of each number directly in the
 * top-level object (JSON.parse would round `18446744073709551615` and read `1e3` as 1000).
 */
function parseWithNumbers(text: string): { value: unknown; numbers: Map<string, string> } {
  const seen: [unknown, string, string][] = [];
  const value = JSON.parse(
    text,
    function (this: unknown, key: string, v: unknown, ctx?: ReviverContext) {
      if (typeof v === "number" && ctx?.source !== undefined) seen.push([this, key, ctx.source]);
      return v;
    } as (key: string, value: unknown) => unknown,
  );
  return { value, numbers: new Map(seen.filter(([h]) => h === value).map(([, k, s]) => [k, s])) };
}

/**
 * Turns one stdin line into a job with `defaults` (the command line's settings) filled in.
 *
 * @example
 * ```ts
 * parseJobLine('{"prompt": "a cat", "steps": 4}', 2, defaults);
 * // { kind: "job", job: { prompt: "a cat", steps: 4, line: 2, ...defaults } }
 * ```
 */
export function parseJobLine(
  raw: string,
  line: number,
  defaults: Omit<JobSettings, "prompt">,
  opts: LineOptions = {},
): BatchItem {
  const trimmed = raw.trim();
  if (trimmed === "") {
    return {
      kind: "skip",
      line,
      note: `line ${line}: empty, skipped (an unconditional image is {"prompt": ""})`,
    };
  }
  const fail = (what: string): BatchItem => ({
    kind: "error",
    line,
    message: `line ${line}: ${what}`,
  });
  if (!trimmed.startsWith("{")) {
    try {
      checkPromptLength(trimmed, "the prompt");
    } catch (e) {
      return fail((e as Error).message);
    }
    return { kind: "job", job: { ...defaults, prompt: trimmed, line } };
  }
  let parsed;
  try {
    parsed = parseWithNumbers(trimmed);
  } catch (e) {
    return fail(
      `not valid JSON (${
        (e as Error).message
      }); write a plain prompt or an object like {"prompt": "a cat", "seed": 1}`,
    );
  }
  const o = parsed.value as Record<string, unknown>; // valid JSON starting with "{" is an object
  const unknown = Object.keys(o).filter((k) => !LINE_KEYS.includes(k));
  if (unknown.length) {
    return fail(
      `unknown field${unknown.length > 1 ? "s" : ""} ${
        unknown.map((k) => `"${excerpt(k)}"`).join(", ")
      }; the fields are ${LINE_KEYS.join(", ")}`,
    );
  }
  const f = new LineFields(o, parsed.numbers);
  try {
    const prompt = f.text("prompt");
    if (prompt === undefined) {
      return fail('the object has no "prompt"; add "prompt": "…" ("" for an unconditional image)');
    }
    checkPromptLength(prompt, '"prompt"');
    const negative = f.text("negative");
    if (negative !== undefined) checkPromptLength(negative, '"negative"');
    const out = f.text("out");
    if (out === "") throw new Error(`"out" is empty; give a .png file or a directory`);
    if (out !== undefined && !opts.allowAnyOut) checkOutInside(opts.outDir ?? ".", out);
    const path = (key: "init_image" | "mask") => {
      const v = f.text(key);
      if (v === "") throw new Error(`"${key}" is empty; give a PNG or JPEG file`);
      return v;
    };
    const num = <T>(key: string, parse: (raw: string, field: string) => T, fallback: T): T => {
      const v = f.number(key);
      return v === undefined ? fallback : parse(v, `"${key}"`);
    };
    const seed = num("seed", parseSeed, defaults.seed);
    checkSeedRange(seed, opts.batch ?? 1, '"seed"');
    const scheduler = f.text("scheduler");
    const job: Job = {
      prompt,
      negative: negative ?? defaults.negative,
      seed,
      steps: num("steps", parseSteps, defaults.steps),
      guidance: num("guidance", parseGuidance, defaults.guidance),
      width: num("width", parseSize, defaults.width),
      height: num("height", parseSize, defaults.height),
      scheduler: scheduler === undefined
        ? defaults.scheduler
        : parseScheduler(scheduler, '"scheduler"'),
      out: out === undefined ? defaults.out : isAbsolute(out) ? out : join(opts.outDir ?? ".", out),
      lora: f.lora() ?? defaults.lora,
      initImage: path("init_image") ?? defaults.initImage,
      mask: path("mask") ?? defaults.mask,
      strength: num("strength", parseStrength, defaults.strength),
      line,
    };
    checkImageInputs(job, (k) => `"${k}"`);
    return { kind: "job", job };
  } catch (e) {
    return fail((e as Error).message);
  }
}

/**
 * The lines of a byte stream (UTF-8), without their `\n` or `\r\n`, as they arrive — so a job
 * starts as soon as its line is complete. A last line without a newline counts.
 */
export async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of stream) {
    pending += decoder.decode(chunk, { stream: true });
    let nl;
    while ((nl = pending.indexOf("\n")) >= 0) {
      yield pending.slice(0, nl).replace(/\r$/, "");
      pending = pending.slice(nl + 1);
    }
  }
  pending += decoder.decode();
  if (pending !== "") yield pending.replace(/\r$/, "");
}
