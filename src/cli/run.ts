/**
 * The `sd` command: parse the command line, then run one of `generate` (the default), `tokens`
 * and `fetch`, and return the exit code.
 *
 * Streams: stdout carries only what machines read — the written path (one image, no `--json`) or
 * one JSON line per image (`--json`, and always for jobs from stdin), the token ids, the fetched
 * folder. Everything for people (progress, notes, errors, `--profile`) goes to stderr. Ctrl-C
 * removes any temporary file and exits with 130.
 *
 * @module
 */

import { Gpu } from "../gpu/device.ts";
import { setVariants } from "../ops/variants.ts";
import { type GenerateParams, StableDiffusion } from "../pipeline.ts";
import { encodeScanlines } from "../png.ts";
import { type PreparedInit, prepareInit } from "../image.ts";
import { randomSeed } from "../rng.ts";
import { ClipTokenizer } from "../tokenizer.ts";
import { tokensOutput } from "./tokens.ts";
import { checkTexts } from "../prompt/encoder.ts";
import {
  checkModelOptions,
  defaultPrecision,
  fetchLockedModel,
  fetchTokenizer,
  resolveModel,
  resolveTokenizerDir,
  SYNTH_MODEL,
} from "../weights/source.ts";
import { DiskFullError, fileError, UsageError } from "../errors.ts";
import type { FetchProgress } from "../weights/download.ts";
import { DISPLAY_NAMES } from "../../scheduler/mod.ts";
import { type CliOptions, DEFAULTS, defaultStrength, HELP, parseCli, parseSize } from "./args.ts";
import { type Job, parseJobLine, readLines } from "./batch.ts";
import { describeError, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, exitCodeOf } from "./errors.ts";
import { outFolder, type OutTarget, plannedPath, resolveOut, SafeWriter } from "./output.ts";
import { ensureRuntimeDir } from "./runtime_dir.ts";
import { formatParameters } from "./parameters.ts";
import { hasLoraTags, loraHashes, resolveJobLoras } from "./lora.ts";
import {
  buildProfile,
  formatProfileJson,
  formatProfileTable,
  type ProfileReport,
  StageLog,
} from "./profile_report.ts";
import { fetchMeter, isTerminal, Progress, stderrIsTerminal, writeStderr } from "./progress.ts";
import { VERSION } from "./version.ts";

const encoder = new TextEncoder();
let stdoutClosed = false;

/** Writes `text` to stdout; a closed pipe (`sd … | head -1`) silences further output. */
function writeStdout(text: string): void {
  if (stdoutClosed) return;
  const bytes = encoder.encode(text);
  try {
    for (let off = 0; off < bytes.length;) off += Deno.stdout.writeSync(bytes.subarray(off));
  } catch (e) {
    if (e instanceof Deno.errors.BrokenPipe) stdoutClosed = true;
    else throw e;
  }
}

/** What every subcommand shares: output streams, the progress line, the atomic writer. */
interface Session {
  opts: CliOptions;
  progress: Progress;
  writer: SafeWriter;
  /** A note for people on stderr (silenced by `--quiet`). */
  note(text: string): void;
}

/**
 * Runs `sd` with `args` (without the program name) and returns the exit code: 0 when everything
 * asked for was done, 1 when a generation (or a batch line) failed, 2 for bad options. The error
 * that ended the run is one line on stderr: the one mapping from errors to exit codes.
 *
 * @example
 * ```ts
 * Deno.exit(await main(Deno.args));
 * ```
 */
export async function main(args: readonly string[]): Promise<number> {
  try {
    return await run(args);
  } catch (e) {
    writeStderr(describeError(e) + "\n");
    return exitCodeOf(e);
  }
}

/**
 * {@linkcode main} without the error report: returns 0, or 1 when a batch line failed, and throws
 * the error that ends the run (a `UserError` for every expected failure).
 *
 * @param stdinIsTerminal whether stdin is a terminal (then there are no jobs to read from it)
 */
