import { assert } from "../src/std/assert.ts";
import type { DType, Gpu } from "../src/gpu/device.ts";
import { Tensor } from "../src/gpu/tensor.ts";
import { conv2d, prepareConv } from "../src/ops/conv2d.ts";
import { setVariants, type Variants } from "../src/ops/variants.ts";
import { matmulVariant, setMatmulVariant } from "../src/ops/linear.ts";
import { defaultLimitsGpu, hasGpu, maxAbs, randomData, relL2, testGpu } from "./gpu.ts";

/** One convolution problem (torch.nn.Conv2d semantics). */
interface Case {
  name: string;
  B: number;
  C: number;
  O: number;
  H: number;
  W: number;
  k: 1 | 3;
  stride: 1 | 2;
  padding: number | [number, number, number, number];
  bias?: boolean;
  residual?: boolean;
  silu?: boolean;
}

interface Data {
  x: Float32Array;
  w: Float32Array;
  b: Float32Array | null;
  r: Float32Array | null;
  OH: number;
  OW: number;
}

function pads(c: Case): [number, number, number, number] {
  return typeof c.padding === "number" ? [c.padding, c.padding, c.padding, c.padding] : c.padding;
}

function roundTo(dtype: DType, a: Float32Array): Float32Array {
  return dtype === "f16" ? Float32Array.from(new Float16Array(a)) : a;
}

/** Inputs of a case (x ∈ [−1, 1), w scaled like PyTorch's init), rounded to `dtype`. */
function makeData(c: Case, dtype: DType, seed: number): Data {
  const [pt, pb, pl, pr] = pads(c);
  const OH = Math.floor((c.H + pt + pb - c.k) / c.stride) + 1;
  const OW = Math.floor((c.W + pl + pr - c.k) / c.stride) + 1;
  const wScale = 1 / Math.sqrt(c.C * c.k * c.k);
  return {
    x: roundTo(dtype, randomData(c.B * c.C * c.H * c.W, seed, 1)),
    w: roundTo(dtype, randomData(c.O * c.C * c.k * c.k, seed + 1, wScale)),
    b: c.bias === false ? null : roundTo(dtype, randomData(c.O, seed + 2, 0.5)),
    r: c.residual ? roundTo(dtype, randomData(c.B * c.O * OH * OW, seed + 3, 1)) : null,
    OH,
    OW,
  };
}

/** CPU reference (f64 sums) of output element (n, o, oy, ox): act(conv + bias) + residual. */
function refAt(c: Case, d: Data, n: number, o: number, oy: number, ox: number): number {
  const [pt, , pl] = pads(c);
  let s = d.b ? d.b[o] : 0;
  for (let ci = 0; ci < c.C; ci++) {
    for (let ky = 0; ky < c.k; ky++) {
      const iy = oy * c.stride - pt + ky;
      if (iy < 0 || iy >= c.H) continue;
      for (let kx = 0; kx < c.k; kx++) {
        const ix = ox * c.stride - pl + kx;
        if (ix < 0 || ix >= c.W) continue;
        s += d.x[((n * c.C + ci) * c.H + iy) * c.W + ix] *
          d.w[((o * c.C + ci) * c.k + ky) * c.k + kx];
      }
    }
  }
  if (c.silu) s = s / (1 + Math.exp(-s));
  return d.r ? s + d.r[((n * c.O + o) * d.OH + oy) * d.OW + ox] : s;
}

/** Runs a case on the GPU and returns the whole output (f32). */
async function runGpu(gpu: Gpu, c: Case, d: Data, dtype: DType): Promise<Float32Array> {
  const x = Tensor.from(gpu, d.x, [c.B, c.C, c.H, c.W], dtype);
  const w = Tensor.from(gpu, d.w, [c.O, c.C, c.k, c.k], dtype);
  const b = d.b ? Tensor.from(gpu, d.b, [c.O], dtype) : null;
  const r = d.r ? Tensor.from(gpu, d.r, [c.B, c.O, d.OH, d.OW], dtype) : undefined;
  const y = conv2d(x, w, b, {
    stride: c.stride,
    padding: c.padding,
    residual: r,
    activation: c.silu ? "silu" : "none",
  });
  assert(
    y.shape.join() === [c.B, c.O, d.OH, d.OW].join(),
    `${c.name}: output shape [${y.shape}], expected [${[c.B, c.O, d.OH, d.OW]}]`,
  );
  const out = await y.read();
  for (const t of [x, w, b, r, y]) t?.release();
  return out;
}

