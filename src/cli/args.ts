/**
 * The command line: the one `parseArgs` call, the help text, and the validation of every option
 * (shared with batch lines, which override the same settings).
 *
 * @module
 */

import { ArgsError, parseArgs } from "../std/args.ts";
import type { DType } from "../gpu/device.ts";
import type { Variants } from "../ops/variants.ts";
import { isSchedulerName, SCHEDULER_NAMES, type SchedulerName } from "../../scheduler/mod.ts";
import { UsageError } from "../errors.ts";
import { type LoraUse, parseLoraOption } from "./lora.ts";
import { VERSION } from "./version.ts";
import { isDecimal, isDecimalInteger } from "./numbers.ts";
import { type ModelOptions, SYNTH_MODEL } from "../weights/source.ts";

/** Defaults of the per-image settings. */
export const DEFAULTS = {
  steps: 20,
  guidance: 7.5,
  width: 512,
  height: 512,
  scheduler: "pndm" as SchedulerName,
  batch: 1,
} as const;

/** Bounds the options are checked against. */
export const LIMITS = {
  /** Smallest width/height in pixels. */
  minSize: 64,
  /** Largest width/height in pixels. */
  maxSize: 2048,
  /** Most denoising steps (SD's 1000 training timesteps). */
  maxSteps: 1000,
  /** Most images of one `--batch`. */
  maxBatch: 10000,
  /** Largest guidance scale (A1111's slider stops at 30; beyond 50 images only burn out). */
  maxGuidance: 50,
  /** Longest prompt or negative prompt, in characters (≈ 1000 CLIP tokens, 13 chunks). */
  maxPromptChars: 4000,
} as const;

/** The largest seed: torch's generators take any 64-bit unsigned seed (diffusers passes it on). */
export const MAX_SEED: bigint = (1n << 64n) - 1n;

/** The settings of one image; a batch line may override each. */
export interface JobSettings {
  /** The prompt ("" is valid: an unconditional image). */
  prompt: string;
  /** The negative prompt ("" for none). */
  negative: string;
  /** The seed, 0 … {@linkcode MAX_SEED}; null draws a random one. */
  seed: bigint | null;
  /** Denoising steps. */
  steps: number;
  /** Classifier-free guidance scale. */
  guidance: number;
  /** Image width in pixels; null: 512, or the init image's width rounded down to 8. */
  width: number | null;
  /** Image height in pixels; null: 512, or the init image's height rounded down to 8. */
  height: number | null;
  /** Scheduler name. */
  scheduler: SchedulerName;
  /** A `.png` file or a directory; null for the current directory. */
  out: string | null;
  /** `--lora FILE[:SCALE]`, in order (the prompt's `<lora:…>` tags come on top). */
  lora: LoraUse[];
  /** Image-to-image / inpainting: the image to start from (PNG or JPEG), or null. */
  initImage: string | null;
  /** Inpainting: the mask (white = repaint), or null. */
  mask: string | null;
  /** How much the init image changes, in (0, 1]; null: 0.8, or 1 with a mask (diffusers'). */
  strength: number | null;
}

/** The default `--strength`: diffusers' img2img (0.8) and inpainting (1.0) pipelines'. */
export function defaultStrength(job: Pick<JobSettings, "mask">): number {
  return job.mask === null ? 0.8 : 1;
}

/** What `--profile` asked for. */
export interface ProfileRequest {
  /** A table for people, or JSON. */
  format: "table" | "json";
  /** Write the JSON here instead of stderr. */
  file?: string;
}

/** The subcommands; `generate` is the default (no subcommand). */
export type Command = "generate" | "tokens" | "fetch" | "help" | "version";

