import { assert, assertEquals } from "../src/std/assert.ts";
import type { DType, Gpu } from "../src/gpu/device.ts";
import { Tensor } from "../src/gpu/tensor.ts";
import {
  concatBatch,
  concatChannels,
  embedding,
  nchwToNlc,
  nlcToNchw,
  sliceBatch,
  upsampleNearest2x,
} from "../src/ops/layout.ts";
import { defaultLimitsGpu, hasGpu, randomData, testGpu } from "./gpu.ts";

// CPU references on flat row-major arrays.

/** [B, R, K] → [B, K, R]. */
function transposeRef(x: Float32Array, b: number, r: number, k: number): Float32Array {
  const y = new Float32Array(x.length);
  for (let n = 0; n < b; n++) {
    for (let i = 0; i < r; i++) {
      for (let j = 0; j < k; j++) y[(n * k + j) * r + i] = x[(n * r + i) * k + j];
    }
  }
  return y;
}

/** torch.cat([a, b], dim) with `outer` = product of the dims before `dim`. */
function catRef(a: Float32Array, b: Float32Array, outer: number): Float32Array {
  const na = a.length / outer, nb = b.length / outer;
  const y = new Float32Array(a.length + b.length);
  for (let o = 0; o < outer; o++) {
    y.set(a.subarray(o * na, (o + 1) * na), o * (na + nb));
    y.set(b.subarray(o * nb, (o + 1) * nb), o * (na + nb) + na);
  }
  return y;
}

/** `F.interpolate(size=(oh, ow), mode="nearest")` on [P, H, W] planes (default 2×). */
function upsampleRef(
  x: Float32Array,
  planes: number,
  h: number,
  w: number,
  oh = 2 * h,
  ow = 2 * w,
): Float32Array {
  const y = new Float32Array(planes * oh * ow);
  for (let p = 0; p < planes; p++) {
    for (let i = 0; i < oh; i++) {
      for (let j = 0; j < ow; j++) {
        y[(p * oh + i) * ow + j] =
          x[(p * h + Math.floor((i * h) / oh)) * w + Math.floor((j * w) / ow)];
      }
    }
  }
  return y;
}

/** The values a tensor of `dtype` holds for `data`. */
const stored = (data: Float32Array, dtype: DType) =>
  dtype === "f16" ? Float32Array.from(new Float16Array(data)) : data;

/** Exact comparison, reporting the first mismatch. */
function assertSame(got: Float32Array, want: Float32Array, what: string): void {
  assertEquals(got.length, want.length, `${what}: length`);
  for (let i = 0; i < got.length; i++) {
    if (!Object.is(got[i], want[i])) {
      throw new Error(`${what}: element ${i} is ${got[i]}, expected ${want[i]}`);
    }
  }
}

function dtypes(gpu: Gpu): DType[] {
  return gpu.hasF16 ? ["f32", "f16"] : ["f32"];
}

const numel = (s: number[]) => s.reduce((a, d) => a * d, 1);

Deno.test({
  name: "layout: nchwToNlc / nlcToNchw, odd and SD shapes, exact",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await testGpu())!;
    for (const dtype of dtypes(gpu)) {
      for (const [b, c, h, w] of [[1, 1, 1, 1], [2, 3, 5, 7], [1, 33, 9, 5], [2, 320, 64, 64]]) {
        const x = randomData(b * c * h * w, c + h, 4);
        const tx = Tensor.from(gpu, x, [b, c, h, w], dtype);
        const nlc = nchwToNlc(tx);
        assertEquals([...nlc.shape], [b, h * w, c]);
        const want = transposeRef(stored(x, dtype), b, c, h * w);
        assertSame(await nlc.read(), want, `nchwToNlc ${dtype} [${b},${c},${h},${w}]`);
        const back = nlcToNchw(nlc, h, w);
        assertEquals([...back.shape], [b, c, h, w]);
        assertSame(await back.read(), stored(x, dtype), `nlcToNchw ${dtype} [${b},${h * w},${c}]`);
        for (const t of [tx, nlc, back]) t.release();
      }
    }
  },
});

