import { assert, assertEquals, assertRejects } from "../src/std/assert.ts";
import { join } from "../src/std/path.ts";
import { SafetensorsError, SafeTensorsFile } from "../src/weights/safetensors.ts";
import { writeSafetensors } from "../src/weights/safetensors_writer.ts";
import { fixture } from "./fixtures.ts";

const TINY = fixture("tiny-sd");

/** Index of the first element whose bits differ, or -1 (lengths must match). */
function firstBitDiff(a: ArrayBufferView, b: ArrayBufferView): number {
  assertEquals(a.byteLength, b.byteLength, "byte lengths differ");
  const x = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const y = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return i;
  return -1;
}

/** The tiny-sd component folders with their f32 and f16 weight files. */
async function tinyPairs(): Promise<{ dir: string; f32: string; f16: string }[]> {
  const pairs = [];
  for await (const d of Deno.readDir(TINY)) {
    if (!d.isDirectory) continue;
    const names = [];
    for await (const f of Deno.readDir(join(TINY, d.name))) names.push(f.name);
    for (const n of names) {
      if (!n.endsWith(".safetensors") || n.endsWith(".fp16.safetensors")) continue;
      const f16 = n.replace(/\.safetensors$/, ".fp16.safetensors");
      assert(names.includes(f16), `${d.name}/${n} has no ${f16} twin`);
      pairs.push({ dir: d.name, f32: join(TINY, d.name, n), f16: join(TINY, d.name, f16) });
    }
  }
  return pairs.sort((a, b) => a.dir.localeCompare(b.dir));
}

Deno.test("safetensors: every tiny-sd file loads; the fp16 files are the f32 ones cast", async () => {
  const pairs = await tinyPairs();
  assertEquals(pairs.map((p) => p.dir), ["text_encoder", "unet", "vae"]);
  let tensors = 0, values = 0;
  for (const { dir, f32: p32, f16: p16 } of pairs) {
    const f32 = await SafeTensorsFile.open(p32), f16 = await SafeTensorsFile.open(p16);
    assert(f32.tensors.size > 0, `${p32}: no tensors`);
    assertEquals(f16.tensors.size, f32.tensors.size, `${dir}: tensor counts differ`);
    assertEquals(f32.metadata, { format: "pt" });
    for (const [name, a] of f32.tensors) {
      const b = f16.tensors.get(name);
      assert(b, `${p16} lacks ${name}`);
      assertEquals(b.shape, a.shape, `${dir}/${name}: shapes differ`);
      if (a.dtype === "I64") {
        assertEquals(b.dtype, "I64");
        assertEquals(await f16.readI64(name), await f32.readI64(name), `${dir}/${name}`);
        continue;
      }
      assertEquals([a.dtype, b.dtype], ["F32", "F16"], `${dir}/${name}: dtypes`);
      const v32 = await f32.readF32(name);
      const v16 = await f16.readAs(name, "f16");
      assert(v16 instanceof Float16Array);
      assertEquals(v32.length, a.shape.reduce((x, y) => x * y, 1));
      // The f16 file is the f32 one rounded to nearest; readAs("f16") on the f32 file agrees.
      assertEquals(firstBitDiff(v16, new Float16Array(v32)), -1, `${dir}/${name}: f16 ≠ f32 cast`);
      assertEquals(firstBitDiff(await f32.readAs(name, "f16"), v16), -1, `${dir}/${name}: readAs`);
      // Widening f16 → f32 is exact.
      assertEquals(firstBitDiff(await f16.readF32(name), new Float32Array(v16)), -1);
      tensors++;
      values += v32.length;
    }
    f32.close();
    f16.close();
  }
  console.log(`  ${tensors} tensor pairs, ${values} values: f16 files = f32 files rounded to f16`);
});

