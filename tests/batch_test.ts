/**
 * Jobs from stdin (`src/cli/batch.ts`): plain and JSON lines, skips, errors with line numbers,
 * and line splitting.
 */

import { assert, assertEquals } from "../src/std/assert.ts";
import { parseCli } from "../src/cli/args.ts";
import {
  type LineOptions,
  parseJobLine,
  readLines,
  resolvesInside,
  staysInside,
} from "../src/cli/batch.ts";
import { withTmp } from "./temp.ts";
import { join } from "../src/std/path.ts";

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
      job: { ...defaults, prompt: "a cat", seed: 3n, scheduler: "ddim", out: "cats", line: 2 },
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
      ['{"prompt": "x", "guidance": -2}', 'line 5: "guidance": -2 is out of range'],
      ['{"prompt": "x", "scheduler": "x"}', 'line 5: unknown scheduler "x"'],
      ['{"prompt": 42}', 'line 5: "prompt": 42 is not a string'],
    ]
  ) {
    const item = parseJobLine(line, 5, defaults);
    assert(item.kind === "error", `${line} is an error`);
    assert(item.message.includes(msg), `"${msg}" in "${item.message}"`);
  }
});

Deno.test("batch lines: one JSON type a field, numbers read as written with the flags' grammar", () => {
  const defaults = parseCli(["x", "--steps", "4", "--seed", "9"], { stdinIsTerminal: true }).job;
  const job = (line: string, opts: LineOptions = {}) => {
    const item = parseJobLine(line, 7, defaults, opts);
    assert(item.kind === "job", `${line}: ${item.kind === "error" ? item.message : item.kind}`);
    return item.job;
  };
  const error = (line: string, opts: LineOptions = {}) => {
    const item = parseJobLine(line, 7, defaults, opts);
    assert(item.kind === "error", `${line} is an error`);
    return item.message;
  };
  const j = job(
    '{"prompt": "a", "negative": "b", "seed": 18446744073709551615, "steps": 30, ' +
      '"guidance": 7.50, "width": 640, "height": 384, "scheduler": "euler", "lora": "s.safetensors:0.5"}',
  );
  assertEquals(
    [j.negative, j.seed, j.steps, j.guidance, j.width, j.height, j.scheduler, j.lora[0].te],
    ["b", 18446744073709551615n, 30, 7.5, 640, 384, "euler", 0.5],
  );
  assertEquals(job('{"prompt": "a", "seed": 9007199254740993}').seed, 9007199254740993n);
  assertEquals(job('{"prompt": "a", "seed": -1}').seed, null, "-1: random");
  const nulls = job('{"prompt": "a", "seed": null, "steps": null, "out": null, "lora": null}');
  assertEquals([nulls.seed, nulls.steps, nulls.out, nulls.lora], [9n, 4, null, []]);
  for (
    const [line, msg] of [
      ['{"prompt": 5}', '"prompt": 5 is not a string; write "prompt": "…"'],
      ['{"prompt": "x", "negative": ["a"]}', '"negative": ["a"] is not a string'],
      ['{"prompt": "x", "scheduler": 1}', '"scheduler": 1 is not a string'],
      ['{"prompt": "x", "out": true}', '"out": true is not a string'],
      ['{"prompt": "x", "init_image": {}}', '"init_image": {} is not a string'],
      [
        '{"prompt": "x", "steps": "20"}',
        '"steps": "20" is a string; write a JSON number without quotes, e.g. "steps": 20',
      ],
      ['{"prompt": "x", "seed": "42"}', '"seed": "42" is a string'],
      ['{"prompt": "x", "guidance": "7.5"}', '"guidance": "7.5" is a string'],
      ['{"prompt": "x", "width": [512]}', '"width": [512] is not a number'],
      ['{"prompt": "x", "steps": 2e1}', '"steps": 2e1 is not a decimal integer'],
      ['{"prompt": "x", "steps": 20.0}', '"steps": 20.0 is not a decimal integer'],
      ['{"prompt": "x", "height": -64}', '"height": -64 is not a decimal integer'],
      ['{"prompt": "x", "seed": 1e3}', '"seed": 1e3 is not a valid seed; use an integer from 0 to'],
      [
        '{"prompt": "x", "seed": 18446744073709551616}',
        '"seed": 18446744073709551616 is not a valid seed',
      ],
      ['{"prompt": "x", "guidance": 1e30}', '"guidance": 1e30 is not a decimal number'],
      [
        '{"prompt": "x", "guidance": 50.5}',
        '"guidance": 50.5 is out of range; use a scale from 0 to 50',
      ],
      ['{"prompt": "x", "init_image": "i.png", "strength": 0}', '"strength": 0 is out of range'],
      ['{"prompt": "x", "lora": [1]}', '"lora": [1] is not a list of files'],
    ]
  ) {
    const m = error(line);
    assert(m.startsWith(`line 7: ${msg}`), `"line 7: ${msg}…" in "${m}"`);
  }
  assert(
    error('{"prompt": "x", "seed": 18446744073709551615}', { batch: 2 }).startsWith(
      'line 7: "seed": 18446744073709551615 with --batch 2 needs seeds past',
    ),
  );
  const long = "a dog ".repeat(1_000_000);
  for (
    const [line, what] of [
      [long, "the prompt"],
      [JSON.stringify({ prompt: long }), '"prompt"'],
      [JSON.stringify({ prompt: "x", negative: long }), '"negative"'],
    ]
  ) {
    const m = error(line);
    assert(
      m.startsWith(`line 7: ${what} is ${long.trim().length}`) ||
        m.startsWith(`line 7: ${what} is ${long.length}`),
      m,
    );
    assert(m.includes("the limit is 4000") && m.length < 200, m);
  }
});

