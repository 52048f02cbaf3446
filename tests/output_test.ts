/**
 * Where images go (`src/cli/output.ts`): names from prompts, never-overwrite candidates, the
 * atomic writer, and `--out` resolution.
 */

import { assert, assertEquals, assertThrows } from "../src/std/assert.ts";
import { join } from "../src/std/path.ts";
import { candidate, resolveOut, SafeWriter, slugify } from "../src/cli/output.ts";
import { listDir, withTmp } from "./temp.ts";

Deno.test("slugify and never-overwrite names", () => {
  assertEquals(slugify("A Café at Night, oil on canvas!"), "a-cafe-at-night-oil-on-canvas");
  assertEquals(slugify(""), "image");
  assertEquals(slugify("!!!"), "image");
  assertEquals(slugify("42"), "42");
  const long = slugify("a photograph of an astronaut riding a horse on the moon, trending");
  assert(long.length <= 40 && !long.endsWith("-"), long);
  assertEquals(long, "a-photograph-of-an-astronaut-riding-a");
  assertEquals(candidate("out/a-cat-1.png", 0), "out/a-cat-1.png");
  assertEquals(candidate("out/a-cat-1.png", 2), "out/a-cat-1-2.png");
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
