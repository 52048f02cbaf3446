/**
 * The `sd` command as users run it: the real program as a subprocess (`deno run -A main.ts …`)
 * in a temporary directory, on the tiny fixture model at 64×64 and 2 steps; plus the CLI's pure
 * parts (option parsing, batch lines, names, the never-overwrite writer, parameters text, profile
 * report) tested directly.
 */

import { assert, assertEquals, assertThrows } from "../src/std/assert.ts";
import { dirname, fromFileUrl, join } from "../src/std/path.ts";
import { parseArgs } from "../src/std/args.ts";
import { createHash } from "node:crypto";
import { parseCli } from "../src/cli/args.ts";
import { parseJobLine, readLines } from "../src/cli/batch.ts";
import { candidate, resolveOut, SafeWriter, slugify } from "../src/cli/output.ts";
import { formatParameters } from "../src/cli/parameters.ts";
import { buildProfile, formatProfileTable, StageLog } from "../src/cli/profile_report.ts";
import { formatDuration, formatRate } from "../src/cli/progress.ts";
import { VERSION } from "../src/cli/version.ts";
import { hasGpu } from "./gpu.ts";
import {
  childEnv,
  listDir,
  MAIN,
  oneErrorLine,
  pngText,
  REPO,
  type Result,
  sd,
  withTmp,
} from "./cli.ts";

const FIXTURES = fromFileUrl(new URL("../../shared/fixtures/", import.meta.url));
const TINY = join(FIXTURES, "tiny-sd");
const TINY_ARGS = ["--weights", TINY, "--width", "64", "--height", "64", "--steps", "2"];

function sha256Hex(path: string): string {
  return createHash("sha256").update(Deno.readFileSync(path)).digest("hex");
}

// ---------------------------------------------------------------------------------------------
// Pure parts

Deno.test("parseArgs wrapper: strings stay strings, -- and negative values, optional values", () => {
  const spec = { string: ["seed"], boolean: ["quiet"], optionalValue: ["profile"] };
  assertEquals(parseArgs(["42"], spec).positionals, ["42"]);
  assertEquals(parseArgs(["--seed", "-1"], spec).values.seed, "-1");
  assertEquals(parseArgs(["--profile", "a cat"], spec), {
    values: { profile: true },
    positionals: ["a cat"],
    afterDashDash: 1,
  });
  assertEquals(parseArgs(["--profile=json"], spec).values.profile, "json");
  assertEquals(parseArgs(["a", "--", "--quiet", "b"], spec), {
    values: {},
    positionals: ["a", "--quiet", "b"],
    afterDashDash: 1,
  });
  assertThrows(() => parseArgs(["--nope"], spec), "unknown option --nope");
  assertThrows(() => parseArgs(["--seed"], spec), "--seed needs a value");
  assertThrows(() => parseArgs(["--quiet=1"], spec), "--quiet takes no value");
});