Deno.test('batch lines: "out" stays inside the output folder unless --allow-any-out', () => {
  const defaults = parseCli(["x", "-o", "imgs"], { stdinIsTerminal: true }).job;
  const out = (o: string, opts: LineOptions = { outDir: "imgs" }) =>
    parseJobLine(JSON.stringify({ prompt: "x", out: o }), 3, defaults, opts);
  assertEquals(out("cats/"), {
    kind: "job",
    job: { ...defaults, prompt: "x", out: join("imgs", "cats/"), line: 3 },
  });
  const inside = out("a/b/../c.png");
  assert(inside.kind === "error", "any .. part is refused, even one that stays inside");
  for (
    const bad of [
      "../../tmp/escape.png",
      "..",
      "a/../../b.png",
      "/tmp/abs.png",
      "\\\\server\\share\\x.png",
      "C:\\x.png",
      "c:x.png",
      "a\\..\\..\\x.png",
    ]
  ) {
    const item = out(bad);
    assert(item.kind === "error", `${bad} is refused`);
    assertEquals(
      item.message,
      `line 3: "out": ${
        JSON.stringify(bad)
      } leaves the output folder; give a path inside it (no "..", not absolute), or run sd with --allow-any-out`,
    );
    assert(!staysInside(bad), bad);
  }
  const any = { outDir: "imgs", allowAnyOut: true };
  assertEquals(out("../escape.png", any), {
    kind: "job",
    job: { ...defaults, prompt: "x", out: "escape.png", line: 3 },
  });
  assertEquals(out("/tmp/abs.png", any), {
    kind: "job",
    job: { ...defaults, prompt: "x", out: "/tmp/abs.png", line: 3 },
  });
  assert(staysInside("a..b/c.png") && staysInside("...png") && staysInside("x"));
});

Deno.test({
  name: 'batch lines: an "out" through a symbolic link out of the output folder is refused',
  ignore: Deno.build.os === "windows",
  fn: async () => {
    await withTmp((dir) => {
      const outDir = join(dir, "imgs"), elsewhere = join(dir, "elsewhere");
      Deno.mkdirSync(join(outDir, "sub"), { recursive: true });
      Deno.mkdirSync(elsewhere);
      Deno.symlinkSync(elsewhere, join(outDir, "esc"));
      Deno.symlinkSync(join(outDir, "sub"), join(outDir, "in"));
      const defaults = parseCli(["x", "-o", outDir], { stdinIsTerminal: true }).job;
      const out = (o: string, allowAnyOut = false) =>
        parseJobLine(JSON.stringify({ prompt: "x", out: o }), 2, defaults, { outDir, allowAnyOut });
      for (const bad of ["esc/x.png", "esc/new/deeper/x.png", "esc"]) {
        const item = out(bad);
        assert(item.kind === "error", `${bad} is refused`);
        assert(item.message.includes("through a symbolic link"), item.message);
      }
      for (const ok of ["in/x.png", "new/x.png", "x.png"]) assertEquals(out(ok).kind, "job", ok);
      assertEquals(out("esc/x.png", true).kind, "job", "--allow-any-out lifts it");
      assert(resolvesInside(join(dir, "not-yet"), "esc/x.png"), "no folder yet: no links");
    });
  },
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
