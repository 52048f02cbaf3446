/**
 * GPU time of the GEMM kernels alone at the UNet's heaviest shapes (512², batch 2, f16), under
 * each accumulation of `MatmulVariant.accumulate`: `f32`, `chunked` (f16 sums per K tile, added
 * into f32: `_acc16c`) and `f16` (f16 all along K: `_acc16`; the Winograd GEMMs stay f32 there).
 * Timed with the GPU timestamp profiler as `deno task bench --profile` does (every dispatch in its
 * own pass), after one warm-up call per case and variant; prints one table: ms per call and
 * TFLOP/s per kernel (Winograd: the direct convolution's FLOPs, "effective", and the GEMM's own).
 * Takes well under a minute on an H100.
 *
 * Usage: `deno run --allow-read --allow-env scripts/gemm_bench.ts [--reps 20] [--only TEXT]
 * [--chunk 32,16]` (`--only`: the cases whose name contains TEXT; `--chunk`: one chunked column per
 * `MatmulVariant.chunkK`, default 32).
 *
 * @module
 */

import { parseArgs } from "../src/std/args.ts";
import { Gpu } from "../src/gpu/device.ts";
import { Tensor } from "../src/gpu/tensor.ts";
import { UserError } from "../src/errors.ts";
import { geglu, linear, type MatmulVariant, setMatmulVariant } from "../src/ops/linear.ts";
import { conv2d, releaseConv } from "../src/ops/conv2d.ts";
import { setVariants } from "../src/ops/variants.ts";

const { values } = parseArgs(Deno.args, { string: ["reps", "only", "chunk"] });
const reps = Number(values.reps ?? 20);
const only = values.only as string | undefined;
const chunks = String(values.chunk ?? "32").split(",").map(Number) as MatmulVariant["chunkK"][];
if (!chunks.every((c) => [4, 8, 16, 32].includes(c))) {
  throw new UserError(`gemm_bench: --chunk ${values.chunk}: give sizes among 4, 8, 16, 32`);
}

const gpu = await Gpu.create({ profile: true });
if (!gpu.profiler || !gpu.hasF16) {
  throw new UserError(
    "gemm_bench needs an adapter with timestamp-query and shader-f16; run it on the GPU machine",
  );
}

/** Uniform values in [−scale, scale) (a fixed LCG: the timings do not depend on the values). */
function random(n: number, scale: number): Float32Array {
  const out = new Float32Array(n);
  let s = 12345;
  for (let i = 0; i < n; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    out[i] = (s / 2 ** 31 - 1) * scale;
  }
  return out;
}

const f16 = (shape: number[], scale = 1) =>
  Tensor.from(gpu, random(shape.reduce((a, b) => a * b, 1), scale), shape, "f16");

/** One timed case: `make` uploads operands and returns the call to time and a cleanup. */
interface Case {
  name: string;
  /** Multiplies of the Winograd GEMM per direct-convolution multiply (1 for plain GEMMs). */
  gemmShare: number;
  make: () => { call: () => Tensor; done: () => void };
}

function linearCase(name: string, m: number, k: number, n: number, residual = false): Case {
  return {
    name,
    gemmShare: 1,
    make: () => {
      const x = f16([m, k]), w = f16([n, k], 1 / Math.sqrt(k)), b = f16([n], 0.1);
      const r = residual ? f16([m, n]) : undefined;
      return {
        call: () => linear(x, w, b, { residual: r }),
        done: () => [x, w, b, r].forEach((t) => t?.release()),
      };
    },
  };
}

function convCase(name: string, c: number, size: number, tile: 2 | 4): Case {
  return {
    name,
    gemmShare: tile === 2 ? 16 / 36 : 36 / 144,
    make: () => {
      setVariants(gpu, { conv: "winograd", winograd: tile === 2 ? "f2" : "f4" });
      const x = f16([2, c, size, size]), w = f16([c, c, 3, 3], 1 / Math.sqrt(9 * c));
      const b = f16([c], 0.1);
      return {
        call: () => conv2d(x, w, b, { padding: 1 }),
        done: () => {
          releaseConv(w);
          [x, w, b].forEach((t) => t.release());
        },
      };
    },
  };
}