/** Everything the command line says. */
export interface CliOptions extends ModelOptions {
  /** What to do. */
  command: Command;
  /**
   * `generate`: the prompt, or null to read jobs from stdin. `tokens`: the prompt to tokenize.
   */
  prompt: string | null;
  /** Per-image settings for every job (a batch line overrides them); `prompt` is unused here. */
  job: Omit<JobSettings, "prompt">;
  /** Images per job, seeds seed, seed+1, …. */
  batch: number;
  /** Kernel variants chosen on the command line. */
  variants: Partial<Variants>;
  /** `--profile`, or null. */
  profile: ProfileRequest | null;
  /** `--quiet`: no progress or notes on stderr. */
  quiet: boolean;
  /** `--json`: one JSON line per image on stdout, also for a single run. */
  json: boolean;
  /** `--lora-dir`: where the prompt's `<lora:NAME:…>` tags find `NAME.safetensors`. */
  loraDir: string | null;
  /** `--clip-skip N` (A1111's numbering: 1 = the last layer) and `--no-emphasis`. */
  text: { clipSkip: number; emphasis: boolean };
  /** `sd tokens --chunks`: the chunks with their weights instead of the 77 plain ids. */
  chunks: boolean;
  /** `--allow-any-out`: a batch line's `"out"` may leave the output folder (`..`, absolute). */
  allowAnyOut: boolean;
}

const VARIANT_CHOICES: { [K in keyof Variants]: readonly Variants[K][] } = {
  attention: ["auto", "flash", "partitioned", "naive"],
  conv: ["auto", "winograd", "direct"],
  winograd: ["auto", "f4", "f2"],
  groupnorm: ["fused", "naive"],
  gelu: ["fused", "naive"],
};

/** The fields of {@linkcode JobSettings}: a batch line's JSON keys, and options of the same name. */
export const JOB_FIELDS = [
  "prompt",
  "negative",
  "seed",
  "steps",
  "guidance",
  "width",
  "height",
  "scheduler",
  "out",
  "lora",
] as const satisfies readonly (keyof JobSettings)[];

/** The image inputs: batch-line key → command-line option (and the {@linkcode JobSettings} key). */
export const IMAGE_FIELDS = {
  init_image: { option: "init-image", key: "initImage" },
  mask: { option: "mask", key: "mask" },
  strength: { option: "strength", key: "strength" },
} as const;

const MULTIPLE_OPTIONS = ["lora"] as const;
const STRING_OPTIONS = [
  ...JOB_FIELDS.filter((f) => f !== "prompt" && f !== "lora"),
  ...Object.values(IMAGE_FIELDS).map((f) => f.option),
  "lora-dir",
  "batch",
  "model",
  "weights",
  "config",
  "tokenizer",
  "lock",
  "precision",
  "attention",
  "conv",
  "winograd",
  "groupnorm",
  "gelu",
  "clip-skip",
] as const;
const BOOLEAN_OPTIONS = [
  "quiet",
  "json",
  "help",
  "version",
  "no-emphasis",
  "chunks",
  "allow-any-out",
] as const;
const OPTIONAL_VALUE_OPTIONS = ["profile"] as const;
const ALIASES = { h: "help", V: "version", q: "quiet", o: "out" } as const;

