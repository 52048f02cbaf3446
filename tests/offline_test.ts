/**
 * The first run without the network, as a user sees it (the `sd` command as a subprocess): the
 * weights lock points at 127.0.0.1 on a port where nothing listens. One short line naming the
 * host and the ways out (no URL list, no circular `--model synth` advice), exit 1, and the cache
 * folder left exactly as it was. Also `sd fetch --model synth` (only the tokenizer, from a local
 * server) and the synth advice it then makes possible.
 */

import { assert, assertEquals } from "../src/std/assert.ts";
import { join } from "../src/std/path.ts";
import { fixture } from "./fixtures.ts";
import { oneErrorLine, type Result, sd } from "./sd_command.ts";
import { withTmp } from "./temp.ts";
import { serveTiny, writeTinyLock } from "./tiny_lock.ts";

/** A base URL on 127.0.0.1 where nothing listens (a port just closed). */
async function closedBase(): Promise<string> {
  const srv = serveTiny();
  await srv.close();
  return srv.base;
}

/** Every path under `root` (relative; folders end in /), sorted; [] when it does not exist. */
function tree(root: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const e of Deno.readDirSync(join(root, rel))) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      out.push(e.isDirectory ? `${p}/` : p);
      if (e.isDirectory) walk(p);
    }
  };
  try {
    walk("");
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out.sort();
}

/** stderr's line, without the `sd: ` prefix. */
function message(r: Result): string {
  return r.stderr.trim().replace(/^sd: /, "");
}

Deno.test("offline first run: one short line naming the host and the ways out, exit 1, no debris", async () => {
  await withTmp(async (dir) => {
    const base = await closedBase();
    const host = new URL(base).host;
    const lock = await writeTinyLock(dir, base);
    const cache = join(dir, ".cache");

    // Nothing cached yet, the cache folder does not even exist.
    const r = await sd(dir, ["a cat", "--lock", lock]);
    assertEquals(r.code, 1, r.stderr);
    oneErrorLine(r, "");
    const msg = message(r);
    assert(msg.startsWith(`cannot reach ${host} (connection refused) for tiny; `), msg);
    for (const way of ["--weights DIR", "--weights FILE.safetensors", "SD_CACHE", "`sd fetch`"]) {
      assert(msg.includes(way), `"${way}" in: ${msg}`);
    }
    assert(msg.includes(join(cache, "tiny-01234567")), `names the cache folder: ${msg}`);
    assert(!msg.includes("http://") && !msg.includes("{"), `no URL list: ${msg}`);
    assert(!msg.includes("--model synth"), `synth needs the tokenizer, not cached: ${msg}`);
    assert(msg.length < 300, `short: ${msg.length} characters`);
    assertEquals(tree(cache), [], "no cache folder, lock file or empty folders left");

    // A cache folder with other things in it stays exactly as it was.
    await Deno.mkdir(join(cache, "tiny-01234567", "vae"), { recursive: true });
    await Deno.writeTextFile(join(cache, "notes.txt"), "mine");
    const before = tree(cache);
    const again = await sd(dir, ["a cat", "--lock", lock]);
    assertEquals(again.code, 1, again.stderr);
    assert(message(again).startsWith(`cannot reach ${host} `), again.stderr);
    assertEquals(tree(cache), before);

    // --model synth needs the tokenizer from the network too: no advice to use synth.
    const synth = await sd(dir, ["a cat", "--model", "synth", "--lock", lock]);
    assertEquals(synth.code, 1, synth.stderr);
    oneErrorLine(synth, "");
    const smsg = message(synth);
    assert(
      smsg.startsWith(
        `cannot reach ${host} (connection refused) for the CLIP tokenizer that --model synth needs; pass --tokenizer DIR`,
      ),
      smsg,
    );
    assert(smsg.includes("`sd fetch --model synth` once online"), smsg);
    assertEquals(tree(cache), before);

    // A single file carries no tokenizer: the same, naming the file and --config DIR.
    const file = fixture("tiny-sd-single.fp16.safetensors");
    const single = await sd(dir, ["a cat", "--weights", file, "--lock", lock]);
    assertEquals(single.code, 1, single.stderr);
    oneErrorLine(single, "or --config DIR with tokenizer/");
    assert(
      message(single).startsWith(
        `cannot reach ${host} (connection refused) for the CLIP tokenizer that tiny-sd-single.fp16.safetensors needs (a single file has none); `,
      ),
      single.stderr,
    );
    assertEquals(tree(cache), before);
  });
});

Deno.test("sd fetch --model synth fetches only the tokenizer, verified; then offline runs advise synth", async () => {
  await withTmp(async (dir) => {
    const srv = serveTiny();
    let up = true;
    try {
      const lock = await writeTinyLock(dir, srv.base);
      const r = await sd(dir, ["fetch", "--model", "synth", "--lock", lock]);
      assertEquals(r.code, 0, r.stderr);
      const tokenizer = join(dir, ".cache", "tiny-01234567", "tokenizer");
      assertEquals(r.stdout, `${tokenizer}\n`);
      assert(
        r.stderr.startsWith("sd: --model synth needs only the CLIP tokenizer: cached and verified"),
        r.stderr,
      );
      assertEquals(srv.served.filter((p) => !p.startsWith("tokenizer/")), [], "tokenizer only");
      const files = tree(join(dir, ".cache"));
      for (const f of ["vocab.json", "merges.txt"]) {
        assert(files.includes(`tiny-01234567/tokenizer/${f}.verified`), files.join(" "));
      }
      assert(!files.includes("tiny-01234567/.fetch.lock"), files.join(" "));

      await srv.close();
      up = false;
      const before = tree(join(dir, ".cache"));
      const off = await sd(dir, ["a cat", "--lock", lock]);
      assertEquals(off.code, 1, off.stderr);
      assert(message(off).includes(", use --model synth (test weights), "), off.stderr);
      assertEquals(tree(join(dir, ".cache")), before);
    } finally {
      if (up) await srv.close();
    }
  });
});