const TOL: Record<DType, number> = { f32: 1e-5, f16: 1e-2 };
/** The routes under test: direct, Winograd with each tile, auto (GEMM for the rest). */
const MODES: { name: string; v: Partial<Variants> }[] = [
  { name: "direct", v: { conv: "direct" } },
  { name: "winograd f2", v: { conv: "winograd", winograd: "f2" } },
  { name: "winograd f4", v: { conv: "winograd", winograd: "f4" } },
  { name: "auto", v: { conv: "auto", winograd: "auto" } },
];

/** Checks every output element against the CPU; returns the relative L2 error. */
async function checkFull(gpu: Gpu, c: Case, dtype: DType, mode: string): Promise<number> {
  const d = makeData(c, dtype, 11);
  const got = await runGpu(gpu, c, d, dtype);
  const want = new Float32Array(got.length);
  let i = 0;
  for (let n = 0; n < c.B; n++) {
    for (let o = 0; o < c.O; o++) {
      for (let oy = 0; oy < d.OH; oy++) {
        for (let ox = 0; ox < d.OW; ox++) want[i++] = refAt(c, d, n, o, oy, ox);
      }
    }
  }
  const e = relL2(got, want);
  assert(Number.isFinite(e), `${c.name} ${mode} ${dtype}: non-finite output`);
  assert(
    e < TOL[dtype],
    `${c.name} ${mode} ${dtype}: rel L2 ${e.toExponential(2)} (max abs ${
      maxAbs(got, want).toExponential(2)
    })`,
  );
  return e;
}

/** `samples` random output elements: their flat indices and CPU reference values. */
function sampleOutputs(
  c: Case,
  d: Data,
  samples: number,
  seed: number,
): { at: number[]; want: Float32Array } {
  const pick = randomData(4 * samples, seed, 1).map((v) => (v + 1) / 2); // uniform [0, 1)
  const at: number[] = [], want = new Float32Array(samples);
  for (let s = 0; s < samples; s++) {
    const n = Math.floor(pick[4 * s] * c.B), o = Math.floor(pick[4 * s + 1] * c.O);
    const oy = Math.floor(pick[4 * s + 2] * d.OH), ox = Math.floor(pick[4 * s + 3] * d.OW);
    at.push(((n * c.O + o) * d.OH + oy) * d.OW + ox);
    want[s] = refAt(c, d, n, o, oy, ox);
  }
  return { at, want };
}

/** Checks `samples` random output elements (SD-sized shapes); returns the relative L2 error. */
async function checkSampled(
  gpu: Gpu,
  c: Case,
  dtype: DType,
  mode: string,
  samples = 500,
): Promise<number> {
  const d = makeData(c, dtype, 23);
  const t0 = performance.now();
  const got = await runGpu(gpu, c, d, dtype);
  const ms = performance.now() - t0;
  const { at, want } = sampleOutputs(c, d, samples, 99);
  const g = Float32Array.from(at, (i) => got[i]);
  const e = relL2(g, want);
  const gflop = 2 * c.B * c.O * d.OH * d.OW * c.C * c.k * c.k / 1e9;
  console.log(
    `  ${c.name} ${mode} ${dtype}: rel L2 ${e.toExponential(2)} over ${samples} outputs, ` +
      `max abs ${maxAbs(g, want).toExponential(2)}; ${gflop.toFixed(1)} GFLOP in ${
        ms.toFixed(0)
      } ms (with upload and readback)`,
  );
  assert(Number.isFinite(e) && e < TOL[dtype], `${c.name} ${mode} ${dtype}: rel L2 ${e}`);
  return e;
}

