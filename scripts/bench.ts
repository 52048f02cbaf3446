/**
 * `deno task bench`: the paper's Table 1 analogue on this machine. SD 1.5 architecture with
 * synthetic weights (no download), text-to-image with guidance; for each configuration —
 * baseline (all naive) → + fused GroupNorm/GELU → + partitioned softmax → + Flash attention →
 * + Winograd → + per-shape attention choice → + 1×1 and strided convolutions as GEMMs, a GEMV
 * kernel for few-row products and split-K for small grids → + Winograd F(4×4, 3×3) where channels
 * are ≤ 640 (`auto`) → + f16 chunked accumulation in the GEMMs (the default) — one warm-up
 * run, then four timed runs: (1) end to end (text encoder + UNet steps + VAE decode + PNG encode)
 * as scripts run it, waiting on the GPU only every few steps; (2) the same waiting for the text
 * encoder and the VAE to time them — its loop time over the 21 UNet calls is the UNet step; (3) the
 * same with a progress line's `onStep` hook (the CLI on a terminal); (4) waiting for every step:
 * CPU recording per step and, with `--profile`, GPU time per kernel. Peak GPU memory over the
 * timed runs, less the 3×3 filters the
 * bench keeps beside their Winograd transforms (a normal run frees them).
 *
 * Usage: deno task bench [--size 512] [--steps 20] [--precision f16] [--tokenizer DIR]
 *        [--only LIST] [--json] [--profile] [--weights DIR] [--peer FILE]
 * `--peer FILE` reads the output of `../shared/reference/peer.py` (diffusers on the same GPU, same
 * job; its last JSON line) and prints the peer beside each column and sd's ratio to it.
 * `--profile` prints GPU time per kernel for the text encoder, the VAE decoder and a whole job
 * (the UNet steps dominate), each timed separately.
 * `--weights DIR` benchmarks a diffusers-layout folder instead of the synthetic SD 1.5 (CI
 * smoke-tests the bench on tiny-sd this way: the full SD 1.5 UNet takes ~50 s per call on a
 * software adapter even at 64×64).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { type DType, Gpu } from "../src/gpu/device.ts";
import { type MatmulVariant, setMatmulVariant } from "../src/ops/linear.ts";
import { NAIVE, OPTIMIZED, setVariants, type Variants } from "../src/ops/variants.ts";
import { StableDiffusion } from "../src/pipeline.ts";
import { encodeScanlines } from "../src/png.ts";
import {
  defaultPrecision,
  type ResolvedModel,
  resolveModel,
  SYNTH_MODEL,
} from "../src/weights/source.ts";
import { existsSync } from "../src/std/fs.ts";
import { Tensor } from "../src/gpu/tensor.ts";
import { type BenchColumns, parsePeer, peerColumns, peerLabel, ratios } from "./bench_peer.ts";

const { values: args } = parseArgs({
  options: {
    size: { type: "string", default: "512" },
    steps: { type: "string", default: "20" },
    guidance: { type: "string", default: "7.5" },
    precision: { type: "string" },
    tokenizer: { type: "string" },
    only: { type: "string" },
    json: { type: "boolean", default: false },
    profile: { type: "boolean", default: false },
    weights: { type: "string" },
    peer: { type: "string" },
    "keep-pool": { type: "boolean", default: false },
  },
});

/** Each configuration adds one optimization to the one before, from all naive to the default. */
const STEPS: { name: string; variants?: Partial<Variants>; matmul?: Partial<MatmulVariant> }[] = [
  { name: "baseline (naive)" },
  { name: "+ fused GroupNorm/GELU", variants: { groupnorm: "fused", gelu: "fused" } },
  { name: "+ partitioned softmax", variants: { attention: "partitioned" } },
  { name: "+ Flash attention", variants: { attention: "flash" } },
  { name: "+ Winograd", variants: { conv: "winograd" } },
  { name: "+ per-shape attention (auto: naive for d ≥ 160)", variants: { attention: "auto" } },
  {
    name: "+ GEMM 1×1/strided conv, GEMV, split-K (auto)",
    variants: { conv: "auto" },
    matmul: { smallM: "gemv", splitK: "auto" },
  },
  {
    name: "+ Winograd F(4×4,3×3) for ≤ 640 channels (auto)",
    variants: { winograd: "auto" },
  },
  // The tiled matmul and the Winograd F(2×2) GEMM sum 32 (16) k-values at a time in f16, each
  // chunk into f32 (the rows above accumulate in f32 all along).
  {
    name: "+ f16 chunked accumulation (GEMMs)",
    matmul: { accumulate: "chunked" },
  },
];
const CONFIGS: { name: string; variants: Variants; matmul: Partial<MatmulVariant> }[] = [];
for (const step of STEPS) {
  const prev = CONFIGS.at(-1) ?? {
    variants: NAIVE,
    matmul: { accumulate: "f32", smallM: "tiled", splitK: "off" },
  };
  CONFIGS.push({
    name: step.name,
    variants: { ...prev.variants, ...step.variants },
    matmul: { ...prev.matmul, ...step.matmul },
  });
}
const last = CONFIGS.at(-1)!.variants;
if (Object.entries(OPTIMIZED).some(([k, v]) => last[k as keyof Variants] !== v)) {
  throw new Error("bench: the last configuration must be the default (OPTIMIZED) variants");
}

