import { createHash } from "node:crypto";
import { assertEquals, assertRejects } from "../src/std/assert.ts";
import { join } from "../src/std/path.ts";
import { hashPrefix, sha256File, sha256FileInWorker } from "../src/weights/sha256.ts";

/**
 * A file of `n` pseudo-random bytes (more than one 4 MiB read when large), in a temporary folder
 * removed when the value is disposed (`await using`).
 */
async function tempFile(
  n: number,
): Promise<{ path: string; data: Uint8Array } & AsyncDisposable> {
  const data = new Uint8Array(n);
  let x = 12345;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    data[i] = x >>> 24;
  }
  const dir = await Deno.makeTempDir({ prefix: "sha256_test_" });
  const path = join(dir, "w.bin");
  await Deno.writeFile(path, data);
  return { path, data, [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }) };
}

const hex = (d: Uint8Array) => createHash("sha256").update(d).digest("hex");

Deno.test("sha256File and sha256FileInWorker match a one-shot digest across read chunks", async () => {
  for (const n of [0, 1000, (4 << 20) + 17]) {
    await using file = await tempFile(n);
    const { path, data } = file;
    assertEquals(await sha256File(path), hex(data), `${n} bytes`);
    assertEquals(await sha256FileInWorker(path), hex(data), `${n} bytes, worker`);
  }
});

Deno.test("hashPrefix hashes only the first bytes and reports them", async () => {
  await using file = await tempFile((4 << 20) + 100);
  const { path, data } = file;
  const seen: number[] = [];
  const { hash, done } = await hashPrefix(path, (4 << 20) + 10, (d) => seen.push(d));
  assertEquals(done, (4 << 20) + 10);
  assertEquals(seen, [4 << 20, (4 << 20) + 10]);
  assertEquals(hash.digest("hex"), hex(data.subarray(0, (4 << 20) + 10)));
});

Deno.test("sha256FileInWorker rejects a missing file with the reason", async () => {
  await assertRejects(
    () => sha256FileInWorker("/nonexistent/sd/unet.safetensors"),
    "No such file",
  );
});
