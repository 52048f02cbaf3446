/**
 * The command's inputs and outputs end to end (the real program as a subprocess, on the tiny
 * fixture model): seeds up to 2^64−1 and their names, Unicode file names, a batch line's `"out"`
 * kept inside the output folder, over-long prompts, a full disk, and a run without
 * `XDG_RUNTIME_DIR`. The parts are tested in `args_test.ts`, `batch_test.ts`, `output_test.ts`
 * and `runtime_dir_test.ts`; the bad options (exit 2) in `cli_test.ts` through `bad_inputs.ts`.
 */

import { assert, assertEquals } from "../src/std/assert.ts";
import { join } from "../src/std/path.ts";
import { TINY_ARGS } from "./bad_inputs.ts";
import { hasGpu } from "./gpu.ts";
import { listDir, withTmp } from "./temp.ts";
import { oneErrorLine, pngText, sd } from "./sd_command.ts";

Deno.test({
  name: "sd: seeds up to 2^64−1 exactly, -1 random; -o FILE --batch 2 names each image by seed",
  ignore: !hasGpu,
  fn: async () => {
    await withTmp(async (dir) => {
      const r = await sd(dir, [
        "a cat",
        ...TINY_ARGS,
        "--seed",
        "18446744073709551614",
        "--batch",
        "2",
        "-o",
        "one.png",
        "--json",
      ]);
      assertEquals(r.code, 0, r.stderr);
      // The exact seed, as a JSON number (JSON.parse would round it).
      const lines = r.stdout.trimEnd().split("\n");
      assertEquals(lines.length, 2, r.stdout);
      for (const [i, seed] of ["18446744073709551614", "18446744073709551615"].entries()) {
        const start = `{"path":"one-${seed}.png","seed":${seed},"prompt":"a cat","ms":`;
        assert(lines[i].startsWith(start) && /"ms":\d+\}$/.test(lines[i]), lines[i]);
      }
      assertEquals(listDir(dir), ["one-18446744073709551614.png", "one-18446744073709551615.png"]);
      const params = pngText(Deno.readFileSync(join(dir, "one-18446744073709551615.png")))
        .parameters;
      assert(params.includes("Sampler: PLMS, CFG scale: 7.5, Seed: 18446744073709551615,"), params);

      const again = await sd(dir, ["夜の猫, Café", ...TINY_ARGS, "--seed", "-1", "-o", "cats"]);
      assertEquals(again.code, 0, again.stderr);
      const m = /^cats\/夜の猫-café-(\d+)\.png\n$/.exec(again.stdout);
      assert(m !== null, again.stdout);
      assert(BigInt(m[1]) < 2n ** 32n, "a random seed, < 2^32 as A1111's");
      assertEquals(listDir(join(dir, "cats")), [`夜の猫-café-${m[1]}.png`]);
    });
  },
});