const SMALL: Case[] = [
  { name: "3x3 s1 p1 C3 O5 7x7", B: 1, C: 3, O: 5, H: 7, W: 7, k: 3, stride: 1, padding: 1 },
  { name: "3x3 s2 p1 C3 O5 7x7", B: 1, C: 3, O: 5, H: 7, W: 7, k: 3, stride: 2, padding: 1 },
  { name: "1x1 C3 O5 7x7", B: 1, C: 3, O: 5, H: 7, W: 7, k: 1, stride: 1, padding: 0 },
  {
    name: "3x3 s2 pad(0,1,0,1) C3 O5 7x7",
    B: 1,
    C: 3,
    O: 5,
    H: 7,
    W: 7,
    k: 3,
    stride: 2,
    padding: [0, 1, 0, 1],
  },
  {
    name: "3x3 s1 p1 B2 C3 O5 6x9 no bias",
    B: 2,
    C: 3,
    O: 5,
    H: 6,
    W: 9,
    k: 3,
    stride: 1,
    padding: 1,
    bias: false,
  },
  {
    name: "3x3 s1 p1 B2 C3 O5 7x7 residual",
    B: 2,
    C: 3,
    O: 5,
    H: 7,
    W: 7,
    k: 3,
    stride: 1,
    padding: 1,
    residual: true,
  },
  {
    name: "3x3 s1 p1 C3 O5 7x7 silu",
    B: 1,
    C: 3,
    O: 5,
    H: 7,
    W: 7,
    k: 3,
    stride: 1,
    padding: 1,
    silu: true,
  },
  {
    name: "1x1 B2 C5 O3 5x3 residual silu",
    B: 2,
    C: 5,
    O: 3,
    H: 5,
    W: 3,
    k: 1,
    stride: 1,
    padding: 0,
    residual: true,
    silu: true,
  },
  // Several K steps, partial tiles, channel counts that are not multiples of the tiles.
  {
    name: "3x3 s1 p1 B2 C19 O72 17x33",
    B: 2,
    C: 19,
    O: 72,
    H: 17,
    W: 33,
    k: 3,
    stride: 1,
    padding: 1,
  },
  {
    name: "3x3 s1 p1 C24 O128 40x40",
    B: 1,
    C: 24,
    O: 128,
    H: 40,
    W: 40,
    k: 3,
    stride: 1,
    padding: 1,
  },
  { name: "1x1 s2 C21 O40 9x11", B: 1, C: 21, O: 40, H: 9, W: 11, k: 1, stride: 2, padding: 0 },
  // Strided and 1×1 GEMMs past one tile in every direction, every epilogue.
  {
    name: "3x3 s2 p1 B2 C6 O70 19x21 residual silu",
    B: 2,
    C: 6,
    O: 70,
    H: 19,
    W: 21,
    k: 3,
    stride: 2,
    padding: 1,
    residual: true,
    silu: true,
  },
  {
    name: "1x1 B2 C36 O68 9x15 residual",
    B: 2,
    C: 36,
    O: 68,
    H: 9,
    W: 15,
    k: 1,
    stride: 1,
    padding: 0,
    residual: true,
  },
  // Winograd in two chunks of tiles (V would pass 128 MiB in one).
  {
    name: "3x3 s1 p1 C3 O4 390x386",
    B: 1,
    C: 3,
    O: 4,
    H: 390,
    W: 386,
    k: 3,
    stride: 1,
    padding: 1,
  },
];

/** SD-sized shapes (llvmpipe runs about 8 GFLOP/s: direct-conv FLOP counts kept below ~15). */
const SD: Case[] = [
  // UNet down_blocks.0 ResNet conv at 512×512 (64×64 latents), batch 2 as with guidance.
  {
    name: "3x3 320->320 B2 64x64",
    B: 2,
    C: 320,
    O: 320,
    H: 64,
    W: 64,
    k: 3,
    stride: 1,
    padding: 1,
  },
  // VAE mid/up_blocks.0 conv: 512→512 at 32×32 (the decoder runs it at 64×64 and 128×128; 128×128
  // is 77 GFLOP, too slow for the software adapter), with the ResNet skip fused.
  {
    name: "3x3 512->512 B1 32x32 residual",
    B: 1,
    C: 512,
    O: 512,
    H: 32,
    W: 32,
    k: 3,
    stride: 1,
    padding: 1,
    residual: true,
  },
  // UNet downsampler (stride 2) and a ResNet 1×1 shortcut.
  {
    name: "3x3 s2 320->320 B2 64x64",
    B: 2,
    C: 320,
    O: 320,
    H: 64,
    W: 64,
    k: 3,
    stride: 2,
    padding: 1,
  },
  {
    name: "1x1 640->320 B2 32x32",
    B: 2,
    C: 640,
    O: 320,
    H: 32,
    W: 32,
    k: 1,
    stride: 1,
    padding: 0,
  },
];