/** The text of `sd --help`. */
export const HELP = `sd ${VERSION} — Stable Diffusion 1.x text-to-image on the GPU (WebGPU)

Usage:
  sd [options] "<prompt>"      one image (or --batch N) → <prompt-slug>-<seed>.png
  sd [options] -               jobs from stdin, one a line (also when stdin is not a terminal
                               and no prompt is given)
  sd tokens "<prompt>"         the 77 CLIP token ids of a prompt, as a JSON array (as diffusers
                               reads it); with --chunks, the chunks sd encodes: a JSON array of
                               {"ids": [77 ids], "weights": [77 weights]}
  sd fetch [--model sd15]      download and verify a model's weights into the cache (with
                               --model synth: only the CLIP tokenizer it needs)
  ("sd 42" is the prompt "42"; "sd -- tokens" is the prompt "tokens".)

Image:
  --negative TEXT        negative prompt (default: none)
  --seed N               noise seed, an integer from 0 to 2^64−1 (torch's range: the same noise
                         as diffusers); -1 or none: random (always printed and recorded)
  --steps N              denoising steps, 1–${LIMITS.maxSteps} (default: ${DEFAULTS.steps})
  --guidance G           classifier-free guidance scale, 0–${LIMITS.maxGuidance}; ≤ 1 turns it off (default: ${DEFAULTS.guidance})
  --width W              width in pixels, a multiple of 8 in ${LIMITS.minSize}–${LIMITS.maxSize} (default: ${DEFAULTS.width}),
                         with --init-image the image's, rounded down to 8
  --height H             height in pixels, a multiple of 8 in ${LIMITS.minSize}–${LIMITS.maxSize} (default: ${DEFAULTS.height}),
                         with --init-image the image's, rounded down to 8
  --scheduler NAME       ${SCHEDULER_NAMES.join(", ")} (default: ${DEFAULTS.scheduler})
  --init-image IMG       image-to-image: start from this PNG or JPEG (resized to --width/--height
                         like diffusers, Lanczos; without them its size rounded down to 8)
  --strength S           how much of the init image is repainted, in (0, 1] (default: 0.8; 1.0
                         with --mask)
  --mask MASK            inpainting: repaint where MASK is white (≥ 50% gray), keep where black;
                         resized to the output size like the image; needs --init-image
  --batch N              N images per prompt, seeds seed, seed+1, … (default: 1; the last seed
                         must stay ≤ 2^64−1: refused, not wrapped)
  -o, --out PATH         a .png file (with --batch: FILE-<seed>.png), or a directory for
                         <prompt-slug>-<seed>.png (default: the current directory); an existing
                         file is never overwritten: -1, -2, … is appended to the name
  --allow-any-out        let a stdin job's "out" leave the output folder (".." or absolute)

Prompt (as AUTOMATIC1111 reads it):
  (word) ((word)) [word] (word:1.5)   weights ×1.1, ×1.21, ÷1.1, ×1.5; \( \) literal brackets;
                         BREAK starts a new 75-token chunk; prompts over 75 tokens are encoded
                         in chunks of 75, not truncated
  --no-emphasis          read brackets as plain text (diffusers' reading)
  --clip-skip N          use the text encoder's N-th layer from the end, 1 = last (default: 1;
                         2 for models whose card says "Clip skip: 2"); prompt and negative alike

Model:
  --model NAME           sd15, sd14 or sd15-inpaint (a model of weights.lock, downloaded into the
                         cache on first use), or synth (SD 1.5's architecture with synthetic
                         weights: downloads only the CLIP tokenizer)
                         (default: sd15)
  --weights PATH         a local diffusers-layout folder, or a single-file .safetensors checkpoint
  --config DIR           configs (and tokenizer/) for a single-file checkpoint (default: SD 1.5's)
  --tokenizer DIR        a folder with CLIP's vocab.json and merges.txt
  --lock FILE            the weights lock to download by (default: $SD_LOCK, else the bundled one)
  --precision P          f16 or f32 (default: f16 where the GPU has shader-f16, else f32)
  --lora FILE[:SCALE]    merge a LoRA (kohya/A1111 or diffusers/PEFT .safetensors) into the
                         weights, W += SCALE·(alpha/rank)·up·down (default SCALE 1); repeatable
  --lora-dir DIR         where the prompt's A1111 tags <lora:NAME:SCALE> (or <lora:NAME:TE:UNET>)
                         find NAME.safetensors; the tags are removed from the text encoded

Kernels (to measure each optimization):
  --attention A          auto, flash, partitioned or naive (default: auto: flash for head
                         dims ≤ 80, naive above, as measured fastest on an H200)
  --conv C               auto, winograd or direct (default: auto: Winograd for 3×3 stride 1,
                         1×1 and strided ones as a tiled GEMM; winograd: direct for those)
  --winograd W           auto, f4 or f2 (default: auto: F(4×4,3×3) where channels ≤ 640,
                         F(2×2,3×3) above; f4/f2: one tile everywhere)
  --groupnorm G          fused or naive (default: fused)
  --gelu G               fused or naive (default: fused)

Output:
  --json                 one JSON line per image on stdout: {"path","seed","prompt","ms"}
                         (always so for jobs from stdin); "seed" is the exact integer, also
                         above 2^53 (where JavaScript's JSON.parse rounds it)
  -q, --quiet            no progress and no notes on stderr (errors still)
  --profile[=FORMAT]     after the run, GPU time per kernel and wall time per stage on stderr;
                         FORMAT: table (default), json, or json:FILE (the JSON into FILE)
  -h, --help             this help
  -V, --version          the version

Jobs from stdin: a plain line is a prompt with the command-line settings; a line holding a JSON
object overrides them: {"prompt": "a cat", "negative": "", "seed": 1, "steps": 20,
"guidance": 7.5, "width": 512, "height": 512, "scheduler": "ddim", "out": "cats/",
"lora": ["style.safetensors:0.8"], "init_image": "cat.png", "mask": "mask.png", "strength": 0.6}
(image paths are relative to the working directory; "out" is relative to the output folder,
-o's or the working directory, and stays inside it unless --allow-any-out is given). Each field
has one JSON type: numbers as JSON numbers written as the options take them (20, not "20" or
2e1), text as strings; null is the command line's value. Prompts: at most ${LIMITS.maxPromptChars} characters.
The model loads once; each image prints {"path","seed","prompt","ms"} on stdout. Empty lines are
skipped; a bad line is reported with its line number and the batch goes on.

Examples:
  sd "a photograph of an astronaut riding a horse"
  sd "a red fox in the snow" --seed 42 --steps 30 --scheduler dpm++2m-karras -o foxes/
  sd "a lighthouse at dusk" --batch 4 --json
  sd "a castle <lora:watercolor:0.8>" --lora-dir ~/loras --lora detail.safetensors:0.5
  cat prompts.txt | sd - --json | jq -r .path
  sd "a cat" --model synth --steps 4 --width 256 --height 256 --profile
  sd "a watercolor of a harbor" --init-image photo.png --strength 0.6
  sd "a cat on a bench" --init-image bench.png --mask mask.png --weights ./sd15-inpainting
  sd "a (red:1.3) fox in the [fog]" --clip-skip 2
  sd tokens "a cat"

Exit status: 0 all images written, 1 a generation failed, 2 bad options.
Environment: SD_CACHE (weights cache; default ~/.cache/sd), SD_LOCK (weights lock),
SD_DEBUG=1 (stack traces).
`;