export async function run(
  args: readonly string[],
  stdinIsTerminal: boolean = isTerminal(Deno.stdin),
): Promise<number> {
  const opts = parseCli(args, { stdinIsTerminal });
  if (opts.command === "help") {
    writeStdout(HELP);
    return EXIT_OK;
  }
  if (opts.command === "version") {
    writeStdout(`sd ${VERSION}\n`);
    return EXIT_OK;
  }

  const progress = new Progress(!opts.quiet && stderrIsTerminal());
  const writer = new SafeWriter();
  const session: Session = {
    opts,
    progress,
    writer,
    note: (text) => {
      if (opts.quiet) return;
      progress.clear();
      writeStderr(text + "\n");
    },
  };
  const onInterrupt = () => {
    progress.clear();
    writer.removeTemporaries();
    writeStderr("sd: interrupted\n");
    Deno.exit(EXIT_INTERRUPTED);
  };
  // A GPU error surfacing from a promise nobody awaits yet ends the run like any other error.
  const onUnhandled = (e: PromiseRejectionEvent) => {
    e.preventDefault();
    progress.clear();
    writer.removeTemporaries();
    writeStderr(describeError(e.reason) + "\n");
    Deno.exit(exitCodeOf(e.reason));
  };
  globalThis.addEventListener("unhandledrejection", onUnhandled);
  let listening = false;
  try {
    Deno.addSignalListener("SIGINT", onInterrupt);
    listening = true;
  } catch {
    // no SIGINT on this platform: the writer's atomic rename still leaves no partial PNG
  }
  try {
    if (opts.command === "tokens") return await runTokens(session);
    if (opts.command === "fetch") return await runFetch(session);
    return await runGenerate(session);
  } finally {
    progress.clear();
    if (listening) Deno.removeSignalListener("SIGINT", onInterrupt);
    globalThis.removeEventListener("unhandledrejection", onUnhandled);
  }
}

/** `sd tokens "<prompt>"`: the 77 CLIP ids (or with `--chunks` the chunks) as JSON on stdout. */
async function runTokens(s: Session): Promise<number> {
  const dir = await resolveTokenizerDir(s.opts, quietFetch(s));
  const tokenizer = await ClipTokenizer.fromFolder(dir);
  const out = tokensOutput(tokenizer, s.opts.prompt ?? "", s.opts);
  if (out.note) s.note(out.note);
  writeStdout(out.json + "\n");
  return EXIT_OK;
}

/**
 * `sd fetch [--model NAME]`: downloads and verifies; prints the model's folder on stdout (for
 * `--model synth`, which has no weights files, the CLIP tokenizer's folder).
 */
async function runFetch(s: Session): Promise<number> {
  if (s.opts.model === SYNTH_MODEL) {
    const dir = await fetchTokenizer(s.opts, quietFetch(s));
    s.note(`sd: --model synth needs only the CLIP tokenizer: cached and verified in ${dir}`);
    writeStdout(dir + "\n");
    return EXIT_OK;
  }
  const { name, dir } = await fetchLockedModel(s.opts, quietFetch(s));
  s.note(`sd: ${name} is cached and verified in ${dir}`);
  writeStdout(dir + "\n");
  return EXIT_OK;
}

/** Download progress: a meter on stderr when it is a terminal and `--quiet` is off. */
function quietFetch(s: Session): { onProgress: (p: FetchProgress) => void } {
  return { onProgress: s.opts.quiet ? () => {} : fetchMeter() };
}

/** A model loaded for generation, with what its PNGs record. */
interface LoadedModel {
  sd: StableDiffusion;
  /** `Model hash:` */
  hash: string;
  /** `Model:` */
  name: string;
}

