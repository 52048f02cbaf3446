import { assert, assertEquals, assertRejects } from "../src/std/assert.ts";
import type { DType, Gpu } from "../src/gpu/device.ts";
import { Tensor } from "../src/gpu/tensor.ts";
import { attention, chunkLimits, flashChoice, type RowTiles } from "../src/ops/attention.ts";
import { unrollLoops } from "../src/gpu/wgsl.ts";
import { setVariants, type Variants } from "../src/ops/variants.ts";
import { defaultLimitsGpu, hasGpu, maxAbs, randomData, relL2, testGpu } from "./gpu.ts";

/**
 * CPU reference (f64): out[b, i, h·d + c] = Σ_j softmax_j(q_h[i]·k_h[j]·scale + mask) v_h[j, c],
 * for the query rows `rows` only (all when omitted). Returns [B, rows.length, H·d].
 */
function attentionRef(
  q: Float32Array, // [B, Nq, H·d]
  k: Float32Array, // [B, Nk, H·d]
  v: Float32Array, // [B, Nk, H·d]
  b: number,
  nq: number,
  nk: number,
  heads: number,
  d: number,
  causal: boolean,
  rows: number[],
): Float32Array {
  const ld = heads * d;
  const scale = 1 / Math.sqrt(d);
  const out = new Float32Array(b * rows.length * ld);
  const s = new Float64Array(nk);
  for (let bi = 0; bi < b; bi++) {
    for (let h = 0; h < heads; h++) {
      for (let ri = 0; ri < rows.length; ri++) {
        const i = rows[ri];
        const qo = (bi * nq + i) * ld + h * d;
        let m = -Infinity;
        for (let j = 0; j < nk; j++) {
          if (causal && j > i) {
            s[j] = -Infinity;
            continue;
          }
          const ko = (bi * nk + j) * ld + h * d;
          let dot = 0;
          for (let c = 0; c < d; c++) dot += q[qo + c] * k[ko + c];
          s[j] = dot * scale;
          if (s[j] > m) m = s[j];
        }
        let l = 0;
        for (let j = 0; j < nk; j++) {
          s[j] = Math.exp(s[j] - m);
          l += s[j];
        }
        const oo = (bi * rows.length + ri) * ld + h * d;
        for (let c = 0; c < d; c++) {
          let acc = 0;
          for (let j = 0; j < nk; j++) {
            if (s[j] !== 0) acc += s[j] * v[(bi * nk + j) * ld + h * d + c];
          }
          out[oo + c] = acc / l;
        }
      }
    }
  }
  return out;
}

/** Picks `rows` of a [B, Nq, C] array. */
function pickRows(x: Float32Array, b: number, nq: number, c: number, rows: number[]): Float32Array {
  const out = new Float32Array(b * rows.length * c);
  for (let bi = 0; bi < b; bi++) {
    rows.forEach((i, ri) => {
      out.set(x.subarray((bi * nq + i) * c, (bi * nq + i + 1) * c), (bi * rows.length + ri) * c);
    });
  }
  return out;
}

const roundF16 = (x: Float32Array) => Float32Array.from(new Float16Array(x));

interface Case {
  name: string;
  b: number;
  nq: number;
  nk: number;
  heads: number;
  d: number;
  causal?: boolean;
  /** Scale of q's values (larger: peakier softmax). */
  qScale?: number;
  /** Check this many random query rows only (the CPU reference is slow at SD sizes). */
  sampleRows?: number;
  /** Storage types to run (default both). */
  dtypes?: DType[];
  /** Intermediate-buffer caps (bytes) in force, to exercise the chunked paths. */
  limits?: Partial<typeof chunkLimits>;
  /** Pin the flash variant's kernel: the tiled one, or the rows kernel with these tiles. */
  flash?: "tiled" | RowTiles;
}

const VARIANTS: Variants["attention"][] = ["naive", "partitioned", "flash"];

