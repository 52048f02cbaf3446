/**
 * The whole text-to-image pipeline through the `sd` command itself (a subprocess in batch mode,
 * PNGs read back) against every `pipeline_cases` image of tiny-sd-golden: f32 within max abs
 * 0.02 + 1/255 (8-bit rounding), f16 weights and compute within mean abs 0.01.
 */

import { assert } from "../src/std/assert.ts";
import { SafeTensorsFile } from "../src/weights/safetensors.ts";
import { schedulerFromIdentifier } from "../scheduler/mod.ts";
import { decodePng, imageError, withinImageTolerance } from "./image_compare.ts";
import { hasGpu, testGpu } from "./gpu.ts";
import { fixture } from "./fixtures.ts";

const ROOT = new URL("../", import.meta.url).pathname;

/**
 * The model folder `base` with the scheduler config the goldens were made with (it keeps
 * diffusers' `_use_default_values`: made in memory from SD 1.5's file, whose Euler runs
 * "linspace"), the other components linked: a folder in `tmp`.
 */
async function withSchedulerConfig(base: string, config: unknown, tmp: string): Promise<string> {
  const model = `${tmp}/model`;
  await Deno.mkdir(`${model}/scheduler`, { recursive: true });
  for (const entry of Deno.readDirSync(base)) {
    if (entry.name !== "scheduler") {
      await Deno.symlink(`${base}/${entry.name}`, `${model}/${entry.name}`);
    }
  }
  await Deno.writeTextFile(`${model}/scheduler/scheduler_config.json`, JSON.stringify(config));
  return model;
}

interface Case {
  key: string;
  scheduler: string;
  height: number;
  width: number;
  steps: number;
  guidance_scale: number;
  seed_latents: number;
}

for (const precision of ["f32", "f16"] as const) {
  Deno.test({
    name:
      `pipeline: all tiny-sd pipeline_cases through \`sd\` (batch, ${precision}) vs golden images`,
    ignore: !hasGpu,
    async fn() {
      const gpu = (await testGpu())!;
      if (precision === "f16" && !gpu.hasF16) return;
      const meta = JSON.parse(await Deno.readTextFile(fixture("tiny-sd-golden.json")));
      const cases: Case[] = meta.pipeline_cases;
      const dir = await Deno.makeTempDir();
      try {
        const model = await withSchedulerConfig(fixture("tiny-sd"), meta.configs.scheduler, dir);
        const jobs = cases.map((c, i) =>
          JSON.stringify({
            prompt: meta.prompt,
            negative: meta.negative_prompt,
            seed: c.seed_latents,
            steps: c.steps,
            guidance: c.guidance_scale,
            width: c.width,
            height: c.height,
            scheduler: schedulerFromIdentifier(c.scheduler),
            out: `case-${i}.png`,
          })
        ).join("\n") + "\n";
        const cmd = new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "-A",
            `${ROOT}main.ts`,
            "-",
            "--weights",
            model,
            "--precision",
            precision,
            "--quiet",
            "-o",
            dir,
          ],
          stdin: "piped",
          stdout: "piped",
          stderr: "piped",
        });
        const child = cmd.spawn();
        const writer = child.stdin.getWriter();
        await writer.write(new TextEncoder().encode(jobs));
        await writer.close();
        const out = await child.output();
        const stderr = new TextDecoder().decode(out.stderr);
        assert(out.code === 0, `sd exited ${out.code}: ${stderr}`);
        const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
        assert(
          lines.length === cases.length,
          `${lines.length} JSON lines for ${cases.length} jobs`,
        );

        const g = await SafeTensorsFile.open(fixture("tiny-sd-golden.safetensors"));
        const report: string[] = [];
        const failures: string[] = [];
        for (const [i, c] of cases.entries()) {
          const line = JSON.parse(lines[i]);
          const decoded = decodePng(await Deno.readFile(line.path));
          assert(decoded.width === c.width && decoded.height === c.height, `${c.key}: size`);
          const e = imageError(decoded, await g.readF32(`${c.key}.image`));
          report.push(`${c.key}: max ${e.max.toFixed(4)} mean ${e.mean.toExponential(2)}`);
          if (!withinImageTolerance(precision, e)) failures.push(report.at(-1)!);
        }
        g.close();
        console.error(`${precision}:\n  ${report.join("\n  ")}`);
        assert(failures.length === 0, failures.join("\n"));
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}