Deno.test("parseCli: prompts, subcommands, stdin jobs and option checks", () => {
  const tty = { stdinIsTerminal: true };
  const pipe = { stdinIsTerminal: false };
  const a = parseCli(["42"], tty);
  assertEquals([a.command, a.prompt], ["generate", "42"]);
  assertEquals(a.job, {
    negative: "",
    seed: null,
    steps: 20,
    guidance: 7.5,
    width: null,
    height: null,
    scheduler: "pndm",
    out: null,
    initImage: null,
    mask: null,
    strength: null,
  });
  assertEquals(parseCli(["a", "red", "fox"], tty).prompt, "a red fox");
  assertEquals(parseCli([""], tty).prompt, "");
  assertEquals(parseCli(["--", "tokens"], tty).command, "generate");
  assertEquals(parseCli(["--", "tokens"], tty).prompt, "tokens");
  const t = parseCli(["tokens", "a cat"], tty);
  assertEquals([t.command, t.prompt], ["tokens", "a cat"]);
  assertEquals(parseCli(["fetch", "--model", "sd14"], tty).model, "sd14");
  assertEquals(parseCli(["-"], tty).prompt, null);
  assertEquals(parseCli([], pipe).prompt, null);
  assertThrows(() => parseCli([], tty), "no prompt");
  assertThrows(() => parseCli(["-", "a cat"], tty), "takes no prompt");
  assertEquals(parseCli(["x", "--profile"], tty).profile, { format: "table" });
  assertEquals(parseCli(["x", "--profile=json:p.json"], tty).profile, {
    format: "json",
    file: "p.json",
  });
  const b = parseCli(["x", "--seed", "7", "--batch", "3", "--attention", "naive", "-q"], tty);
  assertEquals([b.job.seed, b.batch, b.variants, b.quiet], [7, 3, { attention: "naive" }, true]);
  for (
    const [args, msg] of [
      [["x", "--stepz", "3"], "did you mean --steps?"],
      [["x", "--steps", "0"], "--steps 0 is out of range"],
      [["x", "--steps", "2.5"], "--steps 2.5 is out of range"],
      [["x", "--steps", "many"], "is not a number"],
      [["x", "--guidance", "-1"], "--guidance -1 is negative"],
      [["x", "--width", "100"], "--width 100 is not a multiple of 8"],
      [["x", "--height", "4096"], "--height 4096 is out of range"],
      [["x", "--width", "56"], "--width 56 is out of range"],
      [["x", "--seed", "-1"], "--seed -1 is not a valid seed"],
      [["x", "--scheduler", "plms"], 'unknown scheduler "plms"'],
      [["x", "--precision", "f8"], '--precision "f8" is not known'],
      [["x", "--model", "synth", "--weights", "w"], "exclude each other"],
      [["x", "--config", "c"], "--config applies to a single-file checkpoint"],
      [["x", "--profile=xml"], "--profile=xml is not known"],
      [["fetch", "a cat"], "takes no prompt"],
    ] as [string[], string][]
  ) {
    assertThrows(() => parseCli(args, tty), msg);
  }
});

Deno.test("batch lines: plain prompts, JSON overrides, skips and errors with line numbers", () => {
  const defaults = parseCli(["x", "--steps", "4", "--seed", "9"], { stdinIsTerminal: true }).job;
  assertEquals(parseJobLine("  a red fox \r", 1, defaults), {
    kind: "job",
    job: { ...defaults, prompt: "a red fox", line: 1 },
  });
  assertEquals(
    parseJobLine('{"prompt": "a cat", "seed": 3, "scheduler": "ddim", "out": "cats"}', 2, defaults),
    {
      kind: "job",
      job: { ...defaults, prompt: "a cat", seed: 3, scheduler: "ddim", out: "cats", line: 2 },
    },
  );
  assertEquals(parseJobLine('{"prompt": ""}', 3, defaults).kind, "job");
  assertEquals(parseJobLine("   ", 4, defaults).kind, "skip");
  assertEquals(parseJobLine("[1, 2]", 4, defaults), {
    kind: "job",
    job: { ...defaults, prompt: "[1, 2]", line: 4 },
  });
  for (
    const [line, msg] of [
      ['{"prompt": broken', "line 5: not valid JSON"],
      ['{"seed": 1}', 'line 5: the object has no "prompt"'],
      ['{"prompt": "x", "stepz": 2}', 'line 5: unknown field "stepz"'],
      ['{"prompt": "x", "steps": 0}', 'line 5: "steps": 0 is out of range'],
      ['{"prompt": "x", "width": 100}', 'line 5: "width": 100 is not a multiple of 8'],
      ['{"prompt": "x", "guidance": -2}', 'line 5: "guidance": -2 is negative'],
      ['{"prompt": "x", "scheduler": "x"}', 'line 5: unknown scheduler "x"'],
      ['{"prompt": 42}', 'line 5: "prompt": 42 is not a string'],
    ]
  ) {
    const item = parseJobLine(line, 5, defaults);
    assert(item.kind === "error", `${line} is an error`);
    assert(item.message.includes(msg), `"${msg}" in "${item.message}"`);
  }
});

