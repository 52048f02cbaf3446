/**
 * Where images go (`src/cli/output.ts`): names from prompts, never-overwrite candidates, the
 * atomic writer, and `--out` resolution.
 */

import { assert, assertEquals, assertThrows } from "../src/std/assert.ts";
import { join } from "../src/std/path.ts";
import {
  candidate,
  imageName,
  MAX_SLUG,
  MAX_SLUG_BYTES,
  outFolder,
  plannedPath,
  resolveOut,
  SafeWriter,
  slugify,
  type WriteFile,
} from "../src/cli/output.ts";
import { DiskFullError, fileError, isDiskFull, UserError } from "../src/errors.ts";
import { describeError, EXIT_FAILED, exitCodeOf } from "../src/cli/errors.ts";
import { listDir, withTmp } from "./temp.ts";

Deno.test("slugify and never-overwrite names", () => {
  assertEquals(slugify("A Café at Night, oil on canvas!"), "a-café-at-night-oil-on-canvas");
  assertEquals(slugify(""), "image");
  assertEquals(slugify("!!!"), "image");
  assertEquals(slugify("42"), "42");
  const long = slugify("a photograph of an astronaut riding a horse on the moon, trending");
  assert(long.length <= 40 && !long.endsWith("-"), long);
  assertEquals(long, "a-photograph-of-an-astronaut-riding-a");
  assertEquals(slugify("一只猫坐在垫子上"), "一只猫坐在垫子上");
  assertEquals(slugify("夜の猫, ukiyo-e"), "夜の猫-ukiyo-e");
  assertEquals(slugify("Крупный план кошки"), "крупный-план-кошки");
  assertEquals(slugify("नमस्ते दुनिया"), "नमस्ते-दुनिया", "combining marks stay");
  assertEquals(slugify("🐱🐶✨"), "image", "emoji only");
  assertEquals(slugify("🐱 cat 🐶"), "cat");
  assertEquals(slugify("Cafe\u0301"), "café", "NFC");
  assertEquals(slugify("Cafe\u0301").normalize("NFC"), slugify("Cafe\u0301"));
  assertEquals(slugify('a<b>c:d"e/f\\g|h?i*j\u0000k\u202el. '), "a-b-c-d-e-f-g-h-i-j-k-l");
  assertEquals(imageName("", 18446744073709551615n), "image-18446744073709551615.png");
  for (const p of ["猫".repeat(60), "𠀀".repeat(60), "é".repeat(200), "abc ".repeat(100)]) {
    const slug = slugify(p);
    assert(new TextEncoder().encode(slug).length <= MAX_SLUG_BYTES, `${slug}: ≤ 100 bytes`);
    assert([...slug].length <= MAX_SLUG && slug.length > 0, slug);
    assert(!/[-. ]$/.test(slug) && !slug.includes("\uFFFD"), slug);
  }
  assertEquals(
    slugify("𠀀".repeat(60)),
    "𠀀".repeat(25),
    "4-byte letters: cut whole, at 100 bytes",
  );
  assertEquals(candidate("out/a-cat-1.png", 0), "out/a-cat-1.png");
  assertEquals(candidate("out/a-cat-1.png", 2), "out/a-cat-1-2.png");
});

Deno.test("plannedPath: a folder names by slug and seed, a file by seed for each image of a batch", () => {
  const dir = { kind: "dir", path: "out" } as const;
  const file = { kind: "file", path: join("out", "one.png") } as const;
  assertEquals(plannedPath(dir, "a cat", 7n), join("out", "a-cat-7.png"));
  assertEquals(plannedPath(dir, "a cat", 7n, true), join("out", "a-cat-7.png"));
  assertEquals(plannedPath(file, "a cat", 7n), join("out", "one.png"));
  assertEquals(plannedPath(file, "a cat", 7n, true), join("out", "one-7.png"));
  assertEquals(
    plannedPath(file, "a cat", 2n ** 64n - 1n, true),
    join("out", "one-18446744073709551615.png"),
  );
  assertEquals([outFolder(dir), outFolder(file)], ["out", "out"]);
});

/** What Deno throws when the disk is full: a plain Error with code ENOSPC (no Deno.errors class). */
function enospc(path: string): Error {
  return Object.assign(
    new Error(`No space left on device (os error 28): writefile '${path}'`),
    { code: "ENOSPC" },
  );
}