Deno.test({
  name: "conv2d: small shapes, direct, winograd F(2×2) and F(4×4), auto (GEMM), f32 and f16 vs CPU",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await testGpu())!;
    for (const dtype of ["f32", "f16"] as const) {
      if (dtype === "f16" && !gpu.hasF16) continue;
      for (const { name: mode, v } of MODES) {
        setVariants(gpu, v);
        let worst = 0;
        for (const c of SMALL) worst = Math.max(worst, await checkFull(gpu, c, dtype, mode));
        console.log(`  small shapes ${mode} ${dtype}: worst rel L2 ${worst.toExponential(2)}`);
      }
    }
  },
});

Deno.test({
  name: "conv2d: small shapes under WebGPU's default limits (16 KiB workgroup memory), f32 vs CPU",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await defaultLimitsGpu())!;
    assert(gpu.limits.maxComputeWorkgroupStorageSize === 16384 && !gpu.hasF16);
    for (const { name: mode, v } of MODES) {
      setVariants(gpu, v);
      let worst = 0;
      for (const c of SMALL) worst = Math.max(worst, await checkFull(gpu, c, "f32", mode));
      console.log(
        `  small shapes ${mode} f32, default limits: worst rel L2 ${worst.toExponential(2)}`,
      );
    }
    // conv_out's 16 × 256 direct tile needs 17.3 KB of workgroup memory: 64 × 64 instead.
    const direct = gpu.kernelNames().filter((n) => n.startsWith("conv2d_direct_3x3_f32"));
    assert(direct.some((n) => n.includes("_64x64")), `direct kernels: ${direct}`);
    assert(!direct.some((n) => n.includes("_16x256")), `direct kernels: ${direct}`);
  },
});

Deno.test({
  name: "conv2d: SD-sized shapes (sampled outputs), direct, winograd f2/f4 and auto, f32 and f16",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await testGpu())!;
    for (const dtype of ["f32", "f16"] as const) {
      if (dtype === "f16" && !gpu.hasF16) continue;
      for (const { name: mode, v } of MODES) {
        setVariants(gpu, v);
        for (const c of SD) {
          // Winograd only changes 3×3 stride-1 convolutions, auto (GEMM) only the others.
          if (v.conv === "winograd" && !(c.k === 3 && c.stride === 1)) continue;
          if (mode === "auto" && c.k === 3 && c.stride === 1) continue;
          await checkSampled(gpu, c, dtype, mode);
        }
      }
    }
  },
});

Deno.test({
  name: "conv2d: prepareConv caches the Winograd weight; a prepared weight gives the same result",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await testGpu())!;
    setVariants(gpu, { conv: "winograd", winograd: "f2" });
    const c: Case = { name: "prepared", B: 1, C: 8, O: 6, H: 5, W: 6, k: 3, stride: 1, padding: 1 };
    const d = makeData(c, "f32", 5);
    const x = Tensor.from(gpu, d.x, [1, 8, 5, 6], "f32");
    const w = Tensor.from(gpu, d.w, [6, 8, 3, 3], "f32", { persistent: true });
    prepareConv(w);
    prepareConv(w); // idempotent
    prepareConv(Tensor.from(gpu, d.w, [6 * 8 * 9, 1, 1, 1], "f32")); // not 3×3: ignored
    const a = await conv2d(x, w, null, { padding: 1 }).read();
    setVariants(gpu, { conv: "winograd", winograd: "f4" }); // replaces the transform
    const a4 = await conv2d(x, w, null, { padding: 1 }).read();
    setVariants(gpu, { conv: "direct" });
    const b = await conv2d(x, w, null, { padding: 1 }).read();
    const e = relL2(a, b);
    assert(e < 1e-5, `winograd vs direct on a prepared weight: rel L2 ${e}`);
    const e4 = relL2(a4, b);
    assert(e4 < 1e-5, `winograd F(4×4) vs direct on a re-prepared weight: rel L2 ${e4}`);
  },
});