/** The default command: one image (or `--batch N`), or one job per stdin line. */
async function runGenerate(s: Session): Promise<number> {
  const { opts, progress } = s;
  const fromStdin = opts.prompt === null;
  const jsonLines = fromStdin || opts.json;
  const defaultOut = resolveOut(opts.job.out);
  await checkModelOptions(opts);
  // The command line's prompt syntax and LoRAs are checked before the GPU starts (batch lines:
  // per line).
  if (!fromStdin) {
    checkTexts([opts.prompt ?? "", opts.job.negative], opts.text);
    resolveJobLoras(opts.prompt ?? "", opts.job.lora, opts.loraDir);
  }

  progress.status("starting the GPU…");
  ensureRuntimeDir(); // before the adapter is requested: keeps the Vulkan loader quiet
  const gpu = await Gpu.create({ profile: opts.profile !== null });
  if (Object.keys(opts.variants).length) setVariants(gpu, opts.variants);
  const precision = opts.precision ?? defaultPrecision(gpu);
  const stages = new StageLog();
  const onStage = opts.profile ? (name: string, ms: number) => stages.add(name, ms) : undefined;

  // The model loads once, when the first job needs it (a batch of bad lines loads nothing).
  const state: { loaded: Promise<LoadedModel> | null; loadMs: number } = {
    loaded: null,
    loadMs: 0,
  };
  const model = () =>
    state.loaded ??= (async (): Promise<LoadedModel> => {
      progress.clear();
      const m = await resolveModel(opts, quietFetch(s));
      const hash = m.hash(precision);
      hash.catch(() => {}); // awaited below, after load reports a broken file first
      progress.status("loading weights…");
      const t0 = performance.now();
      const sd = await StableDiffusion.load(gpu, m.source, {
        precision,
        onStage,
        // A batch's first image-to-image line uploads the encoder when it comes to it.
        vaeEncoder: opts.job.initImage !== null,
      });
      state.loadMs = performance.now() - t0;
      progress.clear();
      return { sd, hash: await hash, name: m.name };
    })();

  let images = 0;
  let generateMs = 0;
  const runJob = async (job: Job): Promise<void> => {
    const target: OutTarget = job.out === opts.job.out
      ? defaultOut
      : resolveOut(job.out, job.line === null ? "--out" : '"out"');
    if (job.line !== null) checkTexts([job.prompt, job.negative], opts.text);
    // The images are read (and refused) before the model loads.
    const init = job.initImage === null ? null : await readInit(job);
    const width = init?.width ?? job.width ?? DEFAULTS.width;
    const height = init?.height ?? job.height ?? DEFAULTS.height;
    const strength = init ? job.strength ?? defaultStrength(job) : null;
    const lora = resolveJobLoras(job.prompt, job.lora, opts.loraDir);
    if (hasLoraTags(job.negative)) {
      s.note(
        "sd: <lora:…> in the negative prompt is read as text; only the prompt activates LoRAs (as in A1111)",
      );
    }
    const { sd, hash, name } = await model();
    const seed0 = job.seed ?? BigInt(randomSeed());
    for (let i = 0; i < opts.batch; i++) {
      const seed = seed0 + BigInt(i);
      const where = [
        job.line !== null ? `line ${job.line}` : "",
        opts.batch > 1 ? `${i + 1}/${opts.batch}` : "",
      ].filter(Boolean).join(" ");
      const params: GenerateParams = {
        prompt: lora.prompt,
        negative: job.negative,
        seed,
        steps: job.steps,
        guidance: job.guidance,
        width,
        height,
        scheduler: job.scheduler,
        text: opts.text,
        init: init ? { image: init.image, mask: init.mask, strength: strength! } : undefined,
        loras: lora.loras,
      };
      const t0 = performance.now();
      progress.start(where ? `[${where}] ` : "");
      const image = await sd.generateScanlines(params, {
        // Only a visible progress line asks for step completion (the loop then waits every few
        // steps instead of every 8: a few percent slower); scripts and pipes skip it.
        onStep: progress.enabled ? (k, n) => progress.step(k, n) : undefined,
        onStage,
        onNote: (text) => s.note(text),
      });
      const tPng = performance.now();
      const text = formatParameters({
        ...params,
        prompt: lora.recordedPrompt,
        negative: job.negative,
        loraHashes: await loraHashes(lora.loras),
        sampler: DISPLAY_NAMES[job.scheduler],
        modelHash: hash,
        model: name,
        version: VERSION,
        ...opts.text,
        denoisingStrength: strength ?? undefined,
      });
      const png = encodeScanlines(image.scanlines, image.width, image.height, {
        text: { parameters: text },
      });
      const path = await s.writer.writeNew(
        plannedPath(target, lora.prompt, seed, opts.batch > 1),
        png,
      );
      const ms = performance.now() - t0;
      onStage?.("png", performance.now() - tPng);
      images++;
      generateMs += ms;
      progress.clear();
      s.note(
        `sd: ${jsonLines ? `${path}: ` : ""}seed ${seed}, ${width}×${height}, ${job.steps} step${
          job.steps === 1 ? "" : "s"
        } ` +
          `${job.scheduler}, ${(ms / 1000).toFixed(1)} s`,
      );
      writeStdout((jsonLines ? imageLine(path, seed, job.prompt, ms) : path) + "\n");
    }
  };

  let failed = false;
  try {
    if (!fromStdin) {
      await runJob({ ...opts.job, prompt: opts.prompt ?? "", line: null });
    } else {
      let lines = 0;
      for await (const raw of readLines(Deno.stdin.readable)) {
        lines++;
        const item = parseJobLine(raw, lines, opts.job, {
          batch: opts.batch,
          allowAnyOut: opts.allowAnyOut,
          outDir: outFolder(defaultOut),
        });
        if (item.kind === "skip") {
          s.note(`sd: ${item.note}`);
          continue;
        }
        if (item.kind === "error") {
          progress.clear();
          writeStderr(`sd: ${item.message}\n`);
          failed = true;
          continue;
        }
        try {
          await runJob(item.job);
        } catch (e) {
          // A model that cannot load, or a full disk, fails every line: stop the batch.
          if (e instanceof DiskFullError) throw e;
          if (state.loaded && !(await state.loaded.then(() => true, () => false))) throw e;
          gpu.abandonRecorded(); // the failed job's half-recorded work must not run with the next
          progress.clear();
          writeStderr(describeError(e, `sd: line ${lines}: `) + "\n");
          failed = true;
        }
      }
      if (lines === 0) {
        throw new UsageError(
          'no prompt and no jobs on stdin; give a prompt (sd "a cat") or one job per line on stdin',
        );
      }
    }
  } finally {
    if (opts.profile && state.loaded) {
      const ok = await state.loaded.then((m) => m, () => null);
      if (ok) {
        await reportProfile(
          s,
          buildProfile({
            device: gpu.description,
            precision: ok.sd.precision,
            images,
            timestamps: gpu.profiler !== null,
            kernels: gpu.profiler?.stats() ?? [],
            stages,
            generateMs,
            compiles: gpu.compileTimes(),
            loadMs: state.loadMs,
            peakBytes: gpu.peakBytes,
          }),
        );
      }
    }
  }
  return failed ? EXIT_FAILED : EXIT_OK;
}