Deno.test('SafeWriter: a full disk is a plain "disk full" UserError; no temporary file stays', async () => {
  await withTmp(async (dir) => {
    // The failure as the runtime gives it, where Linux has /dev/full (whose writes all fail with
    // ENOSPC; a subprocess, as reading a device needs --allow-all).
    let real: unknown = enospc("/dev/full");
    if (Deno.build.os === "linux") {
      const probe = await new Deno.Command(Deno.execPath(), {
        args: [
          "eval",
          "try { await Deno.writeFile('/dev/full', new Uint8Array(1)) } catch (e) " +
          "{ console.log(JSON.stringify({ code: e.code, message: e.message, name: e.name })) }",
        ],
        stdout: "piped",
        stderr: "null",
      }).output();
      const got = JSON.parse(new TextDecoder().decode(probe.stdout));
      assertEquals([got.code, got.name], ["ENOSPC", "Error"], JSON.stringify(got));
      real = Object.assign(new Error(got.message), { code: got.code });
    }
    assert(isDiskFull(real), `${real}`);
    assert(
      isDiskFull(
        Object.assign(new Error("Disk quota exceeded (os error 122)"), { code: "EDQUOT" }),
      ),
    );
    assert(!isDiskFull(new Deno.errors.PermissionDenied("Permission denied")));
    assert(!isDiskFull(null));
    // Everywhere else a file is written (the weights cache, the profile file): the same words.
    const cached = fileError(real, "cannot write", "/cache/unet.part");
    assert(cached instanceof UserError, `${cached}`);
    assertEquals(
      cached.message,
      "disk full writing /cache/unet.part: free some space and run again",
    );

    // Half the bytes reach the temporary file, then the disk is full.
    const full: WriteFile = async (path, bytes, options) => {
      await Deno.writeFile(path, bytes.subarray(0, bytes.length >> 1), options);
      throw enospc(path);
    };
    const first = await new SafeWriter().writeNew(join(dir, "one-1.png"), new Uint8Array([1, 2]));
    const path = join(dir, "one-2.png");
    let e: unknown;
    try {
      await new SafeWriter(full).writeNew(path, new Uint8Array([1, 2, 3, 4]));
    } catch (err) {
      e = err;
    }
    assert(e instanceof DiskFullError && e instanceof UserError, `${e}`);
    assertEquals(e.kind, "failed");
    assertEquals(e.message, `disk full writing ${path}: free some space and choose another --out`);
    assertEquals(exitCodeOf(e), EXIT_FAILED);
    assertEquals(describeError(e), `sd: ${e.message}`, "not reported as unexpected");
    assertEquals(listDir(dir), ["one-1.png"], "the image written before stays; no temporary file");
    assertEquals([...Deno.readFileSync(first)], [1, 2]);
  });
});

Deno.test("SafeWriter: atomic, never overwrites, concurrent writers get distinct names", async () => {
  await withTmp(async (dir) => {
    const w = new SafeWriter();
    const path = join(dir, "a-cat-1.png");
    assertEquals(await w.writeNew(path, new Uint8Array([1])), path);
    assertEquals(await w.writeNew(path, new Uint8Array([2])), join(dir, "a-cat-1-1.png"));
    const many = await Promise.all(
      [3, 4, 5, 6].map((b) => new SafeWriter().writeNew(path, new Uint8Array([b]))),
    );
    assertEquals(new Set(many).size, 4);
    assertEquals(listDir(dir), [
      "a-cat-1-1.png",
      "a-cat-1-2.png",
      "a-cat-1-3.png",
      "a-cat-1-4.png",
      "a-cat-1-5.png",
      "a-cat-1.png",
    ]);
    assertEquals([...Deno.readFileSync(path)], [1], "the first file is untouched");
    const contents = listDir(dir).map((n) => Deno.readFileSync(join(dir, n))[0]).sort();
    assertEquals(contents, [1, 2, 3, 4, 5, 6]);
  });
});

Deno.test("resolveOut: directories, .png files, and unwritable places", async () => {
  await withTmp((dir) => {
    assertEquals(resolveOut(join(dir, "new", "sub")), {
      kind: "dir",
      path: join(dir, "new", "sub"),
    });
    assert(Deno.statSync(join(dir, "new", "sub")).isDirectory);
    assertEquals(resolveOut(join(dir, "x.png")), { kind: "file", path: join(dir, "x.png") });
    Deno.writeTextFileSync(join(dir, "blocker"), "");
    assertThrows(() => resolveOut(join(dir, "blocker", "imgs")), "cannot create the directory");
    assertThrows(() => resolveOut(join(dir, "blocker")), "is an existing file but not a .png");
    assertThrows(() => resolveOut(join(dir, "x.jpg")), "sd writes PNG only");
  });
});
