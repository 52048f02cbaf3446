/**
 * Jobs from stdin, one a line, for shell pipelines: a plain line is a prompt that takes the
 * command-line settings; a line starting with `{` is a JSON object whose fields override them:
 * `{"prompt", "negative", "seed", "steps", "guidance", "width", "height", "scheduler", "out",
 * "lora", "init_image", "mask", "strength"}` (`"lora"`: a list of `"FILE[:SCALE]"` as `--lora`
 * takes them, replacing `--lora`'s; image paths relative to the working directory: jobs come from
 * stdin, which has no folder of its own).
 * Each field is checked as its command-line option is. Empty lines are skipped with a note; a bad
 * line becomes an error item carrying its line number, and the batch goes on.
 *
 * @module
 */

import {
  checkImageInputs,
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

function text(obj: Record<string, unknown>, key: string): string | undefined {
  const v = obj[key];
  if (v === undefined) return undefined;
  if (typeof v !== "string") {
    throw new Error(`"${key}": ${JSON.stringify(v)} is not a string; write "${key}": "…"`);
  }
  return v;
}

function loraList(obj: Record<string, unknown>): LoraUse[] | undefined {
  const v = obj.lora;
  if (v === undefined) return undefined;
  const list = typeof v === "string" ? [v] : v;
  if (!Array.isArray(list) || !list.every((x) => typeof x === "string")) {
    throw new Error(
      `"lora": ${JSON.stringify(v)} is not a list of files; write "lora": ["file.safetensors:0.8"]`,
    );
  }
  return list.map((raw) => parseLoraOption(raw, '"lora"'));
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
): BatchItem {
  const trimmed = raw.trim();
  if (trimmed === "") {
    return {
      kind: "skip",
      line,
      note: `line ${line}: empty, skipped (an unconditional image is {"prompt": ""})`,
    };
  }
  if (!trimmed.startsWith("{")) {
    return { kind: "job", job: { ...defaults, prompt: trimmed, line } };
  }
  const fail = (what: string): BatchItem => ({
    kind: "error",
    line,
    message: `line ${line}: ${what}`,
  });
  let obj: unknown;
  try {
    obj = JSON.parse(trimmed);
  } catch (e) {
    return fail(
      `not valid JSON (${
        (e as Error).message
      }); write a plain prompt or an object like {"prompt": "a cat", "seed": 1}`,
    );
  }
  const o = obj as Record<string, unknown>; // valid JSON starting with "{" is an object
  const unknown = Object.keys(o).filter((k) => !LINE_KEYS.includes(k));
  if (unknown.length) {
    return fail(
      `unknown field${unknown.length > 1 ? "s" : ""} ${
        unknown.map((k) => `"${k}"`).join(", ")
      }; the fields are ${LINE_KEYS.join(", ")}`,
    );
  }
  try {
    const prompt = text(o, "prompt");
    if (prompt === undefined) {
      return fail('the object has no "prompt"; add "prompt": "…" ("" for an unconditional image)');
    }
    const out = text(o, "out");
    if (out === "") throw new Error(`"out" is empty; give a .png file or a directory`);
    const path = (key: "init_image" | "mask") => {
      const v = text(o, key);
      if (v === "") throw new Error(`"${key}" is empty; give a PNG or JPEG file`);
      return v;
    };
    const job: Job = {
      prompt,
      negative: text(o, "negative") ?? defaults.negative,
      seed: o.seed === undefined || o.seed === null ? defaults.seed : parseSeed(o.seed, '"seed"'),
      steps: o.steps === undefined ? defaults.steps : parseSteps(o.steps, '"steps"'),
      guidance: o.guidance === undefined
        ? defaults.guidance
        : parseGuidance(o.guidance, '"guidance"'),
      width: o.width === undefined ? defaults.width : parseSize(o.width, '"width"'),
      height: o.height === undefined ? defaults.height : parseSize(o.height, '"height"'),
      scheduler: o.scheduler === undefined
        ? defaults.scheduler
        : parseScheduler(o.scheduler, '"scheduler"'),
      out: out ?? defaults.out,
      lora: loraList(o) ?? defaults.lora,
      initImage: path("init_image") ?? defaults.initImage,
      mask: path("mask") ?? defaults.mask,
      strength: o.strength === undefined
        ? defaults.strength
        : parseStrength(o.strength, '"strength"'),
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
