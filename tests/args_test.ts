/**
 * Parsing the command line: the `parseArgs` wrapper of `src/std/args.ts` and the `sd` options of
 * `src/cli/args.ts` (defaults, subcommands, stdin jobs, every option check).
 */

import { assertEquals, assertThrows } from "../src/std/assert.ts";
import { parseArgs } from "../src/std/args.ts";
import { parseCli } from "../src/cli/args.ts";

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
    lora: [],
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

Deno.test("parseCli: --clip-skip, --no-emphasis, sd tokens --chunks", () => {
  const io = { stdinIsTerminal: true };
  assertEquals(parseCli(["a cat"], io).text, { clipSkip: 1, emphasis: true });
  assertEquals(parseCli(["a cat", "--clip-skip", "2", "--no-emphasis"], io).text, {
    clipSkip: 2,
    emphasis: false,
  });
  assertEquals(parseCli(["tokens", "--chunks", "a cat"], io).chunks, true);
  assertThrows(() => parseCli(["a", "--clip-skip", "0"], io), "--clip-skip 0 is out of range");
  assertThrows(() => parseCli(["a", "--clip-skip", "1.5"], io), "--clip-skip 1.5 is out of range");
  assertThrows(() => parseCli(["a", "--clip-skip", "x"], io), "--clip-skip x is not a number");
  assertThrows(() => parseCli(["a", "--chunks"], io), "--chunks applies to sd tokens");
});