/**
 * How a value is named in messages: `--steps 0x2` on the command line, `"steps": 2.5` in a batch
 * line. `raw` is the value as written: a flag's text, or a batch line's JSON text.
 */
function show(field: string, raw: string): string {
  return field.startsWith("-") ? `${field} ${raw}` : `${field}: ${raw}`;
}

function integer(raw: string, field: string, hint: string): number {
  if (!isDecimalInteger(raw)) {
    throw new UsageError(`${show(field, raw)} is not a decimal integer; ${hint}`);
  }
  return Number(raw);
}

function decimal(raw: string, field: string, hint: string): number {
  if (!isDecimal(raw)) {
    throw new UsageError(`${show(field, raw)} is not a decimal number; ${hint}`);
  }
  return Number(raw);
}

/** Checks a step count (an integer in 1–1000). `field` names it in messages. */
export function parseSteps(raw: string, field = "--steps"): number {
  const hint = `use an integer from 1 to ${LIMITS.maxSteps} (default ${DEFAULTS.steps})`;
  const n = integer(raw, field, hint);
  if (n < 1 || n > LIMITS.maxSteps) {
    throw new UsageError(`${show(field, raw)} is out of range; ${hint}`);
  }
  return n;
}

/** Checks a guidance scale (a decimal in 0–50). */
export function parseGuidance(raw: string, field = "--guidance"): number {
  const hint =
    `use a scale from 0 to ${LIMITS.maxGuidance} (default ${DEFAULTS.guidance}; ≤ 1 turns guidance off)`;
  const n = decimal(raw, field, hint);
  if (n < 0 || n > LIMITS.maxGuidance) {
    throw new UsageError(`${show(field, raw)} is out of range; ${hint}`);
  }
  return n;
}

/** Checks a width or height (an integer multiple of 8 in 64–2048). */
export function parseSize(raw: string, field: string): number {
  const hint = `use a multiple of 8 from ${LIMITS.minSize} to ${LIMITS.maxSize} (default 512)`;
  const n = integer(raw, field, hint);
  if (n % 8 !== 0) throw new UsageError(`${show(field, raw)} is not a multiple of 8; ${hint}`);
  if (n < LIMITS.minSize || n > LIMITS.maxSize) {
    throw new UsageError(`${show(field, raw)} is out of range; ${hint}`);
  }
  return n;
}

