/**
 * LoRAs through the `sd` command (subprocesses): both lora cases of the features fixture with
 * their own `cli` arguments against the reference images (f32: max abs < 0.02 + 1/255; f16: mean
 * abs < 0.01) and the `parameters` chunk A1111 would write; a 6-job batch alternating two LoRAs
 * and none (by the `"lora"` field and by a prompt tag) gives the images of 6 separate runs; bad
 * LoRA files end the run with one line on stderr, exit ≠ 0 and no file.
 */

import { assert, assertEquals, assertThrows } from "../src/std/assert.ts";
import { join } from "../src/std/path.ts";
import { SafeTensorsFile } from "../src/weights/safetensors.ts";
import { loraShortHash } from "../src/weights/lora.ts";
import { extractLoraTags, parseLoraOption, resolveJobLoras } from "../src/cli/lora.ts";
import { parseJobLine } from "../src/cli/batch.ts";
import { parseCli } from "../src/cli/args.ts";
import { formatParameters } from "../src/cli/parameters.ts";
import { fixture } from "./fixtures.ts";
import { hasGpu, testGpu } from "./gpu.ts";
import { decodePng, imageError, withinImageTolerance } from "./image_compare.ts";
import { badLoraFiles, loraCases, partlyMatchingLora } from "./lora_files.ts";
import { oneErrorLine, pngText, sd } from "./sd_command.ts";
import { listDir, withTmp } from "./temp.ts";

const FEATURES = fixture("features");
const TINY = fixture("tiny-sd");
const KOHYA = join(FEATURES, "tiny-sd-lora-kohya.safetensors");
const PEFT = join(FEATURES, "tiny-sd-lora-peft.safetensors");

/** A case's `cli` with its paths (relative to the features folder) made absolute. */
function absoluteCli(cli: readonly string[]): string[] {
  return cli.map((a, i) => ["--weights", "--lora"].includes(cli[i - 1]) ? join(FEATURES, a) : a);
}

Deno.test("lora cli: --lora FILE[:SCALE], prompt tags, batch lines, parameters text", () => {
  const opt = (raw: string) => {
    const l = parseLoraOption(raw);
    return [l.path, l.te, l.unet, l.name];
  };
  assertEquals(opt("a.safetensors"), ["a.safetensors", 1, 1, "a"]);
  assertEquals(opt("dir/b.safetensors:0.8"), ["dir/b.safetensors", 0.8, 0.8, "b"]);
  assertEquals(opt("C:\\loras\\c.safetensors:-0.5")[1], -0.5);
  assertEquals(opt("C:\\loras\\c.safetensors")[0], "C:\\loras\\c.safetensors");
  assertThrows(() => parseLoraOption(":0.5"), "names no file");

  const { text, tags } = extractLoraTags(
    "a <lora:x>cat <lora:y:0.5>, <lora:z:1:0.25> <hypernet:h:1>",
  );
  assertEquals(text, "a cat ,  <hypernet:h:1>");
  assertEquals(tags, [
    { name: "x", te: 1, unet: 1 },
    { name: "y", te: 0.5, unet: 0.5 },
    { name: "z", te: 1, unet: 0.25 },
  ]);
  assertThrows(() => extractLoraTags("<lora:x:strong>"), "is not a decimal number");
  // Scales follow the options' decimal grammar: no exponent, hex or Infinity.
  for (const bad of ["1e0", "0x1", "Infinity"]) {
    assertThrows(() => extractLoraTags(`<lora:x:${bad}>`), "is not a decimal number");
    assertEquals(opt(`x.safetensors:${bad}`)[0], `x.safetensors:${bad}`); // a colon of the name
  }

  const cli = parseCli(["a cat", "--lora", "s.safetensors:0.7", "--lora", "t.safetensors"], {
    stdinIsTerminal: true,
  });
  assertEquals(cli.job.lora.map((l) => [l.path, l.unet]), [["s.safetensors", 0.7], [
    "t.safetensors",
    1,
  ]]);
  assertThrows(() => resolveJobLoras("a cat", cli.job.lora, null), "no such file");
  const present = cli.job.lora.map((l) => ({ ...l, path: KOHYA }));
  const resolved = resolveJobLoras("a cat", present, null);
  assertEquals(resolved.prompt, "a cat");
  assertEquals(resolved.recordedPrompt, "a cat<lora:s:0.7><lora:t:1>");

  const line = parseJobLine('{"prompt": "a", "lora": ["u.safetensors:2"]}', 1, cli.job);
  assert(line.kind === "job");
  assertEquals(line.job.lora.map((l) => [l.path, l.unet]), [["u.safetensors", 2]]);
  const none = parseJobLine('{"prompt": "a", "lora": []}', 2, cli.job);
  assert(none.kind === "job" && none.job.lora.length === 0, "[] replaces --lora");
  const bad = parseJobLine('{"prompt": "a", "lora": [1]}', 3, cli.job);
  assert(bad.kind === "error" && bad.message.includes('"lora"'), JSON.stringify(bad));

  const text2 = formatParameters({
    prompt: "a cat <lora:x:0.5>",
    negative: "",
    steps: 20,
    sampler: "DDIM",
    guidance: 7.5,
    seed: 1,
    width: 512,
    height: 512,
    modelHash: "0123456789",
    model: "sd15",
    version: "0.1.0",
    loraHashes: "x: 0123456789ab, y: ba9876543210",
  });
  assertEquals(
    text2,
    'a cat <lora:x:0.5>\nSteps: 20, Sampler: DDIM, CFG scale: 7.5, Seed: 1, Size: 512x512, Model hash: 0123456789, Model: sd15, Lora hashes: "x: 0123456789ab, y: ba9876543210", Version: sd 0.1.0',
  );
});

