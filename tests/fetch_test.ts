/**
 * Fetching against local HTTP servers on 127.0.0.1 that serve the `tiny-sd` fixture under
 * a test lock with the files' real sizes and sha256: clean fetch, interrupted and resumed fetch,
 * a server without Range, a corrupted byte, a 404, a redirect to another port, a second run with no
 * network, concurrent fetches (in-process and a second process), the offline message, a config the
 * lock carries inline (written, never requested); and the CLIP tokenizer fixtures against the
 * shipped lock's SD 1.5 entries.
 */

import { assert, assertEquals, assertRejects } from "../src/std/assert.ts";
import { join } from "../src/std/path.ts";
import { isVerified, missingFiles, stampPath } from "../src/weights/cache.ts";
import { type FetchProgress, OfflineError, WeightsError } from "../src/weights/download.ts";
import { fetchModel, type FetchModelOptions, verifyFile } from "../src/weights/fetch.ts";
import { loadConfigs } from "../src/models/config.ts";
import {
  contentBytes,
  loadLock,
  type LockedFile,
  lockedModel,
  LockError,
  variantFilter,
  type WeightsLock,
} from "../src/weights/lock.ts";
import { fixture } from "./fixtures.ts";

const TINY = fixture("tiny-sd");
const TEST_TIMEOUT_MS = 60_000;

// ---------------------------------------------------------------------------------------------
// The served tree and its lock.

interface Served {
  path: string;
  data: Uint8Array<ArrayBuffer>;
  sha256: string;
}

async function sha256Hex(data: Uint8Array<ArrayBuffer>): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  return [...d].map((b) => b.toString(16).padStart(2, "0")).join("");
}

let servedCache: Map<string, Served> | null = null;

/** Every file of tiny-sd/, by relative path. */
async function tinyFiles(): Promise<Map<string, Served>> {
  if (servedCache) return servedCache;
  const out = new Map<string, Served>();
  const walk = async (rel: string) => {
    for await (const e of Deno.readDir(join(TINY, rel))) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory) await walk(p);
      else {
        const data = await Deno.readFile(join(TINY, p));
        out.set(p, { path: p, data, sha256: await sha256Hex(data) });
      }
    }
  };
  await walk("");
  servedCache = out;
  return out;
}

/** Lock entries for tiny-sd/: `.fp16.safetensors` → variant f16, other weights → f32. */
function lockFiles(files: Map<string, Served>): LockedFile[] {
  return [...files.values()].map((f) => {
    const e: LockedFile = { path: f.path, bytes: f.data.length, sha256: f.sha256 };
    if (f.path.endsWith(".fp16.safetensors")) e.variants = ["f16"];
    else if (f.path.endsWith(".safetensors")) e.variants = ["f32"];
    return e;
  });
}

/** Writes the test lock: tiny-sd's files, where an `extra` entry replaces the one of its path. */
async function writeTestLock(
  dir: string,
  base: string,
  extra: LockedFile[] = [],
): Promise<string> {
  const byPath = new Map(lockFiles(await tinyFiles()).map((f) => [f.path, f]));
  for (const f of extra) byPath.set(f.path, f);
  const files = [...byPath.values()];
  const lock = {
    version: 1,
    default: "tiny",
    models: { tiny: { revision: "0123456789abcdef", base, files } },
  };
  const path = join(dir, "test.lock");
  await Deno.writeTextFile(path, JSON.stringify(lock, null, 2));
  return path;
}

// ---------------------------------------------------------------------------------------------
// A misbehaving file server.

interface RequestLog {
  path: string;
  range: string | null;
  status: number;
}

interface ServerOptions {
  /** Honour `Range: bytes=N-` (default true). */
  range?: boolean;
  /** Paths whose first N responses send half the body, then break the connection. */
  cut?: Map<string, number>;
  /** A path whose middle byte is flipped. */
  flip?: string;
  /** Redirect every request to this base URL (another server). */
  redirectTo?: string;
  /** Delay between 256 KiB chunks, ms (to make downloads overlap). */
  chunkDelayMs?: number;
}

interface TestServer {
  base: string;
  log: RequestLog[];
  gets(path: string): RequestLog[];
  close(): Promise<void>;
}

