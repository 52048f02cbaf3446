/**
 * The `--profile` report: GPU time per kernel from timestamp queries (calls, total, share, and the
 * achieved TFLOP/s or GB/s from each dispatch's declared work), wall time per pipeline stage,
 * pipeline-compile and weight-load time, and peak GPU memory — as a table for people or as JSON.
 *
 * @module
 */

import type { KernelStat } from "../gpu/profiler.ts";

/** Wall times of named stages, in the order they first occur. */
export class StageLog {
  readonly #times = new Map<string, number[]>();

  /** Records one occurrence of `name` taking `ms`. */
  add(name: string, ms: number): void {
    let list = this.#times.get(name);
    if (!list) this.#times.set(name, list = []);
    list.push(ms);
  }

  /** Summaries per stage, in first-seen order. */
  summary(): StageSummary[] {
    return [...this.#times].map(([name, ms]) => ({
      name,
      calls: ms.length,
      totalMs: ms.reduce((a, b) => a + b, 0),
      meanMs: ms.reduce((a, b) => a + b, 0) / ms.length,
      minMs: Math.min(...ms),
      maxMs: Math.max(...ms),
      ms: [...ms],
    }));
  }

  /** Total of the stages whose name starts with `prefix`. */
  total(prefix: string): number {
    let t = 0;
    for (const [name, ms] of this.#times) {
      if (name.startsWith(prefix)) t += ms.reduce((a, b) => a + b, 0);
    }
    return t;
  }
}

/** One stage's times. */
export interface StageSummary {
  name: string;
  calls: number;
  totalMs: number;
  meanMs: number;
  minMs: number;
  maxMs: number;
  /** Every occurrence (e.g. each UNet step), in order. */
  ms: number[];
}

/** One kernel's row: the profiler's totals plus share and achieved rates. */
export interface KernelRow extends KernelStat {
  /** Share of all timed GPU time, in percent. */
  sharePct: number;
  /** Achieved TFLOP/s (null when the kernel declares no flops). */
  tflops: number | null;
  /** Achieved GB/s (null when the kernel declares no bytes). */
  gbps: number | null;
}

/** Everything `--profile` reports. */
export interface ProfileReport {
  /** The adapter, e.g. "NVIDIA H100 80GB HBM3". */
  device: string;
  /** f16 or f32 (the UNet's precision). */
  precision: string;
  /** Images generated. */
  images: number;
  /** Whether per-kernel GPU times were measured (the adapter has `timestamp-query`). */
  timestamps: boolean;
  /** Per-kernel rows, largest GPU time first (empty without timestamps). */
  kernels: KernelRow[];
  /** Sum of all kernels' GPU time, ms. */
  gpuMs: number;
  /** Per-stage wall times. */
  stages: StageSummary[];
  /** Wall time of the generations (text encoder to PNG written), ms. */
  generateMs: number;
  /** Time spent creating compute pipelines, ms. */
  compileMs: number;
  /** Number of distinct pipelines (kernel variants) created. */
  pipelines: number;
  /** The slowest pipeline creations (at most {@linkcode SLOWEST_COMPILES}), slowest first. */
  slowestCompiles: { name: string; ms: number }[];
  /** Wall time of loading the weights onto the GPU, ms. */
  loadMs: number;
  /** Highest GPU memory held in buffers, bytes. */
  peakBytes: number;
}

/** Inputs of {@linkcode buildProfile}. */
export interface ProfileInputs {
  device: string;
  precision: string;
  images: number;
  timestamps: boolean;
  kernels: KernelStat[];
  stages: StageLog;
  generateMs: number;
  /** Every pipeline created, with its creation time (`Gpu.compileTimes()`). */
  compiles: { name: string; ms: number }[];
  loadMs: number;
  peakBytes: number;
}

/** How many of the slowest pipeline creations the report lists. */
export const SLOWEST_COMPILES = 5;