Deno.test({
  name: "conv2d: rejects mismatched shapes and dtypes",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await testGpu())!;
    const x = Tensor.from(gpu, new Float32Array(2 * 3 * 4 * 4), [2, 3, 4, 4], "f32");
    const w = Tensor.from(gpu, new Float32Array(5 * 4 * 9), [5, 4, 3, 3], "f32");
    let msg = "";
    try {
      conv2d(x, w);
    } catch (e) {
      msg = (e as Error).message;
    }
    assert(msg.includes("does not fit"), `expected a channel-mismatch error, got "${msg}"`);
    const w2 = Tensor.from(gpu, new Float32Array(5 * 3 * 9), [5, 3, 3, 3], "f32");
    const r = Tensor.from(gpu, new Float32Array(2 * 5 * 3 * 3), [2, 5, 3, 3], "f32");
    msg = "";
    try {
      conv2d(x, w2, null, { padding: 1, residual: r });
    } catch (e) {
      msg = (e as Error).message;
    }
    assert(msg.includes("residual"), `expected a residual-shape error, got "${msg}"`);
  },
});

Deno.test({
  name: "conv2d: f16 Winograd F(2×2) and F(4×4) keep large activations finite (tiles are f32)",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await testGpu())!;
    if (!gpu.hasF16) return;
    for (const tile of ["f2", "f4"] as const) {
      setVariants(gpu, { conv: "winograd", winograd: tile });
      // x ∈ [2·10⁴, 3·10⁴): every interior tile has (Bᵀ d B)[1][1] = d₁₁ + d₁₂ + d₂₁ + d₂₂ ≥ 8·10⁴,
      // past f16's 65504, while |y| ≤ 36 · 3·10⁴ / 36 + |b| stays in range (|w| < 1/36).
      const c: Case = {
        name: "large f16",
        B: 1,
        C: 4,
        O: 4,
        H: 9,
        W: 9,
        k: 3,
        stride: 1,
        padding: 1,
      };
      const d = makeData(c, "f16", 7);
      d.x = roundTo("f16", d.x.map((v) => 2.5e4 + v * 5e3));
      d.w = roundTo("f16", d.w.map((v) => v / 6)); // makeData's |w| < 1/6 for C·9 = 36
      const got = await runGpu(gpu, c, d, "f16");
      const want = got.map((_, i) => {
        const ox = i % 9, oy = Math.floor(i / 9) % 9, o = Math.floor(i / 81);
        return refAt(c, d, 0, o, oy, ox);
      });
      const e = relL2(got, want);
      console.log(
        `  large f16 winograd ${tile}: max |y| ${
          maxAbs(want, new Float32Array(want.length)).toFixed(0)
        }, ` +
          `rel L2 ${e.toExponential(2)}`,
      );
      assert(got.every(Number.isFinite) && e < TOL.f16, `large f16 winograd ${tile}: rel L2 ${e}`);
    }
  },
});