Deno.test({
  name: "layout: concatChannels, concatBatch, sliceBatch, odd and SD shapes, exact",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await testGpu())!;
    for (const dtype of dtypes(gpu)) {
      // concatChannels: [B, C1, H, W] ++ [B, C2, H, W] (last: the UNet's first up-block skip)
      for (
        const [b, c1, c2, h, w] of [[1, 1, 2, 1, 3], [2, 3, 4, 5, 7], [2, 320, 320, 64, 64]]
      ) {
        const a = randomData(b * c1 * h * w, 1, 3), bb = randomData(b * c2 * h * w, 2, 3);
        const ta = Tensor.from(gpu, a, [b, c1, h, w], dtype);
        const tb = Tensor.from(gpu, bb, [b, c2, h, w], dtype);
        const y = concatChannels(ta, tb);
        assertEquals([...y.shape], [b, c1 + c2, h, w]);
        const want = catRef(stored(a, dtype), stored(bb, dtype), b);
        assertSame(await y.read(), want, `concatChannels ${dtype} [${b},${c1}+${c2},${h},${w}]`);
        for (const t of [ta, tb, y]) t.release();
      }
      // concatBatch and sliceBatch: odd rows (unaligned f16 byte ranges) and CFG's [2, 77, 768]
      for (const row of [[5, 7], [77, 768]]) {
        const a = randomData(numel(row), 3, 2), bb = randomData(2 * numel(row), 4, 2);
        const ta = Tensor.from(gpu, a, [1, ...row], dtype);
        const tb = Tensor.from(gpu, bb, [2, ...row], dtype);
        const y = concatBatch(ta, tb);
        assertEquals([...y.shape], [3, ...row]);
        const all = catRef(stored(a, dtype), stored(bb, dtype), 1);
        assertSame(await y.read(), all, `concatBatch ${dtype} [1+2,${row}]`);
        for (const [start, count] of [[0, 1], [1, 1], [1, 2], [0, 3]]) {
          const s = sliceBatch(y, start, count);
          assertEquals([...s.shape], [count, ...row]);
          const want = all.subarray(start * numel(row), (start + count) * numel(row));
          assertSame(await s.read(), want, `sliceBatch ${dtype} [${start}, +${count}) [${row}]`);
          s.release();
        }
        for (const t of [ta, tb, y]) t.release();
      }
    }
  },
});

Deno.test({
  name: "layout: upsampleNearest2x (and to a size one short), odd and SD shapes, exact",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await testGpu())!;
    for (const dtype of dtypes(gpu)) {
      for (const [b, c, h, w] of [[1, 1, 1, 1], [2, 3, 5, 7], [2, 1280, 16, 16]]) {
        const x = randomData(b * c * h * w, 9, 5);
        const tx = Tensor.from(gpu, x, [b, c, h, w], dtype);
        const y = upsampleNearest2x(tx);
        assertEquals([...y.shape], [b, c, 2 * h, 2 * w]);
        const want = upsampleRef(stored(x, dtype), b * c, h, w);
        assertSame(await y.read(), want, `upsample ${dtype} [${b},${c},${h},${w}]`);
        y.release();
        // To a skip connection's size one row and/or column short (latents not divisible).
        for (const [oh, ow] of [[2 * h - 1, 2 * w], [2 * h, 2 * w - 1], [2 * h - 1, 2 * w - 1]]) {
          if (oh < 1 || ow < 1) continue;
          const yc = upsampleNearest2x(tx, [oh, ow]);
          assertEquals([...yc.shape], [b, c, oh, ow]);
          const wantC = upsampleRef(stored(x, dtype), b * c, h, w, oh, ow);
          assertSame(
            await yc.read(),
            wantC,
            `upsample ${dtype} [${b},${c},${h},${w}] → ${oh}×${ow}`,
          );
          yc.release();
        }
        tx.release();
      }
    }
  },
});

/** `F.interpolate(x, size=[oh, ow], mode="nearest")` as torch computes it: ⌊dst·f32(in/out)⌋. */
function upsampleToRef(
  x: Float32Array,
  planes: number,
  h: number,
  w: number,
  oh: number,
  ow: number,
) {
  const src = (dst: number, n: number, out: number) =>
    Math.min(Math.floor(Math.fround(dst * Math.fround(n / out))), n - 1);
  const y = new Float32Array(planes * oh * ow);
  for (let p = 0; p < planes; p++) {
    for (let i = 0; i < oh; i++) {
      for (let j = 0; j < ow; j++) {
        y[(p * oh + i) * ow + j] = x[(p * h + src(i, h, oh)) * w + src(j, w, ow)];
      }
    }
  }
  return y;
}

Deno.test({
  name:
    "layout: upsampleNearest2x to the skip's size = torch's interpolate(size=…) at 200×136's sides",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await testGpu())!;
    for (const dtype of dtypes(gpu)) {
      // [B, C, h, w] → [oh, ow]: 2h − 1 where the way down rounded an odd side up.
      const cases = [[1, 3, 4, 3, 7, 5], [2, 64, 13, 9, 25, 17], [2, 1280, 3, 4, 5, 7], [
        1,
        2,
        5,
        6,
        9,
        12,
      ]];
      for (const [b, c, h, w, oh, ow] of cases) {
        const x = randomData(b * c * h * w, 11, 5);
        const tx = Tensor.from(gpu, x, [b, c, h, w], dtype);
        const y = upsampleNearest2x(tx, [oh, ow]);
        assertEquals([...y.shape], [b, c, oh, ow]);
        const want = upsampleToRef(stored(x, dtype), b * c, h, w, oh, ow);
        assertSame(await y.read(), want, `upsample ${dtype} [${b},${c},${h},${w}] → ${oh}×${ow}`);
        tx.release();
        y.release();
      }
    }
  },
});

