import { assert, assertEquals, assertThrows } from "../src/std/assert.ts";
import { randomSeed, TorchGenerator } from "../src/rng.ts";
import { fixture } from "./fixtures.ts";

const FIXTURE = fixture("randn.safetensors");

interface Draw {
  seed: number;
  shape: number[];
  values: Float32Array;
}

/** The `randn.s{seed}.{shape}` tensors of the fixture (F32 only; parses the header itself). */
async function loadDraws(): Promise<Map<string, Draw>> {
  const bytes = await Deno.readFile(FIXTURE);
  const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  const header = JSON.parse(
    new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)),
  ) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const draws = new Map<string, Draw>();
  for (const [key, entry] of Object.entries(header)) {
    if (key === "__metadata__") continue;
    const m = /^randn\.s(\d+)\.([\dx]+)$/.exec(key);
    assert(m !== null && entry.dtype === "F32", `unexpected fixture entry ${key} (${entry.dtype})`);
    const [begin, end] = entry.data_offsets.map((o) => 8 + headerLength + o);
    draws.set(key, {
      seed: Number(m[1]),
      shape: entry.shape,
      values: new Float32Array(bytes.slice(begin, end).buffer),
    });
  }
  return draws;
}

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

Deno.test("rng: every randn fixture tensor matches torch to 1e-6", async () => {
  const draws = await loadDraws();
  assert(draws.size > 0, "no randn fixtures found");
  let matched = 0;
  const lines: string[] = [];
  for (const [key, { seed, shape, values }] of draws) {
    assertEquals(numel(shape), values.length);
    const got = new TorchGenerator(seed).randn(values.length);
    let maxAbs = 0;
    let exact = 0;
    for (let i = 0; i < values.length; i++) {
      const d = Math.abs(got[i] - values[i]);
      maxAbs = Math.max(maxAbs, d);
      if (d === 0) exact++;
    }
    lines.push(`${key}: max |Δ| ${maxAbs.toExponential(2)}, ${exact}/${values.length} bit-exact`);
    if (maxAbs <= 1e-6) matched++;
  }
  console.log(`randn ${matched}/${draws.size}\n  ${lines.join("\n  ")}`);
  assertEquals(matched, draws.size, `randn fixtures within 1e-6:\n${lines.join("\n")}`);
});

Deno.test("rng: consecutive scalar draws continue torch's stream (cached second normal)", async () => {
  // torch caches Box–Muller's r·sin θ in the generator; randn(2) then randn(4) must continue it and
  // give the same six values as torch's randn(2, 3) from a fresh generator.
  const draws = await loadDraws();
  const small = [...draws.values()].find((d) => d.values.length < 16 && d.values.length > 1);
  assert(small !== undefined, "fixture has no tensor with fewer than 16 elements");
  const n = small.values.length;
  const g = new TorchGenerator(small.seed);
  const split = Math.floor(n / 2) | 1; // an odd first part leaves a cached value behind
  const joined = [...g.randn(split), ...g.randn(n - split)];
  assertEquals(joined, [...small.values]);
});

Deno.test("rng: block path continues the stream across calls", () => {
  for (const seed of [0, 42, 123456789]) {
    // Blocks of 16 use 16 uniforms each, so randn(16) twice = randn(32).
    const g = new TorchGenerator(seed);
    const twice = [...g.randn(16), ...g.randn(16)];
    assertEquals(twice, [...new TorchGenerator(seed).randn(32)]);
  }
});

Deno.test("rng: a size that is not a multiple of 16 recomputes the last 16 from fresh draws", () => {
  const seed = 7;
  const tail = new TorchGenerator(seed).randn(24);
  // Elements 0..7: the first block (draws 0..15), untouched by the tail.
  assertEquals([...tail.subarray(0, 8)], [...new TorchGenerator(seed).randn(16).subarray(0, 8)]);
  // Elements 8..23: a block over draws 24..39. randn(12) takes the scalar path, 6 Box–Muller
  // pairs of two 64-bit draws = 24 draws with nothing cached, so the next randn(16) uses 24..39.
  const g = new TorchGenerator(seed);
  g.randn(12);
  assertEquals([...tail.subarray(8)], [...g.randn(16)]);
});

Deno.test("rng: seeds follow torch's manual_seed (low 32 bits, negative as two's complement)", () => {
  const first = (seed: number | bigint) => [...new TorchGenerator(seed).randn(16)];
  assertEquals(first((1n << 32n) + 5n), first(5));
  assertEquals(first(-1), first(0xffffffff));
  assertEquals(first(-(1n << 63n)), first(0));
  // The CLI's whole range, 0 … 2^64−1: above 2^53 as a bigint, exact.
  assertEquals(first((1n << 64n) - 1n), first(0xffffffff));
  assertEquals(first((1n << 53n) + 1n), first(1));
  assert(first(1).join() !== first(2).join(), "different seeds gave the same draws");
  assertThrows(() => new TorchGenerator(1.5), "integer");
  assertThrows(() => new TorchGenerator(1n << 64n), "seed must be in");
  assertThrows(() => new TorchGenerator(0).randn(-1), "non-negative");
  assertEquals(new TorchGenerator(0).randn(0).length, 0);
});

Deno.test("rng: randomSeed gives integers in [0, 2^32)", () => {
  const seeds = Array.from({ length: 64 }, randomSeed);
  for (const s of seeds) assert(Number.isInteger(s) && s >= 0 && s < 2 ** 32, `bad seed ${s}`);
  assert(new Set(seeds).size > 1, "randomSeed returned one value 64 times");
});