/**
 * The `--json` line of an image: `{"path", "seed", "prompt", "ms"}`, the seed as its exact
 * integer (a JSON number of up to 20 digits: `JSON.stringify` cannot write a bigint).
 */
export function imageLine(path: string, seed: bigint, prompt: string, ms: number): string {
  return `{"path":${JSON.stringify(path)},"seed":${seed},"prompt":${JSON.stringify(prompt)},"ms":${
    Math.round(ms)
  }}`;
}

/** The job's init image (and mask), read and prepared at its output size. */
function readInit(job: Job): Promise<PreparedInit> {
  const cli = job.line === null;
  const names = cli
    ? { init: "--init-image", mask: "--mask" }
    : { init: '"init_image"', mask: '"mask"' };
  return prepareInit(
    job.initImage!,
    job.mask,
    { width: job.width, height: job.height },
    names,
    (value, what) => parseSize(String(value), what),
  );
}

async function reportProfile(s: Session, report: ProfileReport): Promise<void> {
  const req = s.opts.profile!;
  s.progress.clear();
  if (req.format === "table") {
    writeStderr(formatProfileTable(report) + "\n");
  } else if (req.file) {
    await Deno.writeTextFile(req.file, formatProfileJson(report) + "\n").catch((e) => {
      throw fileError(
        e,
        "cannot write the profile to",
        req.file!,
        "choose another --profile=json:FILE",
      );
    });
    writeStderr(`sd: profile written to ${req.file}\n`);
  } else {
    writeStderr(formatProfileJson(report) + "\n");
  }
}