function startServer(files: Map<string, Served>, opts: ServerOptions = {}): TestServer {
  const log: RequestLog[] = [];
  const CHUNK = 256 << 10;
  const handler = (req: Request): Response => {
    const url = new URL(req.url);
    const path = decodeURIComponent(url.pathname.replace(/^\/tiny-sd\//, ""));
    const range = req.headers.get("range");
    const record = (status: number) => log.push({ path, range, status });
    if (opts.redirectTo) {
      record(302);
      return new Response(null, { status: 302, headers: { location: opts.redirectTo + path } });
    }
    const f = files.get(path);
    if (!f || !url.pathname.startsWith("/tiny-sd/")) {
      record(404);
      return new Response("not found", { status: 404 });
    }
    let data = f.data;
    if (opts.flip === path) {
      data = data.slice();
      data[data.length >> 1] ^= 0x01;
    }
    let start = 0;
    let status = 200;
    const headers = new Headers({ "content-type": "application/octet-stream" });
    const m = range && /^bytes=(\d+)-$/.exec(range);
    if (opts.range !== false && m) {
      start = Number(m[1]);
      if (start >= data.length) {
        record(416);
        return new Response(null, {
          status: 416,
          headers: { "content-range": `bytes */${data.length}` },
        });
      }
      status = 206;
      headers.set("content-range", `bytes ${start}-${data.length - 1}/${data.length}`);
    }
    record(status);
    const body = data.subarray(start);
    headers.set("content-length", String(body.length));
    const left = opts.cut?.get(path) ?? 0;
    const cutAt = left > 0 ? body.length >> 1 : body.length;
    if (left > 0) opts.cut!.set(path, left - 1);
    let off = 0;
    const stream = new ReadableStream<Uint8Array>({
      async pull(c) {
        if (off >= cutAt) {
          if (cutAt < body.length) {
            await new Promise((r) => setTimeout(r, 30)); // let the first half reach the client
            c.error(new Error("connection cut by the test server"));
          } else c.close();
          return;
        }
        if (opts.chunkDelayMs) await new Promise((r) => setTimeout(r, opts.chunkDelayMs));
        const end = Math.min(off + CHUNK, cutAt);
        c.enqueue(body.slice(off, end));
        off = end;
      },
    });
    return new Response(stream, { status, headers });
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, handler);
  return {
    base: `http://127.0.0.1:${server.addr.port}/tiny-sd/`,
    log,
    gets: (path) => log.filter((r) => r.path === path),
    close: () => server.shutdown(),
  };
}

// ---------------------------------------------------------------------------------------------
// Harness.

interface Env {
  dir: string;
  cache: string;
  lockPath: string;
  lock: WeightsLock;
  events: FetchProgress[];
  opts: (extra?: Partial<FetchModelOptions>) => FetchModelOptions;
}

async function withEnv(
  base: string,
  body: (env: Env) => Promise<void>,
  extra: LockedFile[] = [],
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "sd-fetch-" });
  try {
    const lockPath = await writeTestLock(dir, base, extra);
    const lock = await loadLock(lockPath);
    const events: FetchProgress[] = [];
    const cache = join(dir, "cache");
    const opts = (more: Partial<FetchModelOptions> = {}): FetchModelOptions => ({
      lock,
      cacheDir: cache,
      onProgress: (p) => events.push(p),
      signal: AbortSignal.timeout(TEST_TIMEOUT_MS),
      retries: 0,
      retryDelayMs: 10,
      ...more,
    });
    await body({ dir, cache, lockPath, lock, events, opts });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Every file of the selection is in place, stamped, and hashes right; no `.part` is left. */
async function assertComplete(modelDir: string, lock: WeightsLock, variant: string) {
  const files = lockedModel(lock).files.filter(variantFilter(variant));
  for (const f of files) {
    const p = join(modelDir, f.path);
    const r = await verifyFile(p, f.bytes, f.sha256);
    assert(r.ok, `${f.path}: ${JSON.stringify(r)}`);
    assert(await isVerified(p, f), `${f.path} has no valid stamp`);
    await assertRejects(() => Deno.stat(p + ".part"));
  }
}

const UNET16 = "unet/diffusion_pytorch_model.fp16.safetensors";
const VAE16 = "vae/diffusion_pytorch_model.fp16.safetensors";

// ---------------------------------------------------------------------------------------------

Deno.test("clean fetch of the f16 selection, then a second run touching no network", async () => {
  const files = await tinyFiles();
  const srv = startServer(files);
  try {
    await withEnv(srv.base, async ({ cache, lock, events, opts }) => {
      const dir = await fetchModel(opts());
      assertEquals(dir, join(cache, "tiny-01234567"));
      await assertComplete(dir, lock, "f16");
      const selected = lockedModel(lock).files.filter(variantFilter("f16"));
      assertEquals(srv.log.length, selected.length, "one GET per selected file");
      assert(srv.log.every((r) => r.range === null && r.status === 200));
      assert(!srv.log.some((r) => r.path.endsWith("/model.safetensors")), "no f32 file fetched");
      assert(events.some((e) => e.kind === "done" && e.path === UNET16));

      // The stamps make the second run a pure lookup: no request, even with the server gone.
      await srv.close();
      events.length = 0;
      assertEquals(await fetchModel(opts()), dir);
      assertEquals(srv.log.length, selected.length);
      assertEquals(events.length, 0);

      // A touched file (new mtime) is re-hashed once, from disk, and re-stamped; still offline.
      const unet = join(dir, UNET16);
      await Deno.utime(unet, new Date(), new Date(Date.now() - 3_600_000));
      assert(!(await isVerified(unet, selected.find((f) => f.path === UNET16)!)));
      assertEquals(await fetchModel(opts()), dir);
      assert(events.some((e) => e.kind === "hashing" && e.path === UNET16));
      await assertComplete(dir, lock, "f16");
    });
  } finally {
    await srv.close();
  }
});

Deno.test("an interrupted download resumes with Range (next run, and by retry)", async () => {
  const files = await tinyFiles();
  const cut = new Map([[UNET16, 1]]);
  const srv = startServer(files, { cut });
  try {
    await withEnv(srv.base, async ({ cache, lock, opts }) => {
      const err = await assertRejects(() => fetchModel(opts()), "interrupted after");
      assert(err instanceof WeightsError && err.code === "interrupted", String(err));
      assert(err.message.includes(UNET16));
      const part = join(cache, "tiny-01234567", UNET16 + ".part");
      const have = (await Deno.stat(part)).size;
      const total = files.get(UNET16)!.data.length;
      assert(have > 0 && have < total, `part holds ${have} of ${total} bytes`);

      const dir = await fetchModel(opts());
      const gets = srv.gets(UNET16);
      assertEquals(gets.length, 2);
      assertEquals(gets[1].range, `bytes=${have}-`);
      assertEquals(gets[1].status, 206);
      await assertComplete(dir, lock, "f16");
    });

    // Within one call: retries resume the same way.
    srv.log.length = 0;
    cut.set(VAE16, 1);
    await withEnv(srv.base, async ({ lock, opts }) => {
      const dir = await fetchModel(opts({ retries: 2 }));
      const gets = srv.gets(VAE16);
      assertEquals(gets.length, 2);
      assert(gets[1].range?.startsWith("bytes=") && gets[1].status === 206);
      await assertComplete(dir, lock, "f16");
    });
  } finally {
    await srv.close();
  }
});

Deno.test("cancelling keeps the partial file, and the next fetch resumes it", async () => {
  const files = await tinyFiles();
  const srv = startServer(files, { chunkDelayMs: 20 });
  try {
    await withEnv(srv.base, async ({ cache, lock, opts }) => {
      const ac = new AbortController();
      const reason = new Error("cancelled by the test");
      const onProgress = (p: FetchProgress) => {
        if (p.path === UNET16 && p.kind === "progress" && p.bytesDone > 0) ac.abort(reason);
      };
      const err = await assertRejects(() => fetchModel(opts({ signal: ac.signal, onProgress })));
      assertEquals(err, reason);
      const part = join(cache, "tiny-01234567", UNET16 + ".part");
      const have = (await Deno.stat(part)).size;
      assert(have > 0, "partial bytes kept");
      const dir = await fetchModel(opts());
      assertEquals(srv.gets(UNET16).at(-1)?.range, `bytes=${have}-`);
      await assertComplete(dir, lock, "f16");
    });
  } finally {
    await srv.close();
  }
});

Deno.test("a server ignoring Range: the resumed fetch starts over and verifies", async () => {
  const files = await tinyFiles();
  const srv = startServer(files, { range: false, cut: new Map([[UNET16, 1]]) });
  try {
    await withEnv(srv.base, async ({ lock, opts }) => {
      await assertRejects(() => fetchModel(opts()), "interrupted");
      const dir = await fetchModel(opts());
      const gets = srv.gets(UNET16);
      assertEquals(gets.length, 2);
      assert(gets[1].range !== null, "the resume asked for a range");
      assertEquals(gets[1].status, 200);
      await assertComplete(dir, lock, "f16");
    });
  } finally {
    await srv.close();
  }
});

Deno.test("one flipped byte: rejected, deleted, message names the file and both hashes", async () => {
  const files = await tinyFiles();
  const srv = startServer(files, { flip: VAE16 });
  try {
    await withEnv(srv.base, async ({ cache, opts }) => {
      const bad = files.get(VAE16)!.data.slice();
      bad[bad.length >> 1] ^= 0x01;
      const err = await assertRejects(() => fetchModel(opts()), "failed verification");
      assert(err instanceof WeightsError && err.code === "mismatch");
      assert(err.message.includes(VAE16), err.message);
      assert(err.message.includes(files.get(VAE16)!.sha256), "expected hash named");
      assert(err.message.includes(await sha256Hex(bad)), "actual hash named");
      assert(!err.message.includes("\n"), "one line");
      const p = join(cache, "tiny-01234567", VAE16);
      await assertRejects(() => Deno.stat(p));
      await assertRejects(() => Deno.stat(p + ".part"));
      await assertRejects(() => Deno.stat(stampPath(p)));
    });
  } finally {
    await srv.close();
  }
});

Deno.test("a 404 is a clear error naming the file and status", async () => {
  const files = await tinyFiles();
  const srv = startServer(files);
  const missing: LockedFile = { path: "unet/missing.bin", bytes: 4, sha256: "0".repeat(64) };
  try {
    await withEnv(srv.base, async ({ opts }) => {
      const err = await assertRejects(() => fetchModel(opts({ retries: 3 })), "HTTP 404");
      assert(err instanceof WeightsError && err.code === "http");
      assert(err.message.includes("tiny/unet/missing.bin"), err.message);
      assertEquals(srv.gets("unet/missing.bin").length, 1, "a 404 is not retried");
    }, [missing]);
  } finally {
    await srv.close();
  }
});

Deno.test("redirects to another host:port are followed, Range included", async () => {
  const files = await tinyFiles();
  const target = startServer(files, { cut: new Map([[UNET16, 1]]) });
  const front = startServer(files, { redirectTo: target.base });
  try {
    await withEnv(front.base, async ({ lock, opts }) => {
      await assertRejects(() => fetchModel(opts()), "interrupted");
      const dir = await fetchModel(opts());
      await assertComplete(dir, lock, "f16");
      assert(front.log.length > 0 && front.log.every((r) => r.status === 302));
      assertEquals(target.log.length, front.log.length);
      const gets = target.gets(UNET16);
      assertEquals(gets.length, 2);
      assert(gets[1].range !== null && gets[1].status === 206, JSON.stringify(gets[1]));
    });
  } finally {
    await front.close();
    await target.close();
  }
});

Deno.test("concurrent fetches of one model, in-process and from a second process", async () => {
  const files = await tinyFiles();
  const srv = startServer(files, { chunkDelayMs: 5 });
  try {
    await withEnv(srv.base, async ({ lock, lockPath, cache, events, opts }) => {
      const selected = lockedModel(lock).files.filter(variantFilter("f16"));
      const [a, b] = await Promise.all([fetchModel(opts()), fetchModel(opts())]);
      assertEquals(a, b);
      await assertComplete(a, lock, "f16");
      assertEquals(events.filter((e) => e.kind === "waiting").length, 1, "the second one waited");
      for (const f of selected) assertEquals(srv.gets(f.path).length, 1, `${f.path} fetched once`);

      // A second process and this one, on a fresh cache: flock works across processes too.
      srv.log.length = 0;
      const cache2 = cache + "2";
      const fetchUrl = new URL("../src/weights/fetch.ts", import.meta.url).href;
      const lockUrl = new URL("../src/weights/lock.ts", import.meta.url).href;
      const code = `
        const { fetchModel } = await import(${JSON.stringify(fetchUrl)});
        const { loadLock } = await import(${JSON.stringify(lockUrl)});
        const lock = await loadLock(${JSON.stringify(lockPath)});
        console.log(await fetchModel({ lock, cacheDir: ${JSON.stringify(cache2)}, retries: 0,
          onProgress: () => {}, signal: AbortSignal.timeout(${TEST_TIMEOUT_MS}) }));`;
      const child = new Deno.Command(Deno.execPath(), {
        args: ["eval", code],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const mine = fetchModel(opts({ cacheDir: cache2 }));
      const [out, dir2] = await Promise.all([child, mine]);
      const dec = new TextDecoder();
      assert(out.success, `child failed: ${dec.decode(out.stderr)}`);
      assertEquals(dec.decode(out.stdout).trim(), dir2);
      await assertComplete(dir2, lock, "f16");
      for (const f of selected) assertEquals(srv.gets(f.path).length, 1, `${f.path} fetched once`);
    });
  } finally {
    await srv.close();
  }
});

/** Every path under `root` (relative, folders with a trailing /), sorted; [] when it is absent. */
async function tree(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string) => {
    for await (const e of Deno.readDir(join(root, rel))) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      out.push(e.isDirectory ? `${p}/` : p);
      if (e.isDirectory) await walk(p);
    }
  };
  try {
    await walk("");
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out.sort();
}

Deno.test("offline with nothing cached: one short line naming the host, and no debris", async () => {
  const files = await tinyFiles();
  const srv = startServer(files);
  const base = srv.base;
  await srv.close(); // nothing listens on that port any more
  await withEnv(base, async ({ cache, lock, opts }) => {
    const t0 = performance.now();
    const err = await assertRejects(() => fetchModel(opts({ retries: 3 })), "cannot reach");
    assert(performance.now() - t0 < 5000, "no retry delays when nothing answers");
    assert(err instanceof OfflineError && err.code === "offline");
    const host = new URL(base).host;
    assertEquals(err.host, host);
    const msg = err.message;
    assert(msg.startsWith(`cannot reach ${host} (connection refused) for tiny;`), msg);
    assert(!msg.includes("\n") && !msg.includes("http://"), `one line, no URLs: ${msg}`);
    const dir = join(cache, "tiny-01234567");
    assert(msg.includes(dir), `names the folder: ${msg}`);
    for (const way of ["--weights DIR", "--weights FILE.safetensors", "SD_CACHE", "`sd fetch`"]) {
      assert(msg.includes(way), `${way}: ${msg}`);
    }
    assert(!msg.includes("--model synth"), `no tokenizer cached, so no synth: ${msg}`);
    assertEquals(await tree(cache), [], "the cache folder was not there before and is not now");
    const model = lockedModel(lock);
    assertEquals(
      (await missingFiles(dir, model, model.files.filter(variantFilter("f16")))).length,
      model.files.filter(variantFilter("f16")).length,
    );
  });
});

Deno.test("offline: what was in the cache stays, what this run created goes, synth advised once the tokenizer is cached", async () => {
  const files = await tinyFiles();
  const srv = startServer(files);
  let up = true;
  try {
    await withEnv(srv.base, async ({ cache, opts }) => {
      // The tokenizer is fetched (verified and stamped) while the server is up.
      const tokenizer = (f: { path: string }) => f.path.startsWith("tokenizer/");
      await fetchModel(opts({ files: tokenizer }));
      await Deno.mkdir(join(cache, "tiny-01234567", "vae"));
      await Deno.writeTextFile(join(cache, "other.txt"), "not ours");
      const before = await tree(cache);
      assert(!before.includes("tiny-01234567/.fetch.lock"), `no lock file after a fetch`);
      await srv.close();
      up = false;
      const err = await assertRejects(() => fetchModel(opts()), "cannot reach");
      assert(err instanceof OfflineError);
      assert(err.message.includes(", use --model synth (test weights),"), err.message);
      assertEquals(await tree(cache), before, "the cache is as it was (the empty vae/ kept)");
    });
  } finally {
    if (up) await srv.close();
  }
});

Deno.test("a file put into the cache by hand is hashed once and kept, not downloaded", async () => {
  const files = await tinyFiles();
  const srv = startServer(files);
  try {
    await withEnv(srv.base, async ({ cache, lock, opts }) => {
      const dest = join(cache, "tiny-01234567", UNET16);
      await Deno.mkdir(join(cache, "tiny-01234567", "unet"), { recursive: true });
      await Deno.copyFile(join(TINY, UNET16), dest);
      const dir = await fetchModel(opts());
      assertEquals(srv.gets(UNET16).length, 0);
      await assertComplete(dir, lock, "f16");
    });
  } finally {
    await srv.close();
  }
});

/** tiny-sd's `unet/config.json` as an inpainting model's (9 input channels), inline in the lock. */
async function inlineInpaintConfig(): Promise<LockedFile> {
  const text = (await Deno.readTextFile(join(TINY, "unet/config.json")))
    .replace('"in_channels": 4,', '"in_channels": 9,');
  assert(text.includes('"in_channels": 9,'));
  const data = contentBytes(text);
  return {
    path: "unet/config.json",
    bytes: data.length,
    sha256: await sha256Hex(data),
    content: text,
  };
}

Deno.test("a config the lock carries inline is written and stamped without a request, and read as the model's", async () => {
  const files = await tinyFiles();
  const srv = startServer(files);
  const config = await inlineInpaintConfig();
  try {
    await withEnv(srv.base, async ({ cache, lock, events, opts }) => {
      // Something else already at its place (e.g. the repository's own file, copied by hand)
      // is replaced by the lock's text.
      const modelDir = join(cache, "tiny-01234567");
      await Deno.mkdir(join(modelDir, "unet"), { recursive: true });
      await Deno.writeTextFile(join(modelDir, "unet/config.json"), '{"in_channels": 4}');

      const dir = await fetchModel(opts());
      assertEquals(dir, modelDir);
      assertEquals(srv.gets("unet/config.json").length, 0, "the inline file is never requested");
      const selected = lockedModel(lock).files.filter(variantFilter("f16"));
      assertEquals(srv.log.length, selected.length - 1, "every other file once");
      assertEquals(await Deno.readTextFile(join(dir, "unet/config.json")), config.content);
      await assertComplete(dir, lock, "f16");
      assert(events.some((e) => e.kind === "done" && e.path === "unet/config.json"));
      await assertRejects(() => Deno.stat(join(dir, "unet/config.json.part")));
      // The pipeline reads the model's configs from this folder: the UNet takes 9 channels.
      assertEquals((await loadConfigs(dir)).unet.in_channels, 9);

      // Stamped like a download: the next run makes no request and writes nothing.
      await srv.close();
      events.length = 0;
      const before = (await Deno.stat(join(dir, "unet/config.json"))).mtime;
      assertEquals(await fetchModel(opts()), dir);
      assertEquals(events.length, 0);
      assertEquals((await Deno.stat(join(dir, "unet/config.json"))).mtime, before);
    }, [config]);
  } finally {
    await srv.close();
  }
});

Deno.test("a lock whose inline content disagrees with its sha256 is refused before any request", async () => {
  const files = await tinyFiles();
  const srv = startServer(files);
  const config = await inlineInpaintConfig();
  const dir = await Deno.makeTempDir({ prefix: "sd-fetch-" });
  try {
    const wrong = {
      ...config,
      content: config.content!.replace('"in_channels": 9', '"in_channels": 4'),
    };
    const lockPath = await writeTestLock(dir, srv.base, [wrong]);
    const index = (JSON.parse(await Deno.readTextFile(lockPath)).models.tiny.files as LockedFile[])
      .findIndex((f) => f.path === "unet/config.json");
    const err = await assertRejects(
      () => loadLock(lockPath),
      `${lockPath}: models.tiny.files[${index}].sha256: the content hashes to`,
    );
    assert(err instanceof LockError);
    assertEquals(srv.log.length, 0);
  } finally {
    await srv.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the CLIP tokenizer fixtures are byte-identical to the SD 1.5 lock entries", async () => {
  const sd15 = lockedModel(await loadLock(), "sd15");
  for (const name of ["vocab.json", "merges.txt"]) {
    const f = sd15.files.find((f) => f.path === `tokenizer/${name}`)!;
    const r = await verifyFile(fixture(`clip-tokenizer/${name}`), f.bytes, f.sha256);
    assertEquals(r, { ok: true, bytes: f.bytes, sha256: f.sha256 }, name);
  }
  const wrong = await verifyFile(
    fixture("clip-tokenizer/vocab.json"),
    1059962,
    "0".repeat(64),
  );
  assert(!wrong.ok && wrong.sha256 !== null);
});