/**
 * `--weights DIR`, else synthetic weights with CLIP's vocab/merges from --tokenizer, the fixtures'
 * copy, else the locked SD 1.5 files (fetched once).
 */
async function benchModel(): Promise<ResolvedModel> {
  const fixtures = "../shared/fixtures/clip-tokenizer";
  return await resolveModel({
    model: args.weights ? null : SYNTH_MODEL,
    weights: args.weights ?? null,
    config: null,
    tokenizer: args.tokenizer ?? (existsSync(`${fixtures}/vocab.json`) ? fixtures : null),
    lock: null,
    precision: null,
  });
}

const size = Number(args.size), steps = Number(args.steps), guidance = Number(args.guidance);
const gpu = await Gpu.create({ profile: args.profile });
gpu.retainPool = args["keep-pool"]; // probe: buffer creation vs the memory peak
const precision = (args.precision as DType | undefined) ?? defaultPrecision(gpu);
const t0 = performance.now();
const sd = await StableDiffusion.load(
  gpu,
  (await benchModel()).source,
  { precision, keepDirectConvWeights: true },
);
const modelName = args.weights ? `${args.weights}` : "SD 1.5 architecture (synthetic weights)";
const loadMs = performance.now() - t0;
// The bench keeps the 3×3 filters beside their Winograd transforms (to switch variants); a normal
// run frees them at load, so the memory columns leave them out.
const keptFilterBytes = [...sd.unet.store.convs, ...sd.vae.store.convs]
  .filter((c) => c.winogradEligible && c.weight.loaded)
  .reduce((n, c) => n + c.weight.t.bytes, 0);
const weightBytes = gpu.allocatedBytes - keptFilterBytes;

/** One configuration's columns (see bench_peer.ts for their meaning beside the peer's). */
interface Row extends BenchColumns {
  config: string;
}

const params = {
  prompt: "a photograph of an astronaut riding a horse",
  seed: 42,
  steps,
  guidance,
  width: size,
  height: size,
  scheduler: "pndm" as const,
};

/**
 * One whole job (text encoder included). `stages` collects stage times (the text encoder and VAE
 * are then waited for); `stepwise` waits for every step; `progress` passes an `onStep` hook, as
 * the CLI's progress line does.
 */
async function runOnce(
  stages?: Record<string, number[]>,
  stepwise = false,
  progress = false,
): Promise<{ totalMs: number; pngMs: number }> {
  sd.releaseTextStates(); // the whole job, text encoder included
  const t = performance.now();
  const out = await sd.generateScanlines(params, {
    ...(stages ? { onStage: (s, ms) => (stages[s] ??= []).push(ms), syncSteps: stepwise } : {}),
    ...(progress ? { onStep: () => {} } : {}),
  });
  const tp = performance.now();
  encodeScanlines(out.scanlines, out.width, out.height, { text: { parameters: "bench" } });
  const end = performance.now();
  return { totalMs: end - t, pngMs: end - tp };
}

const mean = (a: number[] = []) => a.reduce((x, y) => x + y, 0) / Math.max(1, a.length);

/** Prints the profiler's totals per kernel, largest GPU time first. */
function printProfile(title: string, top = 25): void {
  const stats = gpu.profiler!.stats();
  const total = stats.reduce((a, s) => a + s.ms, 0);
  console.error(`GPU time by kernel (${title}), total ${total.toFixed(1)} ms:`);
  for (const s of stats.slice(0, top)) {
    const rate = s.flops
      ? `${(s.flops / s.ms / 1e9).toFixed(2)} TFLOP/s`
      : s.bytes
      ? `${(s.bytes / s.ms / 1e6).toFixed(0)} GB/s`
      : "";
    console.error(
      `  ${s.name.padEnd(52)} ${String(s.calls).padStart(6)} ${s.ms.toFixed(2).padStart(9)} ms ${
        (100 * s.ms / total).toFixed(1).padStart(5)
      }%  ${rate}`,
    );
  }
}

/**
 * Times every dispatch of `fn` alone (each in its own pass: slower, so no other column is
 * measured while profiling) and prints the totals.
 */
async function profiled(title: string, fn: () => Promise<unknown>, top?: number): Promise<void> {
  await gpu.flush();
  gpu.profiler!.reset();
  gpu.profiling = true;
  await fn();
  await gpu.flush();
  printProfile(title, top);
  gpu.profiling = false;
}

/** VAE input for the decoder-only timings: [1, 4, size/8, size/8] of 0.5 in the VAE's dtype. */
function constantLatents(): Tensor {
  const h = size / 8, w = size / 8;
  return Tensor.from(gpu, new Float32Array(4 * h * w).fill(0.5), [1, 4, h, w], sd.vae.store.dtype);
}