/** Checks a strength (a decimal in (0, 1]). */
export function parseStrength(raw: string, field = "--strength"): number {
  const hint = "use a number in (0, 1] (default 0.8, 1.0 with a mask)";
  const n = decimal(raw, field, hint);
  if (!(n > 0 && n <= 1)) throw new UsageError(`${show(field, raw)} is out of range; ${hint}`);
  return n;
}

/**
 * Checks that the image inputs go together: a mask or a strength needs an init image. `name`
 * turns a batch-line key into its name in messages.
 */
export function checkImageInputs(
  job: Pick<JobSettings, "initImage" | "mask" | "strength">,
  name: (key: keyof typeof IMAGE_FIELDS) => string,
): void {
  if (job.initImage !== null) return;
  if (job.mask !== null) {
    throw new UsageError(
      `${name("mask")} needs an init image to repaint; add ${name("init_image")}`,
    );
  }
  if (job.strength !== null) {
    throw new UsageError(
      `${name("strength")} applies to an init image; add ${name("init_image")} or drop it`,
    );
  }
}

/**
 * Checks a seed: an integer from 0 to 2^64−1 (torch's range), or -1 for a random one (null), as
 * A1111 and stable-diffusion.cpp read it.
 */
export function parseSeed(raw: string, field = "--seed"): bigint | null {
  if (raw === "-1") return null;
  if (!isDecimalInteger(raw) || BigInt(raw) > MAX_SEED) {
    throw new UsageError(
      `${
        show(field, raw)
      } is not a valid seed; use an integer from 0 to ${MAX_SEED} (2^64−1), or -1 for a random one`,
    );
  }
  return BigInt(raw);
}

/**
 * Checks that a batch's seeds `seed`, `seed + 1`, … `seed + batch − 1` stay within 2^64−1 (they
 * are refused up front, not wrapped: a wrapped seed would repeat another run's image).
 */
export function checkSeedRange(seed: bigint | null, batch: number, field = "--seed"): void {
  if (seed === null || seed + BigInt(batch - 1) <= MAX_SEED) return;
  throw new UsageError(
    `${
      show(field, String(seed))
    } with --batch ${batch} needs seeds past ${MAX_SEED} (2^64−1); use a seed ≤ ${
      MAX_SEED - BigInt(batch - 1)
    }`,
  );
}

/** Checks an image count for `--batch` (an integer in 1–10000). */
export function parseBatch(raw: string, field = "--batch"): number {
  const hint = `use an integer from 1 to ${LIMITS.maxBatch}`;
  const n = integer(raw, field, hint);
  if (n < 1 || n > LIMITS.maxBatch) {
    throw new UsageError(`${show(field, raw)} is out of range; ${hint}`);
  }
  return n;
}

/** Checks a scheduler name. */
export function parseScheduler(raw: string, field = "--scheduler"): SchedulerName {
  if (!isSchedulerName(raw)) {
    throw new UsageError(
      `unknown scheduler "${raw}" (${field}); use one of ${SCHEDULER_NAMES.join(", ")}`,
    );
  }
  return raw;
}

/** The start of a long text for messages: its first words (≤ 40 characters), then `…`. */
export function excerpt(text: string, max = 40): string {
  const chars = Array.from(text.slice(0, 4 * max));
  if (chars.length <= max && text.length <= 4 * max) return text;
  const cut = chars.slice(0, max).join("");
  const space = cut.lastIndexOf(" ");
  return `${space >= max / 2 ? cut.slice(0, space) : cut}…`;
}

/**
 * Checks a prompt's length: at most {@linkcode LIMITS.maxPromptChars} characters (code points).
 * `what` names it in messages (`the prompt`, `"negative"`).
 */
export function checkPromptLength(text: string, what: string): void {
  if (text.length <= LIMITS.maxPromptChars) return; // UTF-16 units ≥ code points
  let n = 0;
  for (const _ of text) n++;
  if (n <= LIMITS.maxPromptChars) return;
  throw new UsageError(
    `${what} is ${n} characters long ("${
      excerpt(text)
    }"); the limit is ${LIMITS.maxPromptChars}: shorten it`,
  );
}

function choice<T extends string>(raw: string, field: string, choices: readonly T[]): T {
  if (!(choices as readonly string[]).includes(raw)) {
    throw new UsageError(`${field} "${raw}" is not known; use one of ${choices.join(", ")}`);
  }
  return raw as T;
}