Deno.test("safetensors: other fixture files open (F64, I64, single-file F16)", async () => {
  for (const name of ["tiny-sd-single.fp16.safetensors", "schedulers.safetensors"]) {
    const f = await SafeTensorsFile.open(fixture(name));
    let floats = 0;
    for (const t of f.tensors.values()) {
      if (t.dtype === "I64") continue;
      const v = await f.readF64(t.name);
      assertEquals(v.length, t.shape.reduce((x, y) => x * y, 1));
      assert(v.every(Number.isFinite), `${name}/${t.name}: non-finite values`);
      floats++;
    }
    assert(floats > 0, `${name}: no float tensors`);
    f.close();
  }
  const s = await SafeTensorsFile.open(fixture("schedulers.safetensors"));
  const ts = [...s.tensors.values()].find((t) => t.dtype === "F64" && t.name.endsWith("timesteps"));
  assert(ts, "schedulers.safetensors: no F64 timesteps");
  const v = await s.readF64(ts.name);
  assert(v.every(Number.isInteger), `${ts.name}: timesteps should be whole numbers`);
  assertEquals(firstBitDiff(await s.readF32(ts.name), new Float32Array(v)), -1);
  s.close();
});

Deno.test("safetensors: write → read round trip, BF16, unaligned offsets, metadata", async () => {
  const dir = await Deno.makeTempDir({ prefix: "safetensors_test_" });
  try {
    const path = join(dir, "rt.safetensors");
    const f32 = Float32Array.from({ length: 24 }, (_, i) => (i - 7) * 0.3 + 1e-3);
    const odd = new Float16Array([1.5, -2, 65504]); // 6 bytes: the next tensor starts misaligned
    const i64 = BigInt64Array.from([0n, -1n, 2n ** 40n]);
    // bf16 round to nearest even: 1 + 2^-8 is a tie → 1; 1 + 3·2^-8 is a tie → 1 + 2^-6; 1e38 is
    // finite; max f32 rounds up to Infinity; NaN stays NaN.
    const bfIn = new Float32Array([
      1 + 2 ** -8,
      1 + 3 * 2 ** -8,
      -3,
      1e38,
      3.4028234663852886e38,
      NaN,
    ]);
    const bfWant = [1, 1 + 2 ** -6, -3, 9.969209968386869e37, Infinity, NaN];
    await writeSafetensors(path, [
      { name: "odd", dtype: "F16", shape: [3], data: odd },
      { name: "w", dtype: "F32", shape: [2, 3, 4], data: f32 },
      { name: "w16", dtype: "F16", shape: [24], data: f32 },
      { name: "bf", dtype: "BF16", shape: [6], data: bfIn },
      { name: "ids", dtype: "I64", shape: [3], data: i64 },
      { name: "d", dtype: "F64", shape: [2], data: new Float64Array([0.1, 999]) },
      { name: "empty", dtype: "F32", shape: [0, 4], data: new Float32Array(0) },
    ], { format: "pt", note: "written by the test" });

    const bytes = await Deno.readFile(path);
    const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assertEquals(headerLen % 8, 0, "header not padded to 8 bytes");
    const header = new TextDecoder().decode(bytes.subarray(8, 8 + headerLen));
    assert(/^\{.*\} *$/.test(header), "header padding must be spaces");

    const f = await SafeTensorsFile.open(path);
    assertEquals(f.size, bytes.length);
    assertEquals(f.metadata, { format: "pt", note: "written by the test" });
    assertEquals([...f.tensors.keys()], ["odd", "w", "w16", "bf", "ids", "d", "empty"]);
    const w = f.tensors.get("w")!;
    assertEquals(w.begin % 4, 2, "the F32 tensor should start at an unaligned offset");
    assertEquals(w.shape, [2, 3, 4]);
    assertEquals(firstBitDiff(await f.readF32("w"), f32), -1);
    assertEquals(firstBitDiff(await f.readAs("w", "f32"), f32), -1);
    assertEquals(firstBitDiff(await f.readAs("w16", "f16"), new Float16Array(f32)), -1);
    assertEquals([...await f.readF32("odd")], [1.5, -2, 65504]);
    assertEquals([...await f.readF32("bf")], bfWant);
    assertEquals([...await f.readAs("bf", "f16")], [1, 1 + 2 ** -6, -3, Infinity, Infinity, NaN]);
    assertEquals(await f.readI64("ids"), i64);
    assertEquals([...await f.readF64("d")], [0.1, 999]);
    assertEquals([...await f.readF32("d")], [Math.fround(0.1), 999]);
    assertEquals((await f.readF32("empty")).length, 0);
    // Concurrent reads share one file handle; each must get its own bytes.
    const [a, b] = await Promise.all([f.readF32("w"), f.readF32("odd")]);
    assertEquals(firstBitDiff(a, f32), -1);
    assertEquals([...b], [1.5, -2, 65504]);

    await assertRejects(() => f.readRaw("nope"), `${path}: no tensor "nope"`);
    await assertRejects(() => f.readF32("ids"), "is I64, not floating point");
    await assertRejects(() => f.readI64("w"), "is F32, not I64");
    f.close();
    await assertRejects(() => f.readRaw("w"), "after close()");

    // Hand-written BF16 bits: 1.0, -2.0, the smallest bf16 subnormal, +inf.
    const raw = new Uint8Array(new Uint16Array([0x3f80, 0xc000, 0x0001, 0x7f80]).buffer);
    const p2 = join(dir, "bf16.safetensors");
    await writeSafetensors(p2, [{ name: "x", dtype: "BF16", shape: [2, 2], data: raw }]);
    const g = await SafeTensorsFile.open(p2);
    assertEquals([...await g.readF32("x")], [1, -2, 2 ** -133, Infinity]);
    g.close();

    await assertRejects(
      () => writeSafetensors(p2, [{ name: "x", dtype: "F32", shape: [5], data: f32 }]),
      "has 96 data bytes but shape [5] × F32 needs 20",
    );
    await assertRejects(
      () => writeSafetensors(p2, [{ name: "x", dtype: "I64", shape: [24], data: f32 }]),
      "cannot write a Float32Array as I64",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** A safetensors file from a header object (unpadded, so data may start unaligned) and data. */
function rawFile(header: unknown, data = new Uint8Array(0)): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

Deno.test("safetensors: corrupted files are rejected with one-line messages naming the file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "safetensors_test_" });
  try {
    const good = await Deno.readFile(join(TINY, "vae", "diffusion_pytorch_model.safetensors"));
    const headerLen = Number(new DataView(good.buffer).getBigUint64(0, true));
    const withHeaderLen = (n: bigint) => {
      const b = good.slice();
      new DataView(b.buffer).setBigUint64(0, n, true);
      return b;
    };
    const replaceInHeader = (from: string, to: string) => {
      assertEquals(from.length, to.length);
      const header = new TextDecoder().decode(good.subarray(8, 8 + headerLen));
      assert(header.includes(from), `fixture header lacks ${from}`);
      const b = good.slice();
      b.set(new TextEncoder().encode(header.replace(from, to)), 8);
      return b;
    };
    const t = (o: object) => ({ __metadata__: { format: "pt" }, ...o });
    const cases: [string, Uint8Array, string][] = [
      ["short", good.slice(0, 5), "shorter than the 8-byte header length"],
      ["empty", new Uint8Array(0), "0 bytes, shorter than the 8-byte header length"],
      ["truncated", good.slice(0, good.length - 1000), "truncated: tensor"],
      ["header_past_eof", withHeaderLen(BigInt(good.length)), "runs past the end of the file"],
      ["header_huge", withHeaderLen(2n ** 63n), "runs past the end of the file"],
      ["bad_json", replaceInHeader('"dtype":', '"dtype" '), "header is not valid JSON"],
      ["unknown_dtype", replaceInHeader('"F32"', '"F8" '), 'unknown dtype "F8"'],
      ["not_object", rawFile([1, 2]), "header is not a JSON object"],
      [
        "offsets_out_of_range",
        rawFile(
          t({ a: { dtype: "F32", shape: [1000], data_offsets: [0, 4000] } }),
          new Uint8Array(16),
        ),
        'truncated: tensor "a" ends at byte',
      ],
      [
        "offsets_reversed",
        rawFile(t({ a: { dtype: "F32", shape: [0], data_offsets: [16, 0] } }), new Uint8Array(16)),
        "end before they begin",
      ],
      [
        "offsets_into_header",
        rawFile(t({ a: { dtype: "F32", shape: [2], data_offsets: [-8, 0] } }), new Uint8Array(16)),
        "invalid data_offsets [-8,0]",
      ],
      [
        "offsets_missing",
        rawFile(t({ a: { dtype: "F32", shape: [2] } })),
        "invalid data_offsets undefined",
      ],
      [
        "size_mismatch",
        rawFile(t({ a: { dtype: "F32", shape: [4], data_offsets: [0, 12] } }), new Uint8Array(16)),
        "has 12 data bytes but shape [4] × F32 needs 16",
      ],
      [
        "bad_shape",
        rawFile(t({ a: { dtype: "F16", shape: [-1], data_offsets: [0, 2] } }), new Uint8Array(2)),
        "invalid shape [-1]",
      ],
      [
        "overlap",
        rawFile(
          t({
            a: { dtype: "F32", shape: [4], data_offsets: [0, 16] },
            b: { dtype: "F16", shape: [4], data_offsets: [8, 16] },
          }),
          new Uint8Array(16),
        ),
        'tensors "a" and "b" overlap',
      ],
      [
        "bad_metadata",
        rawFile({ __metadata__: { steps: 5 } }),
        '__metadata__ value of "steps" is not a string',
      ],
    ];
    for (const [name, bytes, what] of cases) {
      const path = join(dir, `${name}.safetensors`);
      await Deno.writeFile(path, bytes);
      const err = await assertRejects(() => SafeTensorsFile.open(path), what);
      assert(
        err instanceof SafetensorsError,
        `${name}: ${err.constructor.name}, not SafetensorsError`,
      );
      assert(
        err.message.startsWith(`${path}: `),
        `${name}: message does not name the file: ${err.message}`,
      );
      assert(!err.message.includes("\n"), `${name}: message is not one line: ${err.message}`);
      console.log(`  ${name}: ${err.message.slice(dir.length + 1)}`);
    }
    await assertRejects(
      () => SafeTensorsFile.open(join(dir, "missing.safetensors")),
      "cannot open",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("safetensors: tensors past 2 GiB and 4 GiB of a sparse 4 GiB file", async () => {
  // Holes cost no disk on ext4/xfs/btrfs/tmpfs; only the header and two 1 KiB tensors are written.
  const dir = await Deno.makeTempDir({ prefix: "safetensors_test_" });
  try {
    const path = join(dir, "big.safetensors");
    const HEADER = 1024, start = 8 + HEADER, k = 256; // k f32 values = 1 KiB per probe tensor
    // Each probe straddles its boundary: bytes [2^31 − 512, 2^31 + 512) and likewise at 2^32.
    const at31 = 2 ** 31 - 512 - start, at32 = 2 ** 32 - 512 - start;
    const header = JSON.stringify({
      gap1: { dtype: "F32", shape: [at31 / 4], data_offsets: [0, at31] },
      p31: { dtype: "F32", shape: [k], data_offsets: [at31, at31 + 4 * k] },
      gap2: {
        dtype: "F32",
        shape: [(at32 - at31 - 4 * k) / 4],
        data_offsets: [at31 + 4 * k, at32],
      },
      p32: { dtype: "F32", shape: [2, k / 2], data_offsets: [at32, at32 + 4 * k] },
    }).padEnd(HEADER, " ");
    const v31 = Float32Array.from({ length: k }, (_, i) => i + 0.25);
    const v32 = Float32Array.from({ length: k }, (_, i) => -i - 0.5);
    const t0 = performance.now();
    const file = await Deno.open(path, { write: true, create: true, truncate: true });
    const prefix = new Uint8Array(8);
    new DataView(prefix.buffer).setBigUint64(0, BigInt(HEADER), true);
    await file.write(prefix);
    await file.write(new TextEncoder().encode(header));
    await file.seek(start + at31, Deno.SeekMode.Start);
    await file.write(new Uint8Array(v31.buffer));
    await file.truncate(start + at32); // hole up to p32
    await file.seek(start + at32, Deno.SeekMode.Start);
    await file.write(new Uint8Array(v32.buffer));
    file.close();
    const st = await Deno.stat(path);
    assertEquals(st.size, start + at32 + 4 * k);

    const f = await SafeTensorsFile.open(path);
    assertEquals(f.tensors.get("p32")!.begin, 2 ** 32 - 512);
    assertEquals(firstBitDiff(await f.readF32("p31"), v31), -1, "p31");
    assertEquals(firstBitDiff(await f.readF32("p32"), v32), -1, "p32");
    const streamed = new Map<string, ArrayBufferView>();
    for await (const { name, data } of f.stream(["p31", "p32"], "f32")) streamed.set(name, data);
    assertEquals(firstBitDiff(streamed.get("p31")!, v31), -1, "p31 streamed");
    assertEquals(firstBitDiff(streamed.get("p32")!, v32), -1, "p32 streamed");
    f.close();
    // Cut 4 bytes off the end: p32 is now truncated, found from the header alone.
    await Deno.truncate(path, st.size - 4);
    await assertRejects(() => SafeTensorsFile.open(path), 'truncated: tensor "p32"');
    console.log(
      `  ${(st.size / 2 ** 30).toFixed(2)} GiB file (${
        ((st.blocks ?? 0) * 512 / 1024).toFixed(0)
      } KiB ` +
        `on disk), written and read in ${(performance.now() - t0).toFixed(0)} ms`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("safetensors: stream reads on a worker what readAs reads, in file order", async () => {
  for (const { f32: p32, f16: p16 } of await tinyPairs()) {
    for (const path of [p32, p16]) {
      const f = await SafeTensorsFile.open(path);
      const floats = [...f.tensors.values()].filter((t) => t.dtype !== "I64");
      // Asked in reverse order; small groups and a one-group window exercise the credits.
      const names = floats.map((t) => t.name).reverse();
      for (const dtype of ["f32", "f16"] as const) {
        for (const opts of [{}, { groupBytes: 3000, window: 1 }]) {
          const got: string[] = [];
          for await (const { name, data } of f.stream(names, dtype, opts)) {
            got.push(name);
            assert(data instanceof (dtype === "f16" ? Float16Array : Float32Array), name);
            assertEquals(firstBitDiff(data, await f.readAs(name, dtype)), -1, `${path}/${name}`);
          }
          assertEquals(got, [...floats].sort((a, b) => a.begin - b.begin).map((t) => t.name));
        }
      }
      f.close();
    }
  }
});

Deno.test("safetensors: stream of unaligned tensors, an early stop, a file cut short", async () => {
  const dir = await Deno.makeTempDir({ prefix: "safetensors_stream_" });
  try {
    const path = join(dir, "s.safetensors");
    const f32 = Float32Array.from({ length: 300 }, (_, i) => Math.sin(i) * 70000);
    await writeSafetensors(path, [
      { name: "odd", dtype: "F16", shape: [3], data: new Float16Array([1.5, -2, 65504]) },
      { name: "w", dtype: "F32", shape: [300], data: f32 }, // starts 2 bytes past alignment
      { name: "w16", dtype: "F16", shape: [300], data: f32 },
      { name: "bf", dtype: "BF16", shape: [300], data: f32 },
      { name: "d", dtype: "F64", shape: [2], data: new Float64Array([0.1, 1e6]) },
    ]);
    const f = await SafeTensorsFile.open(path);
    const names = ["odd", "w", "w16", "bf", "d"];
    for (const dtype of ["f32", "f16"] as const) {
      for await (const { name, data } of f.stream(names, dtype, { groupBytes: 1000 })) {
        assertEquals(firstBitDiff(data, await f.readAs(name, dtype)), -1, `${name} as ${dtype}`);
      }
    }
    for await (const { name } of f.stream(names, "f16", { window: 1 })) {
      assertEquals(name, "odd");
      break; // the worker is stopped; the test's leak check fails if it is not
    }
    await Deno.truncate(path, f.size - 10);
    await assertRejects(async () => {
      for await (const _ of f.stream(names, "f32", { groupBytes: 1000 })) {
        // consumed until the read fails
      }
    }, `${path}: unexpected end of file`);
    f.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