Deno.test("readLines: LF and CRLF, a last line without newline, split UTF-8", async () => {
  const bytes = new TextEncoder().encode('a cat\r\n{"prompt": "猫"}\n\nlast');
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      for (let i = 0; i < bytes.length; i += 3) c.enqueue(bytes.subarray(i, i + 3));
      c.close();
    },
  });
  const lines: string[] = [];
  for await (const l of readLines(stream)) lines.push(l);
  assertEquals(lines, ["a cat", '{"prompt": "猫"}', "", "last"]);
});

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

Deno.test("formatParameters: the text other SD tools read", () => {
  const p = {
    prompt: "a cat",
    negative: "",
    steps: 20,
    sampler: "DDIM",
    guidance: 7.5,
    seed: 42,
    width: 512,
    height: 768,
    modelHash: "c83908253f",
    model: "sd15",
    version: "0.1.0",
  };
  assertEquals(
    formatParameters(p),
    "a cat\nSteps: 20, Sampler: DDIM, CFG scale: 7.5, Seed: 42, Size: 512x768, " +
      "Model hash: c83908253f, Model: sd15, Version: sd 0.1.0",
  );
  assert(
    formatParameters({ ...p, negative: "blurry" }).startsWith(
      "a cat\nNegative prompt: blurry\nSteps: 20",
    ),
  );
});

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
    compileMs: 12,
    pipelines: 2,
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
  const table = formatProfileTable(r);
  for (
    const s of ["matmul_tiled_f16", "75.0%", "10.00 TFLOP/s", "200.0 GB/s", "unet_step", "3.00 GiB"]
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

// ---------------------------------------------------------------------------------------------
// The command, without a GPU

Deno.test("sd --help lists every option with its default; --version", async () => {
  await withTmp(async (dir) => {
    const h = await sd(dir, ["--help"]);
    assertEquals(h.code, 0);
    for (
      const opt of [
        "--negative",
        "--seed",
        "--steps N",
        "(default: 20)",
        "--guidance",
        "(default: 7.5)",
        "--width",
        "--height",
        "(default: 512)",
        "--scheduler",
        "(default: pndm)",
        "--init-image",
        "--strength",
        "(default: 0.8; 1.0",
        "--mask",
        "--batch",
        "--out",
        "--model",
        "(default: sd15)",
        "--weights",
        "--precision",
        "--profile",
        "--quiet",
        "--json",
        "--version",
        "Examples:",
        "sd tokens",
        "sd fetch",
      ]
    ) {
      assert(h.stdout.includes(opt), `--help mentions ${opt}`);
    }
    const v = await sd(dir, ["--version"]);
    assertEquals([v.code, v.stdout], [0, `sd ${VERSION}\n`]);
  });
});

Deno.test("sd: each bad input is one line on stderr, exit code 2, no file", async () => {
  await withTmp(async (dir) => {
    Deno.writeTextFileSync(join(dir, "blocker"), "");
    const cases: [string[], string][] = [
      [["a cat", "--stepz", "2"], "unknown option --stepz"],
      [["a cat", "--steps", "0"], "--steps 0 is out of range"],
      [["a cat", "--guidance", "-1"], "--guidance -1 is negative"],
      [["a cat", "--width", "100"], "--width 100 is not a multiple of 8"],
      [["a cat", "--height", "2056"], "--height 2056 is out of range"],
      [["a cat", "--scheduler", "plms"], 'unknown scheduler "plms"'],
      [["a cat", "--model", "sd9"], 'unknown model "sd9"'],
      [["a cat", "--out", "blocker/images"], "cannot create the directory"],
      [["a cat", "--weights", "no-such-folder"], "--weights no-such-folder: no such file"],
      [["a cat", "--weights", "blocker"], "neither a folder nor a .safetensors file"],
      [[], "no prompt and no jobs on stdin"],
    ];
    for (const [args, msg] of cases) {
      const r = await sd(dir, args);
      assertEquals(r.code, 2, `${args.join(" ")}: exit code (stderr: ${r.stderr})`);
      oneErrorLine(r, msg);
      assertEquals(r.stdout, "");
      assertEquals(listDir(dir), ["blocker"], `${args.join(" ")}: no file written`);
    }
  });
});

Deno.test("sd tokens prints the 77 ids as JSON (from --tokenizer or the weights' tokenizer)", async () => {
  const golden = JSON.parse(Deno.readTextFileSync(join(FIXTURES, "tokens.json"))) as {
    prompt: string;
    ids: number[];
  }[];
  const { prompt, ids } = golden[0];
  await withTmp(async (dir) => {
    for (
      const args of [
        ["tokens", prompt, "--tokenizer", join(FIXTURES, "clip-tokenizer")],
        ["tokens", prompt, "--weights", TINY],
      ]
    ) {
      const r = await sd(dir, args);
      assertEquals(r.code, 0, r.stderr);
      const got = JSON.parse(r.stdout);
      assertEquals(got.length, 77);
      assertEquals(got, ids);
    }
    const bad = await sd(dir, ["tokens", "x", "--tokenizer", dir]);
    assertEquals(bad.code, 2);
    oneErrorLine(bad, "has no vocab.json and merges.txt");
  });
});

Deno.test({
  name: "sd without a GPU adapter: one clear line, exit 1, no file",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    await withTmp(async (dir) => {
      // The Vulkan loader and glvnd's EGL then find no driver: no adapter at all.
      const r = await sd(dir, ["a cat", ...TINY_ARGS], {
        env: {
          VK_ICD_FILENAMES: "/nonexistent.json",
          VK_DRIVER_FILES: "/nonexistent.json",
          __EGL_VENDOR_LIBRARY_FILENAMES: "/nonexistent.json",
        },
      });
      assertEquals(r.code, 1, r.stderr);
      oneErrorLine(r, "no GPU adapter found");
      assertEquals(listDir(dir), []);
    });
  },
});