Deno.test({
  name:
    "conv2d: per-layer error study, f16 Winograd F(2×2) and F(4×4) vs f64 at SD shapes, |x| to 1e4",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await testGpu())!;
    if (!gpu.hasF16) return;
    // The 3×3 convolutions F(4×4) takes over under `winograd: "auto"` (≤ 640 channels): the UNet's
    // 64×64 and the VAE decoder's levels, at reduced sizes where llvmpipe would take minutes.
    // Real checkpoints produce larger activations than the synthetic weights: each layer also
    // runs with its inputs scaled to |x| < 1e2 and < 1e4 (near f16's range once summed).
    const same3x3 = (name: string, B: number, C: number, H: number, extra: Partial<Case> = {}) =>
      ({ name, B, C, O: C, H, W: H, k: 3, stride: 1, padding: 1, ...extra }) as Case;
    const layers: Case[] = [
      same3x3("UNet 320->320 B2 64x64", 2, 320, 64),
      same3x3("UNet 640->640 B2 32x32", 2, 640, 32),
      same3x3("VAE 512->512 24x24 residual", 1, 512, 24, { residual: true }),
      same3x3("VAE 128->128 96x96 silu", 1, 128, 96, { silu: true }),
    ];
    const worst: Record<string, number> = {};
    for (const c of layers) {
      for (const scale of [1, 1e2, 1e4]) {
        const d = makeData(c, "f16", 31);
        d.x = roundTo("f16", d.x.map((v) => v * scale));
        if (d.r) d.r = roundTo("f16", d.r.map((v) => v * scale));
        const { at, want } = sampleOutputs(c, d, 400, 77);
        const line: string[] = [];
        for (const tile of ["f2", "f4"] as const) {
          setVariants(gpu, { conv: "winograd", winograd: tile });
          const got = await runGpu(gpu, c, d, "f16");
          const g = Float32Array.from(at, (i) => got[i]);
          const e = relL2(g, want);
          worst[tile] = Math.max(worst[tile] ?? 0, e);
          line.push(`${tile} ${e.toExponential(2)}`);
          assert(Number.isFinite(e) && e < TOL.f16, `${c.name} |x|<${scale} ${tile}: rel L2 ${e}`);
        }
        console.log(
          `  ${c.name}, |x| < ${scale}: max |y| ${
            maxAbs(want, new Float32Array(want.length)).toExponential(1)
          }, rel L2 vs f64: ${line.join(", ")}`,
        );
      }
    }
    console.log(`  worst rel L2: f2 ${worst.f2.toExponential(2)}, f4 ${worst.f4.toExponential(2)}`);
  },
});

Deno.test({
  name:
    "conv2d: Winograd F(2×2) GEMM with chunked f16 accumulation (acc16c): small shapes vs CPU, F(4×4) stays f32",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await testGpu())!;
    if (!gpu.hasF16) return;
    const saved = matmulVariant(gpu).accumulate;
    setMatmulVariant(gpu, { accumulate: "chunked" });
    try {
      for (const { name: mode, v } of MODES.filter((m) => m.v.conv !== "direct")) {
        setVariants(gpu, v);
        let worst = 0;
        for (const c of SMALL) worst = Math.max(worst, await checkFull(gpu, c, "f16", mode));
        console.log(`  small shapes ${mode} f16 acc16c: worst rel L2 ${worst.toExponential(2)}`);
      }
      // x ∈ [2·10⁴, 3·10⁴) as in the large-activation test above: V reaches 1.2·10⁵, past f16,
      // and stays finite in the chunked GEMM's f16 tiles only because they hold V / 4.
      setVariants(gpu, { conv: "winograd", winograd: "f2" });
      const c: Case = { name: "large", B: 1, C: 4, O: 4, H: 9, W: 9, k: 3, stride: 1, padding: 1 };
      const d = makeData(c, "f16", 7);
      d.x = roundTo("f16", d.x.map((v) => 2.5e4 + v * 5e3));
      d.w = roundTo("f16", d.w.map((v) => v / 6));
      const got = await runGpu(gpu, c, d, "f16");
      const want = got.map((_, i) =>
        refAt(c, d, 0, Math.floor(i / 81), Math.floor(i / 9) % 9, i % 9)
      );
      const e = relL2(got, want);
      console.log(`  large f16 winograd f2 acc16c: rel L2 ${e.toExponential(2)}`);
      assert(got.every(Number.isFinite) && e < TOL.f16, `large f16 f2 acc16c: rel L2 ${e}`);
    } finally {
      setMatmulVariant(gpu, { accumulate: saved });
    }
    const names = gpu.kernelNames();
    assert(names.includes("winograd_gemm_f16_acc16c_64x64"), `kernels: ${names}`);
    assert(!names.some((n) => n.startsWith("winograd4_gemm") && n.includes("acc16c")), `${names}`);
  },
});

