/**
 * The `sd` command as users run it: the real program as a subprocess (`deno run -A main.ts …`)
 * in a temporary directory, on the tiny fixture model at 64×64 and 2 steps. The CLI's parts are
 * tested in the files named after them (`args_test.ts`, `batch_test.ts`, `output_test.ts`,
 * `parameters_test.ts`, `profile_report_test.ts`); `errors_test.ts` runs the bad inputs in-process.
 */

import { assert, assertEquals } from "../src/std/assert.ts";
import { dirname, join } from "../src/std/path.ts";
import { createHash } from "node:crypto";
import { VERSION } from "../src/cli/version.ts";
import { BAD_INPUTS, corruptTinyCopy, TINY, TINY_ARGS } from "./bad_inputs.ts";
import { fixture } from "./fixtures.ts";
import { hasGpu } from "./gpu.ts";
import { listDir, withTmp } from "./temp.ts";
import { serveTiny, writeTinyLock } from "./tiny_lock.ts";
import { childEnv, MAIN, oneErrorLine, pngText, REPO, type Result, sd } from "./sd_command.ts";

function sha256Hex(path: string): string {
  return createHash("sha256").update(Deno.readFileSync(path)).digest("hex");
}

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
        "--clip-skip N",
        "--no-emphasis",
        "--chunks",
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
    for (const [args, msg] of BAD_INPUTS) {
      const r = await sd(dir, args);
      assertEquals(r.code, 2, `${args.join(" ")}: exit code (stderr: ${r.stderr})`);
      oneErrorLine(r, msg);
      assertEquals(r.stdout, "");
      assertEquals(listDir(dir), ["blocker"], `${args.join(" ")}: no file written`);
    }
  });
});

Deno.test("sd tokens prints the 77 ids as JSON (from --tokenizer or the weights' tokenizer)", async () => {
  const golden = JSON.parse(Deno.readTextFileSync(fixture("tokens.json"))) as {
    prompt: string;
    ids: number[];
  }[];
  const { prompt, ids } = golden[0];
  await withTmp(async (dir) => {
    for (
      const args of [
        ["tokens", prompt, "--tokenizer", fixture("clip-tokenizer")],
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
      const model = corruptTinyCopy(join(dir, "model"));
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
      const server = serveTiny();
      const served = server.served;
      const lock = await writeTinyLock(dir, server.base);
      let fetched: Result;
      try {
        fetched = await sd(dir, ["fetch", "--lock", lock, "--precision", "f32", "-q"]);
      } finally {
        await server.close();
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
      const unetSha = sha256Hex(join(TINY, "unet", "diffusion_pytorch_model.safetensors"));
      const params = pngText(Deno.readFileSync(join(dir, "a-cat-4.png"))).parameters;
      assert(
        params.endsWith(
          `Model hash: ${unetSha.slice(0, 10)}, Model: tiny, Version: sd ${VERSION}`,
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
