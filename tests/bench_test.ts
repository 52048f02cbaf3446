/** Smoke test of `deno task bench` on tiny-sd (the full SD 1.5 is far too slow on a CPU adapter). */

import { assert } from "../src/std/assert.ts";
import { hasGpu } from "./gpu.ts";
import { fixture } from "./fixtures.ts";

const ROOT = new URL("../", import.meta.url).pathname;

Deno.test({
  name:
    "bench: all nine configurations run (the last, chunked f16 accumulation, the default) on tiny-sd and report times and memory",
  ignore: !hasGpu,
  async fn() {
    const r = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        `${ROOT}scripts/bench.ts`,
        "--weights",
        fixture("tiny-sd"),
        "--size",
        "64",
        "--steps",
        "2",
        "--json",
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert(r.code === 0, new TextDecoder().decode(r.stderr));
    const out = JSON.parse(new TextDecoder().decode(r.stdout));
    assert(out.rows.length === 9, `${out.rows.length} rows`);
    for (const row of out.rows) {
      assert(row.totalMs > 0 && row.unetStepMs > 0 && row.vaeMs > 0, JSON.stringify(row));
      assert(row.peakGB > 0, "peak memory");
    }
  },
});