/** Checks a clip skip (an integer ≥ 1; its upper bound, the layer count, is the model's). */
export function parseClipSkip(raw: string, field = "--clip-skip"): number {
  const hint = "use an integer ≥ 1 (1 = the last layer, default)";
  const n = integer(raw, field, hint);
  if (n < 1) throw new UsageError(`${show(field, raw)} is out of range; ${hint}`);
  return n;
}

/** Parses a `--profile` value: true (bare flag), `table`, `json` or `json:FILE`. */
export function parseProfile(raw: string | true): ProfileRequest {
  if (raw === true || raw === "table") return { format: "table" };
  if (raw === "json") return { format: "json" };
  if (raw.startsWith("json:") && raw.length > 5) return { format: "json", file: raw.slice(5) };
  throw new UsageError(
    `--profile=${raw} is not known; use --profile, --profile=json or --profile=json:FILE`,
  );
}

/** `--init-image`, `--mask` and `--strength`, checked. */
function imageOptions(
  str: (name: string) => string | undefined,
): Pick<JobSettings, "initImage" | "mask" | "strength"> {
  const path = (option: string) => {
    const v = str(option);
    if (v === "") throw new UsageError(`--${option} is empty; give a PNG or JPEG file`);
    return v ?? null;
  };
  const strength = str("strength");
  const job = {
    initImage: path("init-image"),
    mask: path("mask"),
    strength: strength === undefined ? null : parseStrength(strength),
  };
  checkImageInputs(job, (k) => `--${IMAGE_FIELDS[k].option}`);
  return job;
}

const ALL_OPTIONS = [
  ...STRING_OPTIONS,
  ...MULTIPLE_OPTIONS,
  ...BOOLEAN_OPTIONS,
  ...OPTIONAL_VALUE_OPTIONS,
];

/** Edit distance, for "did you mean" hints. */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const next = Math.min(row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = row[j];
      row[j] = next;
    }
  }
  return row[b.length];
}

function suggest(option: string): string {
  const name = option.replace(/^-+/, "").split("=")[0];
  let best = "";
  let bestD = Infinity;
  for (const o of ALL_OPTIONS) {
    const d = distance(name, o);
    if (d < bestD) [best, bestD] = [o, d];
  }
  return bestD <= 2 && name.length > 1 ? `did you mean --${best}? ` : "";
}

/**
 * Parses and validates the command line. `stdinIsTerminal` decides whether a missing prompt
 * means "read jobs from stdin" (stdin is a pipe or file) or a usage error (stdin is a terminal).
 *
 * @throws {UsageError} with `<what>; <what to do>` for anything wrong
 * @example
 * ```ts
 * const opts = parseCli(["a cat", "--steps", "4"], { stdinIsTerminal: true });
 * opts.prompt; // "a cat"
 * opts.job.steps; // 4
 * ```
 */