// ---------------------------------------------------------------------------------------------
// The command, generating on the GPU

Deno.test({
  name: "sd: a single run writes <slug>-<seed>.png, prints its path, records the parameters",
  ignore: !hasGpu,
  fn: async () => {
    await withTmp(async (dir) => {
      const r = await sd(dir, [
        "a red fox",
        ...TINY_ARGS,
        "--seed",
        "42",
        "--negative",
        "blurry",
        "--scheduler",
        "ddim",
        "--precision",
        "f32",
      ]);
      assertEquals(r.code, 0, r.stderr);
      assertEquals(r.stdout, "a-red-fox-42.png\n");
      assert(r.stderr.includes("seed 42"), r.stderr);
      assertEquals(listDir(dir), ["a-red-fox-42.png"]);
      const png = Deno.readFileSync(join(dir, "a-red-fox-42.png"));
      const hash = sha256Hex(join(TINY, "unet", "diffusion_pytorch_model.safetensors")).slice(
        0,
        10,
      );
      assertEquals(pngText(png), {
        parameters: "a red fox\nNegative prompt: blurry\n" +
          `Steps: 2, Sampler: DDIM, CFG scale: 7.5, Seed: 42, Size: 64x64, Model hash: ${hash}, ` +
          `Model: tiny-sd, Version: sd ${VERSION}`,
      });

      // Second run, same name: a new file, the first untouched.
      const again = await sd(dir, [
        "a red fox",
        ...TINY_ARGS,
        "--seed",
        "42",
        "--scheduler",
        "ddim",
      ]);
      assertEquals(again.code, 0, again.stderr);
      assertEquals(again.stdout, "a-red-fox-42-1.png\n");
      assertEquals(listDir(dir), ["a-red-fox-42-1.png", "a-red-fox-42.png"]);
      assertEquals(Deno.readFileSync(join(dir, "a-red-fox-42.png")), png);
    });
  },
});