async function runCase(gpu: Gpu, c: Case): Promise<string[]> {
  const ch = c.heads * c.d;
  const q32 = randomData(c.b * c.nq * ch, 11, c.qScale ?? 2);
  const k32 = randomData(c.b * c.nk * ch, 12);
  const v32 = randomData(c.b * c.nk * ch, 13);
  let rows = [...Array(c.nq).keys()];
  if (c.sampleRows !== undefined && c.sampleRows < c.nq) {
    const pick = randomData(c.sampleRows, 14);
    rows = [...new Set([0, c.nq - 1, ...[...pick].map((x) => Math.floor((x + 1) / 2 * c.nq))])]
      .sort((a, b) => a - b);
  }
  const lines: string[] = [];
  for (const dtype of c.dtypes ?? ["f32", "f16"]) {
    if (dtype === "f16" && !gpu.hasF16) continue;
    const [qr, kr, vr] = dtype === "f16"
      ? [roundF16(q32), roundF16(k32), roundF16(v32)]
      : [q32, k32, v32];
    const ref = attentionRef(qr, kr, vr, c.b, c.nq, c.nk, c.heads, c.d, !!c.causal, rows);
    const q = Tensor.from(gpu, q32, [c.b, c.nq, ch], dtype);
    const k = Tensor.from(gpu, k32, [c.b, c.nk, ch], dtype);
    const v = Tensor.from(gpu, v32, [c.b, c.nk, ch], dtype);
    const tol = dtype === "f32" ? 1e-5 : 1e-2;
    const errs: string[] = [];
    for (const variant of VARIANTS) {
      setVariants(gpu, { attention: variant });
      const t0 = performance.now();
      const saved = { ...chunkLimits };
      Object.assign(chunkLimits, c.limits);
      if (c.flash === "tiled") flashChoice.kernel = "tiled";
      else if (c.flash) flashChoice.rowTiles = c.flash;
      let out: Tensor;
      try {
        out = attention(q, k, v, c.heads, { causal: c.causal });
      } finally {
        Object.assign(chunkLimits, saved);
        flashChoice.kernel = "auto";
        flashChoice.rowTiles = null;
      }
      const all = await out.read();
      const ms = performance.now() - t0;
      out.release();
      assert(all.length === c.b * c.nq * ch, `${c.name}: output size`);
      const got = pickRows(all, c.b, c.nq, ch, rows);
      const e = relL2(got, ref);
      errs.push(
        `${variant} ${e.toExponential(1)} (max abs ${maxAbs(got, ref).toExponential(1)}, ${
          ms.toFixed(0)
        } ms)`,
      );
      assert(
        e < tol,
        `${c.name} ${variant} ${dtype}: rel L2 ${e} ≥ ${tol} vs the CPU reference`,
      );
    }
    q.release();
    k.release();
    v.release();
    lines.push(`  ${c.name} ${dtype}: ${errs.join("; ")}`);
  }
  setVariants(gpu, { attention: "flash" });
  return lines;
}

function caseTest(c: Case): void {
  Deno.test({
    name: `attention: ${c.name} — naive, partitioned, flash in ${
      (c.dtypes ?? ["f32", "f16"]).join(" and ")
    } vs CPU`,
    ignore: !hasGpu,
    async fn() {
      const gpu = (await testGpu())!;
      const lines = await runCase(gpu, c);
      console.log(lines.join("\n"));
    },
  });
}

