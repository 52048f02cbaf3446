/**
 * The model folder's lock (`src/weights/folder_lock.ts`): the holder removes the lock file when
 * it releases, and a waiter that then holds the lock of the removed file takes the one at the
 * path instead — so two holders never hold "the" lock at once, and no lock file is left.
 */

import { assert, assertEquals } from "../src/std/assert.ts";
import { join } from "../src/std/path.ts";
import { LOCK_FILE, lockFolder } from "../src/weights/folder_lock.ts";
import { withTmp } from "./temp.ts";

Deno.test({
  name: "folder lock: a waiter takes over after the file is removed; none is left",
  ignore: Deno.build.os === "windows", // the lock file is kept there (see folder_lock.ts)
  fn: async () => {
    await withTmp(async (dir) => {
      const folder = join(dir, "model");
      const path = join(folder, LOCK_FILE);
      const first = await lockFolder(folder, () => {});
      let waited = 0;
      const second = lockFolder(folder, () => waited++);
      await new Promise((r) => setTimeout(r, 300));
      assertEquals(waited, 1, "the second caller waits");
      await first.release();
      const held = await second;
      // The second holder locks the file now at the path: a third open of it cannot lock it.
      const probe = await Deno.open(path, { read: true, write: true });
      try {
        assert(!(await probe.tryLock(true)), "the lock at the path is held");
      } finally {
        probe.close();
      }
      await held.release();
      assertEquals([...Deno.readDirSync(folder)], [], "no lock file left");
    });
  },
});