Deno.test({
  name: "sd --batch 2 --json: seeds s and s+1, one JSON line each; empty prompt names image-",
  ignore: !hasGpu,
  fn: async () => {
    await withTmp(async (dir) => {
      const r = await sd(dir, [
        "",
        ...TINY_ARGS,
        "--batch",
        "2",
        "--seed",
        "7",
        "--json",
        "-o",
        "out",
      ]);
      assertEquals(r.code, 0, r.stderr);
      const lines = r.stdout.trimEnd().split("\n").map((l) => JSON.parse(l));
      assertEquals(lines.map((l) => [l.path, l.seed, l.prompt]), [
        [join("out", "image-7.png"), 7, ""],
        [join("out", "image-8.png"), 8, ""],
      ]);
      for (const l of lines) assert(Number.isInteger(l.ms) && l.ms > 0, `ms: ${l.ms}`);
      assertEquals(listDir(join(dir, "out")), ["image-7.png", "image-8.png"]);
      const seeds = listDir(join(dir, "out")).map((n) =>
        /Seed: (\d+)/.exec(pngText(Deno.readFileSync(join(dir, "out", n))).parameters)?.[1]
      );
      assertEquals(seeds, ["7", "8"]);
    });
  },
});

Deno.test({
  name: "sd - : a 3-line batch with a malformed line gives 2 images, the line number, exit 1",
  ignore: !hasGpu,
  fn: async () => {
    await withTmp(async (dir) => {
      const stdin = 'a dog\n{"prompt": broken\n{"prompt": "a cat", "seed": 3, "steps": 1}\n';
      const r = await sd(dir, ["-", ...TINY_ARGS, "--seed", "5"], { stdin });
      assertEquals(r.code, 1, r.stderr);
      const lines = r.stdout.trimEnd().split("\n").map((l) => JSON.parse(l));
      assertEquals(lines.map((l) => [l.path, l.seed, l.prompt]), [
        ["a-dog-5.png", 5, "a dog"],
        ["a-cat-3.png", 3, "a cat"],
      ]);
      assert(/^sd: line 2: not valid JSON/m.test(r.stderr), r.stderr);
      assertEquals(listDir(dir), ["a-cat-3.png", "a-dog-5.png"]);
      assert(pngText(Deno.readFileSync(join(dir, "a-cat-3.png"))).parameters.includes("Steps: 1,"));
    });
  },
});

Deno.test({
  name: "sd with corrupt weights: one line naming the file, exit 1, no file",
  ignore: !hasGpu,
  fn: async () => {
    await withTmp(async (dir) => {
      const model = join(dir, "model");
      for (const e of Deno.readDirSync(TINY)) {
        if (!e.isDirectory) continue;
        Deno.mkdirSync(join(model, e.name), { recursive: true });
        for (const f of Deno.readDirSync(join(TINY, e.name))) {
          Deno.copyFileSync(join(TINY, e.name, f.name), join(model, e.name, f.name));
        }
      }
      for (
        const f of [
          "diffusion_pytorch_model.safetensors",
          "diffusion_pytorch_model.fp16.safetensors",
        ]
      ) {
        const p = join(model, "unet", f);
        const bytes = Deno.readFileSync(p);
        Deno.writeFileSync(p, bytes.subarray(0, bytes.length >> 1)); // truncated
      }
      const work = join(dir, "work");
      Deno.mkdirSync(work);
      const r = await sd(work, ["a cat", ...TINY_ARGS.slice(2), "--weights", model]);
      assertEquals(r.code, 1, r.stderr);
      oneErrorLine(r, "diffusion_pytorch_model");
      assert(!r.stderr.includes("    at "), "no stack trace");
      assertEquals(listDir(work), []);
    });
  },
});

Deno.test({
  name: "sd --profile: kernel table (or the no-timestamp note) and stage times; json:FILE",
  ignore: !hasGpu,
  fn: async () => {
    await withTmp(async (dir) => {
      const r = await sd(dir, ["a cat", ...TINY_ARGS, "--seed", "1", "--profile"]);
      assertEquals(r.code, 0, r.stderr);
      assert(
        r.stderr.includes("GPU time per kernel") || r.stderr.includes("no timestamp-query"),
        r.stderr,
      );
      for (
        const s of ["Wall time per stage", "unet_step", "vae_decode", "png", "peak GPU memory"]
      ) {
        assert(r.stderr.includes(s), `${s} in\n${r.stderr}`);
      }
      const j = await sd(dir, ["a cat", ...TINY_ARGS, "--seed", "1", "--profile=json:p.json"]);
      assertEquals(j.code, 0, j.stderr);
      const report = JSON.parse(Deno.readTextFileSync(join(dir, "p.json")));
      assertEquals(report.images, 1);
      const steps = report.stages.find((s: { name: string }) => s.name === "unet_step");
      assert(steps && steps.calls >= 2, JSON.stringify(report.stages));
      if (report.timestamps) assert(report.kernels.length > 0 && report.gpuMs > 0);
    });
  },
});