const only = args.only?.split(",").map(Number);
const rows: Row[] = [];
for (const [i, c] of CONFIGS.entries()) {
  if (only && !only.includes(i)) continue;
  setVariants(gpu, c.variants);
  setMatmulVariant(gpu, c.matmul);
  gpu.profiling = false; // the timed runs are not profiled (a pass per dispatch costs)
  await runOnce(); // warm-up: compiles this configuration's kernels
  gpu.trimPool();
  gpu.resetPeak();
  const plain = await runOnce();
  const stages: Record<string, number[]> = {};
  await runOnce(stages);
  const withProgress = await runOnce(undefined, false, true);
  const stepStages: Record<string, number[]> = {};
  await runOnce(stepStages, true);
  const peakGB = (gpu.peakBytes - keptFilterBytes) / 1e9; // before the profiled runs
  if (gpu.profiler) {
    // Where the stage times go besides the GPU: recording (CPU), waiting, reading back.
    for (const stage of ["text encoder", "VAE decode"] as const) {
      const t0 = performance.now();
      let out: Tensor;
      if (stage === "text encoder") {
        sd.releaseTextStates();
        out = await sd.encodeText(params.prompt, "", guidance > 1); // recorded, no readback
      } else {
        const z = constantLatents();
        out = sd.vae.decode(z);
        z.release();
      }
      const t1 = performance.now();
      gpu.waitIdle();
      const t2 = performance.now();
      await out.read();
      const t3 = performance.now();
      out.release();
      console.error(
        `${c.name}: ${stage}: record ${(t1 - t0).toFixed(1)} ms, then GPU ${
          (t2 - t1).toFixed(1)
        } ms, ` +
          `readback ${(t3 - t2).toFixed(1)} ms`,
      );
    }
    await profiled(`${c.name}: text encoder`, async () => {
      sd.releaseTextStates();
      (await sd.encodeText(params.prompt, "", guidance > 1)).release();
      await gpu.flush();
    }, 12);
    await profiled(`${c.name}: VAE decode`, async () => {
      await sd.decodeScanlines(constantLatents());
    }, 16);
    await profiled(`${c.name}: whole job, every step waited for`, () => runOnce(undefined, true));
  }
  rows.push({
    config: c.name,
    totalMs: plain.totalMs,
    progressMs: withProgress.totalMs,
    textMs: mean(stages.text_encoder),
    unetStepMs: mean(stages.unet_loop) / (steps + 1),
    recordMs: mean(stepStages.unet_record_cpu),
    vaeMs: mean(stages.vae_decode),
    pngMs: plain.pngMs,
    peakGB,
  });
  console.error(`${c.name}: ${plain.totalMs.toFixed(0)} ms`);
}
console.error(
  `slowest pipeline creations (ms): ${
    gpu.compileTimes().slice(0, 12).map((k) => `${k.name} ${k.ms.toFixed(0)}`).join(", ")
  }`,
);

const header = `sd bench — ${gpu.description}; Deno ${Deno.version.deno}; ${modelName}, ` +
  `${size}×${size}, ${steps} steps (PNDM, ${
    steps + 1
  } UNet calls), guidance ${guidance} (batch 2), ${precision}; ` +
  `load ${loadMs.toFixed(0)} ms (weights ${(weightBytes / 1e9).toFixed(2)} GB), compile ${
    gpu.compileMs.toFixed(0)
  } ms`;
const peer = args.peer ? parsePeer(await Deno.readTextFile(args.peer)) : null;
const lastRow = rows.at(-1);
if (args.json) {
  console.log(
    JSON.stringify({
      header,
      device: gpu.description,
      deno: Deno.version.deno,
      size,
      steps,
      precision,
      rows,
      ...(peer ? { peer, ratios: lastRow ? ratios(lastRow, peer) : null } : {}),
    }),
  );
} else {
  const cols: (keyof Row & keyof BenchColumns)[] = [
    "totalMs",
    "progressMs",
    "textMs",
    "unetStepMs",
    "recordMs",
    "vaeMs",
    "pngMs",
    "peakGB",
  ];
  const digits = (k: keyof BenchColumns) =>
    k === "peakGB" ? 2 : k.endsWith("Ms") && k !== "totalMs" && k !== "progressMs" ? 1 : 0;
  const cell = (k: keyof BenchColumns, v: number | undefined) =>
    v === undefined ? "–" : v.toFixed(digits(k));
  const lines = [
    header,
    "| configuration | end to end (ms) | with a progress line (ms) | text (ms) | UNet step (ms) | CPU record/step (ms) | VAE decode (ms) | PNG (ms) | peak GPU memory (GB) |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ...rows.map((r) => `| ${r.config} | ${cols.map((k) => cell(k, r[k])).join(" | ")} |`),
  ];
  if (peer && lastRow) {
    const pc = peerColumns(peer);
    const rs = ratios(lastRow, peer);
    lines.push(
      `| ${peerLabel(peer)} | ${cols.map((k) => cell(k, pc[k])).join(" | ")} |`,
      `| ratio (${lastRow.config} ÷ diffusers) | ${
        cols.map((k) => rs[k] === undefined ? "–" : `${rs[k]!.toFixed(2)}×`).join(" | ")
      } |`,
    );
  }
  console.log(lines.join("\n"));
}