Deno.test({
  name:
    "conv2d: per-layer error study, f16 Winograd GEMM f32 vs chunked f16 (acc16c) vs f64 at SD shapes, |x| to 1e4",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await testGpu())!;
    if (!gpu.hasF16) return;
    // The UNet's 3×3 convolutions at each level (batch 1 at 64×64 and 32×32 for the software
    // adapter's sake: the error of an output does not depend on the batch). F(2×2) with f32 and
    // chunked accumulation; F(4×4) (f32, what `auto` runs at ≤ 640 channels) for comparison.
    // Inputs |x| < 1e-2 (subnormal products in the chunked GEMM), 1 and 1e4 (near f16's range).
    const same3x3 = (name: string, B: number, C: number, H: number, extra: Partial<Case> = {}) =>
      ({ name, B, C, O: C, H, W: H, k: 3, stride: 1, padding: 1, ...extra }) as Case;
    const layers: Case[] = [
      same3x3("UNet 320->320 B1 64x64", 1, 320, 64),
      same3x3("UNet 640->640 B1 32x32 residual", 1, 640, 32, { residual: true }),
      same3x3("UNet 1280->1280 B2 16x16", 2, 1280, 16),
      same3x3("UNet 1280->1280 B2 8x8 silu", 2, 1280, 8, { silu: true }),
    ];
    const runs = [
      { label: "f2 f32", winograd: "f2", accumulate: "f32" },
      { label: "f2 acc16c", winograd: "f2", accumulate: "chunked" },
      { label: "f4 f32", winograd: "f4", accumulate: "f32" },
    ] as const;
    const saved = matmulVariant(gpu).accumulate;
    const table = [
      `| layer | |x| < | max |y| | ${runs.map((r) => `${r.label} rel L2 / max abs`).join(" | ")} |`,
      `|---|---:|---:|${runs.map(() => "---:").join("|")}|`,
    ];
    const worst: Record<string, number> = {};
    try {
      for (const c of layers) {
        for (const scale of [1e-2, 1, 1e4]) {
          // x, bias and residual scaled together, so y scales with them (at 1e-2 many products
          // of the chunked GEMM fall into f16's subnormals: V / 4 · U ≈ 1e-2 / 4 · 1e-2).
          const d = makeData(c, "f16", 31);
          d.x = roundTo("f16", d.x.map((v) => v * scale));
          if (d.b) d.b = roundTo("f16", d.b.map((v) => v * scale));
          if (d.r) d.r = roundTo("f16", d.r.map((v) => v * scale));
          const { at, want } = sampleOutputs(c, d, 400, 77);
          const cells: string[] = [];
          const errs: Record<string, number> = {};
          for (const r of runs) {
            if (r.winograd === "f4" && c.C > 640) {
              cells.push("–");
              continue;
            }
            setVariants(gpu, { conv: "winograd", winograd: r.winograd });
            setMatmulVariant(gpu, { accumulate: r.accumulate });
            const got = await runGpu(gpu, c, d, "f16");
            const g = Float32Array.from(at, (i) => got[i]);
            const e = relL2(g, want);
            errs[r.label] = e;
            worst[r.label] = Math.max(worst[r.label] ?? 0, e);
            cells.push(`${e.toExponential(2)} / ${maxAbs(g, want).toPrecision(3)}`);
          }
          const top = maxAbs(want, new Float32Array(want.length));
          table.push(`| ${c.name} | ${scale} | ${top.toPrecision(3)} | ${cells.join(" | ")} |`);
          const where = `${c.name} |x| < ${scale}`;
          const chunked = errs["f2 acc16c"];
          assert(
            Number.isFinite(chunked) && chunked < 3e-3,
            `${where}: f2 acc16c rel L2 ${chunked}`,
          );
        }
      }
    } finally {
      setMatmulVariant(gpu, { accumulate: saved });
    }
    table.push(
      `worst rel L2: ${
        Object.entries(worst).map(([k, v]) => `${k} ${v.toExponential(2)}`).join(", ")
      }`,
    );
    console.log(table.join("\n"));
  },
});