Deno.test({
  name: "sd interrupted (SIGINT): exit 130, no partial or temporary file",
  ignore: !hasGpu || Deno.build.os === "windows",
  fn: async () => {
    await withTmp(async (dir) => {
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", MAIN, "-", ...TINY_ARGS],
        cwd: dir,
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
        env: childEnv(join(dir, ".cache")),
      }).spawn();
      const w = child.stdin.getWriter();
      await w.write(new TextEncoder().encode('{"prompt": "one", "seed": 1}\n'));
      // Wait for the first image, then ask for a long one and interrupt it.
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let out = "";
      while (!out.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) break;
        out += value;
      }
      assertEquals(JSON.parse(out.split("\n")[0]).path, "one-1.png");
      await w.write(new TextEncoder().encode('{"prompt": "two", "seed": 2, "steps": 500}\n'));
      await new Promise((r) => setTimeout(r, 300));
      child.kill("SIGINT");
      const status = await child.status;
      await reader.cancel();
      await w.close().catch(() => {});
      const err = new TextDecoder().decode(await new Response(child.stderr).arrayBuffer());
      assertEquals(status.code, 130, err);
      assert(err.includes("sd: interrupted"), err);
      assertEquals(listDir(dir), ["one-1.png"]);
    });
  },
});

Deno.test({
  name: "sd fetch --lock, then a run from the cache with the server gone (no network)",
  ignore: !hasGpu,
  fn: async () => {
    await withTmp(async (dir) => {
      // A lock for tiny-sd served from 127.0.0.1: real sizes and sha256 of the fixture files.
      const files = [];
      for (const sub of Deno.readDirSync(TINY)) {
        const names = sub.isDirectory
          ? [...Deno.readDirSync(join(TINY, sub.name))].map((f) => `${sub.name}/${f.name}`)
          : [sub.name];
        for (const path of names) {
          const full = join(TINY, ...path.split("/"));
          const variants = path.endsWith(".fp16.safetensors")
            ? { variants: ["f16"] }
            : path.endsWith(".safetensors")
            ? { variants: ["f32"] }
            : {};
          files.push({
            path,
            bytes: Deno.statSync(full).size,
            sha256: sha256Hex(full),
            ...variants,
          });
        }
      }
      const served: string[] = [];
      const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
        const path = decodeURIComponent(new URL(req.url).pathname.slice(1));
        served.push(path);
        try {
          return new Response(Deno.readFileSync(join(TINY, ...path.split("/"))));
        } catch {
          return new Response("not found", { status: 404 });
        }
      });
      const lock = join(dir, "test.lock");
      Deno.writeTextFileSync(
        lock,
        JSON.stringify({
          version: 1,
          default: "tiny",
          models: {
            tiny: {
              revision: "0123456789abcdef",
              base: `http://127.0.0.1:${server.addr.port}/`,
              files,
            },
          },
        }),
      );
      let fetched: Result;
      try {
        fetched = await sd(dir, ["fetch", "--lock", lock, "--precision", "f32", "-q"]);
      } finally {
        await server.shutdown();
      }
      assertEquals(fetched.code, 0, fetched.stderr);
      const cacheDir = fetched.stdout.trim();
      assertEquals(cacheDir, join(dir, ".cache", "tiny-01234567"));
      assert(served.includes("unet/diffusion_pytorch_model.safetensors"), served.join(" "));
      assert(!served.includes("unet/diffusion_pytorch_model.fp16.safetensors"), "only f32 files");

      // The server is gone: this run must find everything in the cache.
      const args = ["a cat", "--lock", lock, "--precision", "f32", "--seed", "4"];
      const r = await sd(dir, [...args, ...TINY_ARGS.slice(2)]);
      assertEquals(r.code, 0, r.stderr);
      assertEquals(r.stdout, "a-cat-4.png\n");
      const unet = files.find((f) => f.path === "unet/diffusion_pytorch_model.safetensors")!;
      const params = pngText(Deno.readFileSync(join(dir, "a-cat-4.png"))).parameters;
      assert(
        params.endsWith(
          `Model hash: ${unet.sha256.slice(0, 10)}, Model: tiny, Version: sd ${VERSION}`,
        ),
        params,
      );

      const unknown = await sd(dir, ["fetch", "--lock", lock, "--model", "sd15"]);
      assertEquals(unknown.code, 2);
      oneErrorLine(unknown, 'unknown model "sd15"');
    });
  },
});

