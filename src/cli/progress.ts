/**
 * Progress on stderr: one line rewritten in place — `[2/4] step 7/20  1.9 it/s  ETA 7s`, or a
 * download's `sd15 2/6 unet/…  812.0/1639.5 MiB 49%  95.1 MiB/s` — only when stderr is a terminal
 * and `--quiet` is off. Pipes and log files get no progress at all.
 *
 * @module
 */

import type { FetchProgress } from "../weights/download.ts";

/** A sink for progress text (stderr by default; a test passes its own). */
export type Write = (text: string) => void;

const encoder = new TextEncoder();

/** Writes `text` to stderr synchronously. */
export const writeStderr: Write = (text) => {
  Deno.stderr.writeSync(encoder.encode(text));
};

/** Whether `f` (stdin, stderr) is a terminal (false when that cannot be told). */
export function isTerminal(f: { isTerminal(): boolean }): boolean {
  try {
    return f.isTerminal();
  } catch {
    return false;
  }
}

/** Whether stderr is a terminal (false when that cannot be told). */
export function stderrIsTerminal(): boolean {
  return isTerminal(Deno.stderr);
}

function mib(n: number): string {
  return (n / (1 << 20)).toFixed(1);
}

/**
 * A download meter for `fetchModel`'s `onProgress`, on stderr (`write`) only when stderr is a
 * terminal: one line per file rewritten in place, and a line when another process holds the
 * model folder.
 */
export function fetchMeter(
  enabled = stderrIsTerminal(),
  write: Write = writeStderr,
): (p: FetchProgress) => void {
  if (!enabled) return () => {};
  let started = 0;
  let from = 0;
  return (p) => {
    if (p.kind === "waiting") {
      write(`${p.model}: waiting for another sd process fetching into ${p.dir}\n`);
      return;
    }
    if (p.kind === "start") {
      started = performance.now();
      from = p.resumeFrom ?? 0;
    }
    const pct = p.bytesTotal ? Math.floor((100 * p.bytesDone) / p.bytesTotal) : 100;
    const secs = (performance.now() - started) / 1000;
    const rate = p.kind === "hashing" || p.kind === "start" || secs <= 0
      ? ""
      : `  ${mib((p.bytesDone - from) / secs)} MiB/s`;
    const what = p.kind === "hashing" ? "checking" : `${p.index}/${p.count}`;
    write(
      `\r\x1b[2K${p.model} ${what} ${p.path}  ${mib(p.bytesDone)}/${mib(p.bytesTotal)} MiB ` +
        `${pct}%${rate}${p.kind === "done" ? "\n" : ""}`,
    );
  };
}

/** Seconds as `7s`, `1m05s` or `1h02m`. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, "0")}m`;
}

/** Speed as tqdm shows it: `2.41 it/s`, or `3.20 s/it` when slower than one step a second. */
export function formatRate(stepsPerSecond: number): string {
  if (!(stepsPerSecond > 0) || !Number.isFinite(stepsPerSecond)) return "– it/s";
  return stepsPerSecond >= 1
    ? `${stepsPerSecond.toFixed(2)} it/s`
    : `${(1 / stepsPerSecond).toFixed(2)} s/it`;
}

/** The live progress line of one run (several images, each with its steps). */
export class Progress {
  readonly #enabled: boolean;
  readonly #write: Write;
  #label = "";
  #t0 = 0;
  #shown = false;

  /**
   * @param enabled false for a no-op (stderr not a terminal, or `--quiet`)
   * @param write where the text goes (stderr)
   */
  constructor(enabled: boolean, write: Write = writeStderr) {
    this.#enabled = enabled;
    this.#write = write;
  }

  /** Whether anything is shown at all. */
  get enabled(): boolean {
    return this.#enabled;
  }

  /** Shows a phase without steps (`loading weights…`). */
  status(text: string): void {
    if (!this.#enabled) return;
    this.#write(`\r\x1b[2K${text}`);
    this.#shown = true;
  }

  /**
   * Starts an image; `label` prefixes its step lines (e.g. `[2/4] `). Nothing shows until the
   * first step, so a warning printed meanwhile (a truncated prompt) keeps its own line.
   */
  start(label: string): void {
    this.clear();
    this.#label = label;
    this.#t0 = performance.now();
  }

  /** After denoising step `i` of `n` (1-based). */
  step(i: number, n: number): void {
    if (!this.#enabled) return;
    const secs = (performance.now() - this.#t0) / 1000;
    const rate = i / secs;
    const eta = rate > 0 ? formatDuration((n - i) / rate) : "?";
    this.status(`${this.#label}step ${i}/${n}  ${formatRate(rate)}  ETA ${eta}`);
  }

  /** Clears the line (before a message on stderr, or at the end). */
  clear(): void {
    if (!this.#enabled || !this.#shown) return;
    this.#write("\r\x1b[2K");
    this.#shown = false;
  }
}