/** Computes shares and achieved rates. */
export function buildProfile(inp: ProfileInputs): ProfileReport {
  const gpuMs = inp.kernels.reduce((a, k) => a + k.ms, 0);
  const kernels = inp.kernels.map((k) => ({
    ...k,
    sharePct: gpuMs > 0 ? (100 * k.ms) / gpuMs : 0,
    tflops: k.flops > 0 && k.ms > 0 ? k.flops / (k.ms * 1e-3) / 1e12 : null,
    gbps: k.bytes > 0 && k.ms > 0 ? k.bytes / (k.ms * 1e-3) / 1e9 : null,
  }));
  return {
    device: inp.device,
    precision: inp.precision,
    images: inp.images,
    timestamps: inp.timestamps,
    kernels,
    gpuMs,
    stages: inp.stages.summary(),
    generateMs: inp.generateMs,
    compileMs: inp.compiles.reduce((a, c) => a + c.ms, 0),
    pipelines: inp.compiles.length,
    slowestCompiles: [...inp.compiles].sort((a, b) => b.ms - a.ms).slice(0, SLOWEST_COMPILES),
    loadMs: inp.loadMs,
    peakBytes: inp.peakBytes,
  };
}

function ms(x: number): string {
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
}

function bytes(n: number): string {
  return n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(2)} GiB` : `${(n / 2 ** 20).toFixed(1)} MiB`;
}

function rate(k: KernelRow): string {
  if (k.tflops !== null) {
    return k.tflops >= 0.1
      ? `${k.tflops.toFixed(2)} TFLOP/s`
      : `${(k.tflops * 1e3).toFixed(1)} GFLOP/s`;
  }
  if (k.gbps !== null) {
    return k.gbps >= 0.1 ? `${k.gbps.toFixed(1)} GB/s` : `${(k.gbps * 1e3).toFixed(1)} MB/s`;
  }
  return "–";
}

function table(header: string[], rows: string[][], leftCols = 1): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const fmt = (r: string[]) =>
    "  " +
    r.map((c, i) => i < leftCols ? c.padEnd(widths[i]) : c.padStart(widths[i])).join("  ")
      .trimEnd();
  return [fmt(header), ...rows.map(fmt)];
}

/** The report as a table for stderr. */
export function formatProfileTable(r: ProfileReport): string {
  const out: string[] = [];
  out.push(
    `profile: ${r.device}, ${r.precision}, ${r.images} image${r.images === 1 ? "" : "s"}`,
  );
  if (r.timestamps) {
    const calls = r.kernels.reduce((a, k) => a + k.calls, 0);
    out.push(
      `GPU time per kernel: ${ms(r.gpuMs)} ms in ${calls} dispatches` +
        (r.generateMs > 0
          ? ` (GPU busy ${
            (100 * r.gpuMs / (r.generateMs + r.loadMs)).toFixed(0)
          }% of load + generation wall time)`
          : ""),
    );
    out.push(
      ...table(
        ["kernel", "calls", "total ms", "share", "achieved"],
        r.kernels.map((
          k,
        ) => [k.name, String(k.calls), ms(k.ms), `${k.sharePct.toFixed(1)}%`, rate(k)]),
      ),
    );
  } else {
    out.push(
      "note: this GPU adapter has no timestamp-query feature, so there are no per-kernel GPU times; wall times per stage follow",
    );
  }
  out.push("Wall time per stage:");
  out.push(
    ...table(
      ["stage", "calls", "total ms", "mean ms", "min ms", "max ms"],
      r.stages.map((s) => [
        s.name,
        String(s.calls),
        ms(s.totalMs),
        ms(s.meanMs),
        ms(s.minMs),
        ms(s.maxMs),
      ]),
    ),
  );
  const slowest = r.slowestCompiles.map((c) => `${c.name} ${ms(c.ms)}`).join(", ");
  out.push(
    `pipeline compile: ${ms(r.compileMs)} ms (${r.pipelines} pipelines${
      slowest ? `; slowest: ${slowest} ms` : ""
    })`,
  );
  out.push(`weight load:      ${ms(r.loadMs)} ms`);
  out.push(`generation:       ${ms(r.generateMs)} ms`);
  out.push(`peak GPU memory:  ${bytes(r.peakBytes)}`);
  return out.join("\n");
}

/** The report as JSON (one object). */
export function formatProfileJson(r: ProfileReport): string {
  return JSON.stringify(r);
}