// ---------------------------------------------------------------------------------------------
// The standalone executable (`deno task compile`)

/** Where `deno compile` can get its runtime base: DENORT_BIN, the cache, or the download host. */
async function denortSource(): Promise<string | null> {
  const bin = Deno.env.get("DENORT_BIN");
  if (bin) {
    try {
      if (Deno.statSync(bin).isFile) return `DENORT_BIN=${bin}`;
    } catch {
      return null;
    }
  }
  try {
    const r = await fetch(
      `https://dl.deno.land/release/v${Deno.version.deno}/denort-${Deno.build.target}.zip`,
      { method: "HEAD", signal: AbortSignal.timeout(5000) },
    );
    await r.body?.cancel();
    return r.ok ? "dl.deno.land" : null;
  } catch {
    return null;
  }
}

const denort = await denortSource();
if (!denort) {
  console.warn(
    "cli_test: the compiled-binary check did NOT run: deno compile needs its runtime base " +
      "(denort), and neither DENORT_BIN points at one nor can it be downloaded from dl.deno.land",
  );
}

Deno.test({
  name: "deno task compile: the binary runs --help and a tiny-sd generation from elsewhere",
  ignore: !denort || !hasGpu,
  fn: async () => {
    await withTmp(async (dir) => {
      const config = JSON.parse(Deno.readTextFileSync(join(REPO, "deno.json")));
      const task = (config.tasks.compile as string).split(/\s+/);
      assertEquals(task.slice(0, 2), ["deno", "compile"]);
      const bin = join(dir, Deno.build.os === "windows" ? "sd.exe" : "sd");
      const args = task.slice(1);
      const o = args.indexOf("--output");
      if (o >= 0) args.splice(o, 2, "--output", bin);
      else args.splice(1, 0, "--output", bin);
      const built = await new Deno.Command(Deno.execPath(), {
        args,
        cwd: REPO,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assertEquals(built.code, 0, new TextDecoder().decode(built.stderr));
      const elsewhere = join(dir, "elsewhere");
      Deno.mkdirSync(elsewhere);
      const h = await sd(elsewhere, ["--help"], { bin });
      assertEquals(h.code, 0, h.stderr);
      assert(h.stdout.includes("--scheduler"));
      const r = await sd(elsewhere, ["a cat", ...TINY_ARGS, "--seed", "3"], { bin });
      assertEquals(r.code, 0, r.stderr);
      assertEquals(r.stdout, "a-cat-3.png\n");
      assert(Deno.statSync(join(elsewhere, "a-cat-3.png")).size > 0);
      assertEquals(dirname(bin), dir);
    });
  },
});

Deno.test({
  name: "sd: a prompt longer than 77 tokens warns on stderr with the dropped words",
  ignore: !hasGpu,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const prompt = "a ".repeat(80) + "zebra giraffe";
      const r = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          new URL("../main.ts", import.meta.url).pathname,
          prompt,
          "--weights",
          new URL("../../shared/fixtures/tiny-sd", import.meta.url).pathname,
          "--steps",
          "1",
          "--width",
          "64",
          "--height",
          "64",
          "--out",
          dir,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const err = new TextDecoder().decode(r.stderr);
      assert(r.code === 0, err);
      assert(/zebra giraffe/.test(err), `no truncation warning in: ${err}`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