caseTest({ name: "odd small 2×5×7, 2 heads, d 3", b: 2, nq: 5, nk: 7, heads: 2, d: 3 });
caseTest({
  name: "odd small causal 2×5×7, 2 heads, d 3",
  b: 2,
  nq: 5,
  nk: 7,
  heads: 2,
  d: 3,
  causal: true,
});
caseTest({
  name: "CLIP causal 2×77×77, 12 heads, d 64 (peaky logits)",
  b: 2,
  nq: 77,
  nk: 77,
  heads: 12,
  d: 64,
  causal: true,
  qScale: 6,
});
caseTest({ name: "d 16, 1×100×130, 4 heads", b: 1, nq: 100, nk: 130, heads: 4, d: 16 });
// Caps small enough that the naive scores go 64 query rows of one head at a time and the
// partitioned partials 32 rows at a time.
for (const causal of [false, true]) {
  caseTest({
    name: `chunked over query rows${causal ? ", causal" : ""}: 2×200×150, 3 heads, d 24`,
    b: 2,
    nq: 200,
    nk: 150,
    heads: 3,
    d: 24,
    causal,
    limits: { naiveScores: 64 * 150 * 4, partials: 40 * 2 * 24 * 4 },
  });
}
// The rows kernel at small shapes (the shape rules send these to the tiled kernel): two rows an
// invocation, split keys, causal masks, ragged query and key tiles; and the tiled kernel at a
// head dim the rows kernel takes.
for (const causal of [false, true]) {
  caseTest({
    name: `rows kernel, 2 rows, 2 key splits${causal ? ", causal" : ""}: 2×200×150, 3 heads, d 24`,
    b: 2,
    nq: 200,
    nk: 150,
    heads: 3,
    d: 24,
    causal,
    flash: { br: 32, rm: 2, ks: 2, bc: 32, sb: 8 },
  });
}
caseTest({
  name: "rows kernel, SD d 40 self-attention tiles, causal: 1×300×300, 2 heads, d 40",
  b: 1,
  nq: 300,
  nk: 300,
  heads: 2,
  d: 40,
  causal: true,
  flash: { br: 128, rm: 2, ks: 1, bc: 64, sb: 8 },
});
caseTest({
  name: "rows kernel, SD d 80 self-attention tiles: 1×256×256, 2 heads, d 80",
  b: 1,
  nq: 256,
  nk: 256,
  heads: 2,
  d: 80,
  flash: { br: 64, rm: 1, ks: 2, bc: 32, sb: 4 },
});
caseTest({
  name: "rows kernel, SD d 80 cross-attention tiles: 2×150×77, 2 heads, d 80",
  b: 2,
  nq: 150,
  nk: 77,
  heads: 2,
  d: 80,
  flash: { br: 64, rm: 1, ks: 2, bc: 16, sb: 8 },
});
// Long prompts: the UNet attends to k chunks of 77 text tokens (154 for two).
caseTest({
  name: "rows kernel, SD d 40 cross-attention to a two-chunk prompt: 2×300×154, 2 heads",
  b: 2,
  nq: 300,
  nk: 154,
  heads: 2,
  d: 40,
  flash: { br: 128, rm: 2, ks: 1, bc: 64, sb: 8 },
});
caseTest({
  name: "tiled kernel at d 40: 1×300×77, 8 heads",
  b: 1,
  nq: 300,
  nk: 77,
  heads: 8,
  d: 40,
  flash: "tiled",
});
caseTest({ name: "VAE-like d 512, 1 head, 64×64", b: 1, nq: 64, nk: 64, heads: 1, d: 512 });
caseTest({ name: "d 160, 8 heads, 256×256", b: 1, nq: 256, nk: 256, heads: 8, d: 160 });
caseTest({
  name: "SD cross-attention 8 heads × 4096 × 77, d 40",
  b: 1,
  nq: 4096,
  nk: 77,
  heads: 8,
  d: 40,
  sampleRows: 256,
});
caseTest({
  name: "SD self-attention 8 heads × 1024 × 1024, d 80",
  b: 1,
  nq: 1024,
  nk: 1024,
  heads: 8,
  d: 80,
  sampleRows: 64,
});
// ≈ 21 GFLOP a variant, seconds each on a software adapter: f32 only (f16 runs the same code
// paths at every other shape).
caseTest({
  name: "SD self-attention 8 heads × 4096 × 4096, d 40",
  b: 1,
  nq: 4096,
  nk: 4096,
  heads: 8,
  d: 40,
  sampleRows: 64,
  dtypes: ["f32"],
});

