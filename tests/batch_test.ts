/**
 * Jobs from stdin (`src/cli/batch.ts`): plain and JSON lines, skips, errors with line numbers,
 * and line splitting.
 */

import { assert, assertEquals } from "../src/std/assert.ts";
import { parseCli } from "../src/cli/args.ts";
import { parseJobLine, readLines } from "../src/cli/batch.ts";

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