Deno.test({
  name: 'sd - : an "out" leaving the output folder is refused by line number; --allow-any-out',
  ignore: !hasGpu,
  fn: async () => {
    await withTmp(async (dir) => {
      const work = join(dir, "work");
      Deno.mkdirSync(work);
      const abs = join(dir, "abs.png");
      const lines = [
        '{"prompt": "x", "out": "../escape.png"}',
        JSON.stringify({ prompt: "y", out: abs }),
        "a dog ".repeat(400_000), // 2.4 MB: refused at once, not tokenized, not echoed
        '{"prompt": "z", "steps": "2"}',
      ];
      const refused = await sd(work, ["-", ...TINY_ARGS, "-o", "out"], {
        stdin: lines.join("\n") + "\n",
      });
      assertEquals(refused.code, 1, refused.stderr);
      assertEquals(refused.stdout, "");
      const err = refused.stderr.trimEnd().split("\n");
      assertEquals(err.slice(0, 2), [
        'sd: line 1: "out": "../escape.png" leaves the output folder; give a path inside it (no "..", not absolute), or run sd with --allow-any-out',
        `sd: line 2: "out": ${
          JSON.stringify(abs)
        } leaves the output folder; give a path inside it (no "..", not absolute), or run sd with --allow-any-out`,
      ]);
      assert(
        err[2].startsWith("sd: line 3: the prompt is 2399999 characters long") &&
          err[2].length < 200,
        err[2].slice(0, 300),
      );
      assert(
        err[3].startsWith('sd: line 4: "steps": "2" is a string; write a JSON number'),
        err[3],
      );
      assertEquals(err.length, 4, refused.stderr.slice(0, 2000));
      assertEquals(listDir(dir), ["work"]);
      assertEquals(listDir(work), ["out"]);
      assertEquals(listDir(join(work, "out")), []);

      const allowed = await sd(work, ["-", ...TINY_ARGS, "-o", "out", "--allow-any-out", "-q"], {
        stdin: '{"prompt": "x", "out": "../escape.png", "seed": 1}\n' +
          '{"prompt": "y", "out": "cats", "seed": 2}\n',
      });
      assertEquals(allowed.code, 0, allowed.stderr);
      assertEquals(
        allowed.stdout.trimEnd().split("\n").map((l) => JSON.parse(l).path),
        ["escape.png", join("out", "cats", "y-2.png")],
        "out is relative to the output folder",
      );
      assertEquals(listDir(work), ["escape.png", "out"]);
    });
  },
});

Deno.test({
  name: "sd: a full disk is one plain line, exit 1; the images written stay, no temporary file",
  ignore: !hasGpu,
  fn: async () => {
    await withTmp(async (dir) => {
      const env = (images: number) => ({ SD_TEST_DISK_IMAGES: String(images) });
      const args = ["a cat", ...TINY_ARGS, "--seed", "5", "--batch", "2", "-o", "one.png", "-q"];
      const r = await sd(dir, args, { script: "tests/disk_full_sd.ts", env: env(1) });
      assertEquals(r.code, 1, r.stderr);
      assertEquals(r.stdout, "one-5.png\n");
      oneErrorLine(r, "disk full writing one-6.png: free some space and choose another --out");
      assert(r.stderr.startsWith("sd: disk full writing "), r.stderr);
      assert(!r.stderr.includes("unexpected"), r.stderr);
      assertEquals(listDir(dir), ["one-5.png"]);

      // Jobs from stdin: the batch stops at the full disk (the next lines would fail alike).
      const jobs = await sd(dir, ["-", ...TINY_ARGS, "-o", "jobs"], {
        script: "tests/disk_full_sd.ts",
        env: env(0),
        stdin: '{"prompt": "a", "seed": 1}\n{"prompt": "b", "seed": 2}\n',
      });
      assertEquals([jobs.code, jobs.stdout], [1, ""], jobs.stderr);
      oneErrorLine(jobs, `disk full writing ${join("jobs", "a-1.png")}`);
      assertEquals(listDir(join(dir, "jobs")), []);
    });
  },
});

Deno.test({
  name: "sd without XDG_RUNTIME_DIR: every stderr line is sd's own; the private dir is removed",
  ignore: !hasGpu || Deno.build.os !== "linux",
  fn: async () => {
    await withTmp(async (dir) => {
      const tmp = join(dir, "tmp");
      Deno.mkdirSync(tmp);
      const r = await sd(dir, ["a cat", ...TINY_ARGS, "--seed", "3"], {
        env: { TMPDIR: tmp },
        unset: ["XDG_RUNTIME_DIR"],
      });
      assertEquals(r.code, 0, r.stderr);
      assertEquals(r.stdout, "a-cat-3.png\n");
      const lines = r.stderr.trimEnd().split("\n");
      for (const l of lines) assert(l.startsWith("sd: "), `a line of sd's own: ${l}`);
      assert(!r.stderr.includes("XDG_RUNTIME_DIR"), r.stderr);
      assertEquals(listDir(tmp), [], "the private runtime dir is gone");
    });
  },
});