// Batch 2 (classifier-free guidance) at 512²: latents 64×64 (4096 tokens a sample) down to 8×8.
const CASES: Case[] = [
  linearCase("linear [8192,320]·[320,320]ᵀ", 8192, 320, 320),
  linearCase("linear [2048,640]·[640,640]ᵀ", 2048, 640, 640),
  {
    name: "geglu [8192,320]→2·1280",
    gemmShare: 1,
    make: () => {
      const x = f16([8192, 320]), w = f16([2560, 320], 1 / Math.sqrt(320)), b = f16([2560], 0.1);
      return { call: () => geglu(x, w, b), done: () => [x, w, b].forEach((t) => t.release()) };
    },
  },
  linearCase("linear [8192,1280]·[320,1280]ᵀ +res", 8192, 1280, 320, true),
  linearCase("linear [512,1280]·[1280,1280]ᵀ (split-K)", 512, 1280, 1280),
  linearCase("linear [512,5120]·[1280,5120]ᵀ +res (split-K)", 512, 5120, 1280, true),
  convCase("winograd F2 1280ch 16×16", 1280, 16, 2),
  convCase("winograd F2 1280ch 8×8", 1280, 8, 2),
  convCase("winograd F4 320ch 64×64", 320, 64, 4),
  convCase("winograd F4 640ch 32×32", 640, 32, 4),
  convCase("winograd F2 320ch 64×64", 320, 64, 2),
  convCase("winograd F2 640ch 32×32", 640, 32, 2),
];

/** The columns: f32, chunked per `--chunk` size, f16 all along K. */
const ACCUMULATIONS: { label: string; v: Partial<MatmulVariant> }[] = [
  { label: "f32", v: { accumulate: "f32" } },
  ...chunks.map((chunkK) => ({
    label: chunks.length > 1 ? `chunked k${chunkK}` : "chunked",
    v: { accumulate: "chunked" as const, chunkK },
  })),
  { label: "f16", v: { accumulate: "f16" } },
];
/** The kernels that count as the case's GEMM (not transforms, not the split-K reduce). */
const isGemm = (name: string) => /^matmul_(tiled|gemv)|_gemm_/.test(name);

const rows: string[][] = [];
const t0 = performance.now();
for (const c of CASES.filter((c) => !only || c.name.includes(only))) {
  const cells: string[] = [];
  let kernels = "";
  for (const { v } of ACCUMULATIONS) {
    setMatmulVariant(gpu, { accumulate: "f32", chunkK: 32, ...v });
    const { call, done } = c.make();
    call().release(); // warm-up: compiles, and makes the Winograd filter
    await gpu.flush();
    gpu.profiler!.reset();
    gpu.profiling = true;
    for (let i = 0; i < reps; i++) call().release();
    await gpu.flush();
    gpu.profiling = false;
    const stats = gpu.profiler!.stats();
    const gemm = stats.filter((s) => isGemm(s.name));
    const ms = gemm.reduce((a, s) => a + s.ms, 0) / reps;
    const flops = gemm.reduce((a, s) => a + s.flops, 0) / reps;
    const all = stats.reduce((a, s) => a + s.ms, 0) / reps;
    const eff = flops / ms / 1e9;
    const rate = c.gemmShare === 1
      ? `${eff.toPrecision(3)}`
      : `${eff.toPrecision(3)} eff / ${(eff * c.gemmShare).toPrecision(3)}`;
    cells.push(`${ms.toFixed(3)} (${all.toFixed(3)}) | ${rate}`);
    kernels += (kernels ? " · " : "") + gemm.map((s) => s.name).join(", ");
    done();
  }
  rows.push([c.name, ...cells, kernels]);
  console.error(`${c.name}: done`);
}

console.log(
  `GEMM kernels alone (${gpu.description}; f16 storage, ${reps} calls after a warm-up; ms: GEMM ` +
    `kernels (whole op incl. transforms / split-K reduce); TFLOP/s of the GEMM kernels — Winograd: ` +
    `direct-convolution FLOPs "eff" / the GEMM's own multiplies)`,
);
console.log(
  `| case | ${
    ACCUMULATIONS.map(({ label }) => `${label} ms | ${label} TFLOP/s`).join(" | ")
  } | kernels (${ACCUMULATIONS.map(({ label }) => label).join(" · ")}) |`,
);
console.log(`|---|${ACCUMULATIONS.map(() => "---:|---:").join("|")}|---|`);
for (const r of rows) console.log(`| ${r.join(" | ")} |`);
console.log(`(${((performance.now() - t0) / 1000).toFixed(1)} s)`);
