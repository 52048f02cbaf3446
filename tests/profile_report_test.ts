/**
 * The `--profile` report (`src/cli/profile_report.ts`) and the durations and rates of the
 * progress line (`src/cli/progress.ts`).
 */

import { assert, assertEquals } from "../src/std/assert.ts";
import { buildProfile, formatProfileTable, StageLog } from "../src/cli/profile_report.ts";
import { formatDuration, formatRate } from "../src/cli/progress.ts";

Deno.test("profile report: shares, achieved rates, stage stats; a note without timestamps", () => {
  const stages = new StageLog();
  for (const ms of [100, 110, 90]) stages.add("unet_step", ms);
  stages.add("vae_decode", 50);
  const base = {
    device: "test adapter",
    precision: "f16",
    images: 1,
    stages,
    generateMs: 400,
    compiles: [
      { name: "groupnorm_fused_f16", ms: 4 },
      { name: "matmul_tiled_f16", ms: 8 },
    ],
    loadMs: 100,
    peakBytes: 3 * 2 ** 30,
  };
  const r = buildProfile({
    ...base,
    timestamps: true,
    kernels: [
      { name: "matmul_tiled_f16", calls: 10, ms: 300, flops: 3e12, bytes: 0 },
      { name: "groupnorm_fused_f16", calls: 5, ms: 100, flops: 0, bytes: 2e10 },
    ],
  });
  assertEquals(r.kernels.map((k) => [k.sharePct, k.tflops, k.gbps]), [[75, 10, null], [
    25,
    null,
    200,
  ]]);
  assertEquals(r.stages[0], {
    name: "unet_step",
    calls: 3,
    totalMs: 300,
    meanMs: 100,
    minMs: 90,
    maxMs: 110,
    ms: [100, 110, 90],
  });
  assertEquals([r.compileMs, r.pipelines], [12, 2]);
  assertEquals(r.slowestCompiles.map((c) => c.name), ["matmul_tiled_f16", "groupnorm_fused_f16"]);
  const table = formatProfileTable(r);
  for (
    const s of [
      "pipeline compile: 12.0 ms (2 pipelines; slowest: matmul_tiled_f16 8.00, groupnorm",
      "matmul_tiled_f16",
      "75.0%",
      "10.00 TFLOP/s",
      "200.0 GB/s",
      "unet_step",
      "3.00 GiB",
    ]
  ) {
    assert(table.includes(s), `${s} in\n${table}`);
  }
  const none = formatProfileTable(buildProfile({ ...base, timestamps: false, kernels: [] }));
  assert(none.includes("no timestamp-query"), none);
  assert(none.includes("vae_decode"), none);
  assertEquals(formatDuration(65), "1m05s");
  assertEquals(formatRate(0.5), "2.00 s/it");
  assertEquals(formatRate(4), "4.00 it/s");
});