for (const precision of ["f32", "f16"] as const) {
  Deno.test({
    name: `lora cli: the features lora cases through \`sd\` (${precision}) vs reference images`,
    ignore: !hasGpu,
    async fn() {
      const gpu = (await testGpu())!;
      if (precision === "f16" && !gpu.hasF16) return;
      const g = await SafeTensorsFile.open(fixture("features/tiny-sd-features.safetensors"));
      const failures: string[] = [];
      try {
        for (const c of await loraCases()) {
          await withTmp(async (dir) => {
            const out = join(dir, "out.png");
            const r = await sd(dir, [
              ...absoluteCli(c.cli),
              "--precision",
              precision,
              "--out",
              out,
              "--quiet",
            ]);
            assertEquals(r.code, 0, `${c.key}: ${r.stderr}`);
            const bytes = await Deno.readFile(out);
            const e = imageError(decodePng(bytes), await g.readF32(`${c.key}.image`));
            const line = `${c.key}: max ${e.max.toFixed(4)} mean ${e.mean.toExponential(2)}`;
            console.error(`${precision} ${line}`);
            if (!withinImageTolerance(precision, e)) failures.push(line);

            // parameters: the prompt with a tag per --lora file, and A1111's Lora hashes.
            const text = pngText(bytes).parameters;
            const tags = c.loras.map((l) =>
              `<lora:${l.file.replace(/\.safetensors$/, "")}:${l.scale}>`
            ).join("");
            assertEquals(text.split("\n")[0], c.prompt + tags);
            const hashes = await Promise.all(
              c.loras.map(async (l) =>
                `${l.file.replace(/\.safetensors$/, "")}: ${await loraShortHash(
                  join(FEATURES, l.file),
                )}`
              ),
            );
            assert(
              text.includes(`, Lora hashes: "${hashes.join(", ")}", Version: sd `),
              `Lora hashes in: ${text}`,
            );
          });
        }
      } finally {
        g.close();
      }
      assert(failures.length === 0, failures.join("\n"));
    },
  });
}

