/**
 * The fixtures themselves: every file equals the reference's (sha256 of `manifest.json`), the
 * generator makes the weights from the committed files alone and refuses a file that differs, and
 * a missing fixture is one line naming it.
 */

import { assert, assertEquals, assertRejects, assertThrows } from "../src/std/assert.ts";
import { join } from "../src/std/path.ts";
import { sha256File } from "../src/weights/sha256.ts";
import { fixture, FixtureError, FIXTURES } from "./fixtures.ts";
import { ensureGenerated, MANIFEST, missingGenerated } from "./fixtures/generate.ts";

Deno.test("fixtures: every file matches the reference's sha256 and size", async () => {
  const files = { ...MANIFEST.copied, ...MANIFEST.generated };
  for (const [rel, want] of Object.entries(files)) {
    const path = fixture(rel);
    assertEquals(Deno.statSync(path).size, want.bytes, rel);
    assertEquals(await sha256File(path), want.sha256, rel);
  }
  assert(Object.keys(MANIFEST.generated).length > 0 && Object.keys(MANIFEST.copied).length > 0);
});

Deno.test("fixtures: a missing fixture is one line naming it and what to do", () => {
  const e = assertThrows(() => fixture("no-such/fixture.json"));
  assert(e instanceof FixtureError, String(e));
  assert(e.message.startsWith("missing test fixture no-such/fixture.json"), e.message);
  assert(e.message.includes(FIXTURES), e.message);
  assert(!e.message.includes("\n") && !e.stack!.includes("\n"), e.stack);
});

/** A folder holding the committed fixture files (what a fresh clone has), nothing generated. */
async function committedCopy(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "fixtures_test_" });
  for (const rel of Object.keys(MANIFEST.copied)) {
    await Deno.mkdir(join(dir, rel, ".."), { recursive: true });
    await Deno.copyFile(fixture(rel), join(dir, rel));
  }
  return dir;
}

Deno.test("fixtures: the generator makes every weight file from the committed files alone", async () => {
  const dir = await committedCopy();
  try {
    assertEquals(missingGenerated(dir).sort(), Object.keys(MANIFEST.generated).sort());
    assertEquals((await ensureGenerated(dir)).sort(), Object.keys(MANIFEST.generated).sort());
    assertEquals(missingGenerated(dir), []);
    assertEquals([...Deno.readDirSync(dir)].filter((e) => e.name.startsWith(".")), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fixtures: a generated file that differs from the reference is refused", async () => {
  const dir = await committedCopy();
  try {
    const config = join(dir, "tiny-sd", "unet", "config.json");
    const unet = JSON.parse(await Deno.readTextFile(config));
    await Deno.writeTextFile(config, JSON.stringify({ ...unet, cross_attention_dim: 16 }));
    await assertRejects(() => ensureGenerated(dir), "differs from the reference");
    assertEquals(missingGenerated(dir).length, Object.keys(MANIFEST.generated).length);
    assertEquals([...Deno.readDirSync(dir)].filter((e) => e.name.startsWith(".")), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