export function parseCli(args: readonly string[], io: { stdinIsTerminal: boolean }): CliOptions {
  let parsed;
  try {
    parsed = parseArgs(args, {
      string: STRING_OPTIONS,
      multiple: MULTIPLE_OPTIONS,
      boolean: BOOLEAN_OPTIONS,
      optionalValue: OPTIONAL_VALUE_OPTIONS,
      alias: ALIASES,
    });
  } catch (e) {
    if (e instanceof ArgsError) {
      const hint = e.reason === "unknown" ? suggest(e.option) : "";
      throw new UsageError(`${e.message}; ${hint}run sd --help for the options`);
    }
    throw e;
  }
  const { values: v, positionals, afterDashDash } = parsed;
  const str = (name: string): string | undefined => v[name] as string | undefined;

  let command: Command = "generate";
  let words = positionals;
  if (v.help) command = "help";
  else if (v.version) command = "version";
  else if (afterDashDash > 0 && (positionals[0] === "tokens" || positionals[0] === "fetch")) {
    command = positionals[0];
    words = positionals.slice(1);
  }

  let prompt: string | null = words.join(" ");
  if (command === "generate") {
    if (words.length === 0) {
      if (io.stdinIsTerminal) {
        throw new UsageError(
          'no prompt; give one (sd "a cat"), "" for an unconditional image, or - to read jobs from stdin',
        );
      }
      prompt = null;
    } else if (words[0] === "-" && afterDashDash > 0) {
      if (words.length > 1) {
        throw new UsageError(
          `"-" reads the prompts from stdin and takes no prompt (got "${
            excerpt(words.slice(1).join(" "))
          }"); give either`,
        );
      }
      prompt = null;
    }
  } else if (command === "fetch" && words.length > 0) {
    throw new UsageError(
      `sd fetch takes no prompt (got "${excerpt(prompt)}"); name the model with --model`,
    );
  }
  if (prompt !== null) checkPromptLength(prompt, "the prompt");
  const negative = str("negative") ?? "";
  checkPromptLength(negative, "the negative prompt");
  const seed = str("seed") === undefined ? null : parseSeed(str("seed")!);
  const batch = str("batch") === undefined ? DEFAULTS.batch : parseBatch(str("batch")!);
  checkSeedRange(seed, batch);

  const precision = str("precision");
  const model = str("model") ?? null;
  const weights = str("weights") ?? null;
  const config = str("config") ?? null;
  if (command === "fetch") {
    // fetch fills the cache from the lock: options that name local files have nothing to fetch.
    const folder = config !== null
      ? "--config"
      : str("tokenizer") !== undefined
      ? "--tokenizer"
      : null;
    const why = weights !== null
      ? `--weights names local files, which have nothing to fetch: run sd --weights ${weights} "<prompt>"`
      : folder &&
        `${folder} names a local folder, which has nothing to fetch: give ${folder} when you generate`;
    if (why) {
      throw new UsageError(
        `sd fetch downloads a model of the weights lock into the cache (--model NAME); ${why}`,
      );
    }
  }
  if (model !== null && weights !== null) {
    throw new UsageError(
      "--model and --weights exclude each other; --weights names the model files itself",
    );
  }
  if (
    config !== null && model !== SYNTH_MODEL && !(weights?.toLowerCase().endsWith(".safetensors"))
  ) {
    throw new UsageError(
      "--config applies to a single-file checkpoint (--weights FILE.safetensors) or --model synth; a diffusers folder has its own configs",
    );
  }
  const variants: Partial<Variants> = {};
  for (const k of Object.keys(VARIANT_CHOICES) as (keyof Variants)[]) {
    const raw = str(k);
    if (raw !== undefined) {
      (variants as Record<string, string>)[k] = choice(raw, `--${k}`, VARIANT_CHOICES[k]);
    }
  }
  if (v.chunks === true && command !== "tokens") {
    throw new UsageError('--chunks applies to sd tokens; write sd tokens --chunks "<prompt>"');
  }
  const outRaw = str("out");
  if (outRaw === "") throw new UsageError("--out is empty; give a .png file or a directory");

  return {
    command,
    prompt,
    job: {
      negative,
      seed,
      steps: str("steps") === undefined ? DEFAULTS.steps : parseSteps(str("steps")!),
      guidance: str("guidance") === undefined ? DEFAULTS.guidance : parseGuidance(str("guidance")!),
      width: str("width") === undefined ? null : parseSize(str("width")!, "--width"),
      height: str("height") === undefined ? null : parseSize(str("height")!, "--height"),
      scheduler: str("scheduler") === undefined
        ? DEFAULTS.scheduler
        : parseScheduler(str("scheduler")!),
      out: outRaw ?? null,
      lora: ((v.lora ?? []) as string[]).map((raw) => parseLoraOption(raw)),
      ...imageOptions(str),
    },
    batch,
    model,
    weights,
    config,
    tokenizer: str("tokenizer") ?? null,
    lock: str("lock") ?? null,
    precision: precision === undefined
      ? null
      : choice<DType>(precision, "--precision", ["f16", "f32"]),
    variants,
    profile: v.profile === undefined ? null : parseProfile(v.profile as string | true),
    quiet: v.quiet === true,
    json: v.json === true,
    loraDir: str("lora-dir") ?? null,
    text: {
      clipSkip: str("clip-skip") === undefined ? 1 : parseClipSkip(str("clip-skip")!),
      emphasis: v["no-emphasis"] !== true,
    },
    chunks: v.chunks === true,
    allowAnyOut: v["allow-any-out"] === true,
  };
}