Deno.test({
  name: "layout: embedding with and without positions, small and CLIP shapes, exact",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await testGpu())!;
    for (const dtype of dtypes(gpu)) {
      // [B, L], V, C, P (position rows; the table may be longer than L, as CLIP's 77 rows)
      for (
        const [b, l, v, c, p] of [[1, 3, 5, 7, 4], [2, 77, 1000, 768, 77], [2, 9, 49408, 32, 77]]
      ) {
        const ids = new Uint32Array(b * l);
        for (let i = 0; i < ids.length; i++) ids[i] = (i * 7919 + 13) % v;
        ids[ids.length - 1] = v - 1;
        const table = stored(randomData(v * c, 5, 0.1), dtype);
        const pos = stored(randomData(p * c, 6, 0.02), dtype);
        const tt = Tensor.from(gpu, table, [v, c], dtype);
        const tp = Tensor.from(gpu, pos, [p, c], dtype);
        const plain = embedding(ids, [b, l], tt);
        const withPos = embedding(ids, [b, l], tt, tp);
        assertEquals([...withPos.shape], [b, l, c]);
        const want = new Float32Array(b * l * c), wantPos = new Float32Array(b * l * c);
        for (let r = 0; r < b * l; r++) {
          for (let k = 0; k < c; k++) {
            const e = table[ids[r] * c + k];
            want[r * c + k] = e;
            // the kernel adds in f32 and rounds once to the storage type
            const s = Math.fround(e + pos[(r % l) * c + k]);
            wantPos[r * c + k] = dtype === "f16" ? Math.f16round(s) : s;
          }
        }
        assertSame(await plain.read(), want, `embedding ${dtype} [${b},${l}] V=${v} C=${c}`);
        assertSame(await withPos.read(), wantPos, `embedding+pos ${dtype} [${b},${l}] C=${c}`);
        for (const t of [tt, tp, plain, withPos]) t.release();
      }
    }
  },
});

Deno.test({
  name: "layout: shape checks name the op and the shapes",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await testGpu())!;
    const a = Tensor.from(gpu, new Float32Array(24), [2, 3, 2, 2], "f32");
    const b = Tensor.from(gpu, new Float32Array(12), [1, 3, 2, 2], "f32");
    const table = Tensor.from(gpu, new Float32Array(8), [4, 2], "f32");
    const expectError = (fn: () => unknown, includes: string) => {
      let msg = "";
      try {
        fn();
      } catch (e) {
        msg = (e as Error).message;
      }
      assert(msg.includes(includes), `expected "${includes}", got "${msg}"`);
    };
    expectError(() => concatChannels(a, b), "concatChannels: cannot join [2,3,2,2]");
    expectError(() => sliceBatch(a, 1, 2), "sliceBatch: rows [1, 3)");
    expectError(() => nlcToNchw(a.reshape([2, 3, 4]), 2, 3), "nlcToNchw");
    expectError(() => embedding(new Uint32Array([0, 4]), [1, 2], table), "token id 4");
    for (const t of [a, b, table]) t.release();
  },
});

Deno.test({
  name:
    "layout: embedding from a table over the 128 MiB binding limit (rows gathered by copies), exact",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await defaultLimitsGpu())!;
    // 530 000 × 64 f32 = 135.7 MB: as CLIP's f32 token table (152 MB) is under default limits.
    const v = 530_000, c = 64, b = 2, l = 5, p = 8;
    const table = new Float32Array(v * c);
    for (let i = 0; i < table.length; i++) table[i] = (i % 9973) / 9973 - 0.5;
    const ids = Uint32Array.from({ length: b * l }, (_, i) => (i * 104_729 + 3) % v);
    ids[0] = v - 1;
    const pos = randomData(p * c, 6, 0.02);
    const tt = Tensor.from(gpu, table, [v, c], "f32");
    assert(tt.bytes > gpu.maxBinding, "the table exceeds one binding");
    const tp = Tensor.from(gpu, pos, [p, c], "f32");
    const y = embedding(ids, [b, l], tt, tp);
    const want = new Float32Array(b * l * c);
    for (let r = 0; r < b * l; r++) {
      for (let k = 0; k < c; k++) {
        want[r * c + k] = Math.fround(table[ids[r] * c + k] + pos[(r % l) * c + k]);
      }
    }
    assertSame(await y.read(), want, "embedding over the binding limit");
    for (const t of [tt, tp, y]) t.release();
    gpu.trimPool();
  },
});
