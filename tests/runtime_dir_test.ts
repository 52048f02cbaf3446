/**
 * The private `XDG_RUNTIME_DIR` (`src/cli/runtime_dir.ts`): made only when the variable is unset
 * or empty, mode 0700, reused, removed. (A run without the variable, end to end, is in
 * `inputs_cli_test.ts`.)
 */

import { assert, assertEquals } from "../src/std/assert.ts";
import { ensureRuntimeDir, removeRuntimeDir } from "../src/cli/runtime_dir.ts";

Deno.test("ensureRuntimeDir: a private folder when XDG_RUNTIME_DIR is unset, none when set", () => {
  const before = Deno.env.get("XDG_RUNTIME_DIR");
  try {
    Deno.env.set("XDG_RUNTIME_DIR", "/somewhere");
    assertEquals(ensureRuntimeDir(), null, "a set variable is left alone");
    assertEquals(Deno.env.get("XDG_RUNTIME_DIR"), "/somewhere");

    for (
      const unset of [
        () => Deno.env.delete("XDG_RUNTIME_DIR"),
        () => Deno.env.set("XDG_RUNTIME_DIR", ""),
      ]
    ) {
      unset();
      const dir = ensureRuntimeDir();
      assert(dir !== null, "made one");
      assertEquals(Deno.env.get("XDG_RUNTIME_DIR"), dir);
      assertEquals(ensureRuntimeDir(), dir, "reused");
      const info = Deno.statSync(dir);
      assert(info.isDirectory);
      if (Deno.build.os !== "windows") assertEquals(info.mode! & 0o777, 0o700);
      removeRuntimeDir();
      let gone = false;
      try {
        Deno.statSync(dir);
      } catch (e) {
        gone = e instanceof Deno.errors.NotFound;
      }
      assert(gone, `${dir} removed`);
    }
  } finally {
    if (before === undefined) Deno.env.delete("XDG_RUNTIME_DIR");
    else Deno.env.set("XDG_RUNTIME_DIR", before);
  }
});