Deno.test({
  name: "lora cli: a 6-job batch alternating two LoRAs and none = 6 separate runs",
  ignore: !hasGpu,
  async fn() {
    await withTmp(async (dir) => {
      const loraDir = join(dir, "loras");
      await Deno.mkdir(loraDir);
      await Deno.copyFile(KOHYA, join(loraDir, "watercolor.safetensors"));
      const common = ["--weights", TINY, "--width", "64", "--height", "64", "--steps", "3"];
      const common2 = ["--negative", "blurry", "--lora-dir", loraDir, "--quiet"];
      // [prompt, lora field, the same job as command-line options]
      const jobs: [string, string[] | undefined, string[]][] = [
        ["a watercolor landscape", [`${KOHYA}:0.8`], ["--lora", `${KOHYA}:0.8`]],
        ["a watercolor landscape", [`${PEFT}:1`], ["--lora", PEFT]],
        ["a watercolor landscape", undefined, []],
        ["a watercolor landscape <lora:watercolor:0.8>", undefined, []],
        ["a watercolor landscape", [], []],
        ["a watercolor landscape", [`${PEFT}:1`, `${KOHYA}:0.5`], [
          "--lora",
          PEFT,
          "--lora",
          `${KOHYA}:0.5`,
        ]],
      ];
      const lines = jobs.map(([prompt, lora], i) =>
        JSON.stringify({ prompt, seed: 7, out: `batch-${i}.png`, lora })
      ).join("\n") + "\n";
      const batch = await sd(dir, ["-", ...common, ...common2], { stdin: lines });
      assertEquals(batch.code, 0, batch.stderr);
      for (const [i, [prompt, , opts]] of jobs.entries()) {
        const single = join(dir, `single-${i}.png`);
        const r = await sd(dir, [
          ...common,
          ...common2,
          "--seed",
          "7",
          ...opts,
          "--out",
          single,
          prompt,
        ]);
        assertEquals(r.code, 0, r.stderr);
        const a = decodePng(await Deno.readFile(join(dir, `batch-${i}.png`)));
        const b = decodePng(await Deno.readFile(single));
        assert(
          a.buffer.every((v, j) =>
            v === b.buffer[j]
          ),
          `job ${i} (${prompt}, ${opts.join(" ") || "no LoRA"}): batch image ≠ separate run`,
        );
      }
      // The LoRAs change the image (so the comparison above means something).
      const plain = decodePng(await Deno.readFile(join(dir, "batch-2.png")));
      for (const i of [0, 1, 3, 5]) {
        const img = decodePng(await Deno.readFile(join(dir, `batch-${i}.png`)));
        assert(img.buffer.some((v, j) => v !== plain.buffer[j]), `job ${i} differs from no LoRA`);
      }
      // The tag job and the "lora" field job are the same merge, recorded differently.
      const tagged = decodePng(await Deno.readFile(join(dir, "batch-3.png")));
      const field = decodePng(await Deno.readFile(join(dir, "batch-0.png")));
      assert(tagged.buffer.every((v, j) => v === field.buffer[j]), "tag = --lora");
      const text = pngText(await Deno.readFile(join(dir, "batch-3.png"))).parameters;
      assertEquals(text.split("\n")[0], "a watercolor landscape <lora:watercolor:0.8>");
      assert(text.includes(`Lora hashes: "watercolor: ${await loraShortHash(KOHYA)}"`), text);
    });
  },
});

Deno.test({
  name: "lora cli: bad LoRA files → one line, exit ≠ 0, no file; a partly matching one → a note",
  ignore: !hasGpu,
  async fn() {
    await withTmp(async (dir) => {
      const bad = await badLoraFiles(dir);
      const before = listDir(dir);
      const quick = ["--weights", TINY, "--width", "64", "--height", "64", "--steps", "1"];
      for (const b of bad) {
        const r = await sd(dir, [...quick, "--lora", `${b.path}:0.7`, "a cat"]);
        assert(r.code !== 0, `${b.path}: exit ${r.code}`);
        oneErrorLine(r, b.says);
        assertEquals(listDir(dir), before, `${b.path}: no file written`);
      }
      // (A missing --lora file, tags without --lora-dir or not in it: tests/bad_inputs.ts.)
      assertEquals(listDir(dir), before, "no file written");
      // A file of which some modules match is merged, with a note counting the rest.
      const partly = await partlyMatchingLora(dir);
      const ok = await sd(dir, [...quick, "--lora", partly, "--out", join(dir, "p.png"), "a cat"]);
      assertEquals(ok.code, 0, ok.stderr);
      assert(
        ok.stderr.includes("1 of its 2 modules match no layer of this model and are left out"),
        ok.stderr,
      );
    });
  },
});
