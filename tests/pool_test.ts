import { assert, assertEquals } from "../src/std/assert.ts";
import { bufferId, BufferPool, sizeClass } from "../src/gpu/pool.ts";

/** A pool over stand-in buffers (the pool only keeps and counts them). */
function fakePool() {
  const created: { size: number; label: string }[] = [];
  const pool = new BufferPool((size, label) => {
    created.push({ size, label });
    return { size, label } as unknown as GPUBuffer;
  });
  return { pool, created };
}

Deno.test("pool: size classes are powers of two split into quarters, at least 256 bytes", () => {
  assertEquals([1, 256, 257, 1000, 1024, 1025].map(sizeClass), [256, 256, 320, 1024, 1024, 1280]);
  for (let b = 1; b < 1 << 20; b = Math.ceil(b * 1.37)) {
    const c = sizeClass(b);
    assert(c >= b && c <= Math.max(256, 1.25 * b), `${b} → ${c}`);
  }
});

Deno.test("pool: a freed buffer is reused by the next request of its class; bytes are counted", () => {
  const { pool, created } = fakePool();
  const a = pool.alloc(1000, "a", false);
  assertEquals(created, [{ size: 1024, label: "a" }]);
  pool.free(a);
  assertEquals(pool.alloc(900, "b", false), a); // same class: reused, not created
  const w = pool.alloc(1001, "w", true); // exact: rounded to 4 bytes only
  assertEquals(created.at(-1), { size: 1004, label: "w" });
  assertEquals([pool.allocatedBytes, pool.peakBytes], [2028, 2028]);
  pool.free(a);
  assertEquals(pool.takeFree(), [a]);
  assertEquals(pool.takeFree(), []);
  pool.forget(a);
  assertEquals([pool.allocatedBytes, pool.peakBytes], [1004, 2028]);
  assert(!pool.owns(a) && pool.owns(w));
  pool.resetPeak();
  assertEquals(pool.peakBytes, 1004);
  assert(bufferId(a) !== bufferId(w) && bufferId(a) === bufferId(a));
});