Deno.test({
  name: "attention: rejects mismatched shapes and head dims over 512",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await testGpu())!;
    const q = Tensor.from(gpu, new Float32Array(2 * 3 * 8), [2, 3, 8], "f32");
    const k = Tensor.from(gpu, new Float32Array(2 * 4 * 6), [2, 4, 6], "f32");
    const big = Tensor.from(gpu, new Float32Array(1024), [1, 1, 1024], "f32");
    await assertRejects(() => attention(q, k, k, 2), "batch and channels");
    await assertRejects(() => attention(q, q, q, 3), "split evenly");
    await assertRejects(() => attention(big, big, big, 1), "exceeds 512");
    for (const t of [q, k, big]) t.release();
  },
});

Deno.test("attention: unrollLoops expands #unroll loops over literal and const bounds", () => {
  const src = [
    "const RM = 2u;",
    "#unroll",
    "for (var x = 0u; x < RM; x++) {",
    "  #unroll",
    "  for (var y = 0u; y < 2u; y++) { s[x][y] = v.x + f(x, y); }",
    "}",
    "for (var j = 0u; j < n; j++) { t[j] = 0.0; }",
  ].join("\n");
  const out = unrollLoops(src);
  assert(!out.includes("#unroll") && !out.includes("x++") && !out.includes("y++"), out);
  const stores = [...out.matchAll(/s\[(\du)\]\[(\du)\] = v\.x \+ f\(\1, \2\)/g)].map((m) =>
    `${m[1]}${m[2]}`
  );
  assertEquals(stores, ["0u0u", "0u1u", "1u0u", "1u1u"]);
  assert(out.includes("for (var j = 0u; j < n; j++)"), "unmarked loops stay");
  assert(
    (() => {
      try {
        unrollLoops("#unroll\nfor (var i = 0u; i < n; i++) { }");
        return false;
      } catch (e) {
        return (e as Error).message.includes("not a constant");
      }
    })(),
    "a non-constant bound is an error",
  );
});

// Under WebGPU's default limits (16 KiB of workgroup memory): the rows kernel's SD tiles (20 KiB)
// shrink (fewer keys a tile, fewer invocations a key split), the tiled kernel takes fewer rows an
// invocation; every kernel fits (the device refuses any that does not) and matches the CPU.
Deno.test({
  name: "attention: under WebGPU's default limits — rows tiles shrink to fit, f32 vs CPU",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await defaultLimitsGpu())!;
    const cases: Case[] = [
      { name: "d 40 rows", b: 1, nq: 300, nk: 300, heads: 2, d: 40, causal: true },
      { name: "d 80 rows, split keys", b: 1, nq: 256, nk: 256, heads: 2, d: 80 },
      { name: "d 40 tiled", b: 1, nq: 300, nk: 77, heads: 8, d: 40, flash: "tiled" },
      { name: "d 160", b: 1, nq: 256, nk: 256, heads: 8, d: 160, sampleRows: 32 },
      { name: "d 512", b: 1, nq: 64, nk: 64, heads: 1, d: 512 },
    ];
    const sdTiles: Record<number, RowTiles> = {
      40: { br: 128, rm: 2, ks: 1, bc: 64, sb: 8 },
      80: { br: 64, rm: 1, ks: 2, bc: 32, sb: 4 },
    };
    for (const c of cases) {
      const lines = await runCase(gpu, {
        ...c,
        dtypes: ["f32"],
        flash: c.flash ?? sdTiles[c.d],
      });
      console.log(lines.join("\n"));
    }
    const rows = gpu.kernelNames().filter((n) => n.startsWith("attention_flash_rows_"));
    assertEquals(rows.sort(), [
      "attention_flash_rows_f32_d40_br128_rm2_ks1_bc32_sb8",
      "attention_flash_rows_f32_d80_br32_rm1_ks2_bc16_sb4",
    ]);
  },
});
