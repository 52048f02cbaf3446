/**
 * Parsing the command line: the `parseArgs` wrapper of `src/std/args.ts` and the `sd` options of
 * `src/cli/args.ts` (defaults, subcommands, stdin jobs, every option check).
 */

import { assert, assertEquals, assertThrows } from "../src/std/assert.ts";
import { parseArgs } from "../src/std/args.ts";
import { checkSeedRange, excerpt, HELP, LIMITS, MAX_SEED, parseCli } from "../src/cli/args.ts";

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
  assertEquals([b.job.seed, b.batch, b.variants, b.quiet], [7n, 3, { attention: "naive" }, true]);
  for (
    const [args, msg] of [
      [["x", "--stepz", "3"], "did you mean --steps?"],
      [["x", "--steps", "0"], "--steps 0 is out of range"],
      [["x", "--steps", "2.5"], "--steps 2.5 is not a decimal integer"],
      [["x", "--steps", "many"], "--steps many is not a decimal integer"],
      [["x", "--guidance", "-1"], "--guidance -1 is out of range; use a scale from 0 to 50"],
      [["x", "--width", "100"], "--width 100 is not a multiple of 8"],
      [["x", "--height", "4096"], "--height 4096 is out of range"],
      [["x", "--width", "56"], "--width 56 is out of range"],
      [["x", "--seed", "-2"], "--seed -2 is not a valid seed"],
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

Deno.test("parseCli: one number grammar — decimal integers, finite decimals, then ranges", () => {
  const tty = { stdinIsTerminal: true };
  const job = (...args: string[]) => parseCli(["x", ...args], tty).job;
  assertEquals(job("--steps", "020").steps, 20);
  assertEquals(job("--guidance", "0").guidance, 0);
  assertEquals(job("--guidance", "50").guidance, 50);
  assertEquals(job("--guidance", ".5").guidance, 0.5);
  assertEquals(job("--guidance", "7.").guidance, 7);
  assertEquals(job("--init-image", "i.png", "--strength", "0.25").strength, 0.25);
  assertEquals(parseCli(["x", "--batch", "10000"], tty).batch, 10000);
  assertEquals(parseCli(["x", "--clip-skip", "2"], tty).text.clipSkip, 2);
  for (const option of ["--steps", "--width", "--height", "--batch", "--clip-skip"]) {
    for (const bad of ["0x40", "1e2", "64.0", "+64", " 64", "64 ", "", "-64", "Infinity", "٦٤"]) {
      assertThrows(
        () => parseCli(["x", `${option}=${bad}`], tty),
        `${option} ${bad} is not a decimal integer; use `,
      );
    }
  }
  for (const bad of ["1e30", "0x10", "Infinity", "NaN", "", "7,5", "+7", "1_0"]) {
    assertThrows(
      () => parseCli(["x", `--guidance=${bad}`], tty),
      `--guidance ${bad} is not a decimal number; use a scale from 0 to 50`,
    );
  }
  assertThrows(
    () => parseCli(["x", "--guidance", "50.01"], tty),
    "--guidance 50.01 is out of range",
  );
  for (const [bad, msg] of [["1e-1", "is not a decimal number"], ["0", "is out of range"]]) {
    assertThrows(
      () => parseCli(["x", "--init-image", "i.png", "--strength", bad], tty),
      `--strength ${bad} ${msg}; use a number in (0, 1]`,
    );
  }
});

Deno.test("parseCli: seeds 0 … 2^64−1 exactly, -1 random, batches refused past 2^64−1", () => {
  const tty = { stdinIsTerminal: true };
  const seed = (...args: string[]) => parseCli(["x", ...args], tty).job.seed;
  assertEquals(seed("--seed", "0"), 0n);
  assertEquals(seed("--seed", "9007199254740993"), 9007199254740993n); // 2^53 + 1, exact
  assertEquals(seed("--seed", "18446744073709551615"), MAX_SEED);
  assertEquals(MAX_SEED, 2n ** 64n - 1n);
  assertEquals(seed("--seed", "-1"), null);
  assertEquals(seed(), null);
  assertEquals(seed("--seed", "9007199254740991", "--batch", "2"), 9007199254740991n);
  assertEquals(seed("--seed", "18446744073709551614", "--batch", "2"), MAX_SEED - 1n);
  const range = "use an integer from 0 to 18446744073709551615 (2^64−1), or -1 for a random one";
  for (const bad of ["18446744073709551616", "-2", "1e3", "0x10", "4.0", "random", ""]) {
    assertThrows(
      () => parseCli(["x", `--seed=${bad}`], tty),
      `--seed ${bad} is not a valid seed; ${range}`,
    );
  }
  assertThrows(
    () => parseCli(["x", "--seed", "18446744073709551615", "--batch", "2"], tty),
    "--seed 18446744073709551615 with --batch 2 needs seeds past 18446744073709551615 (2^64−1); use a seed ≤ 18446744073709551614",
  );
  assertThrows(
    () => checkSeedRange(MAX_SEED - 2n, 4, '"seed"'),
    '"seed": 18446744073709551613 with --batch 4',
  );
  checkSeedRange(MAX_SEED - 3n, 4);
  checkSeedRange(null, LIMITS.maxBatch);
});

Deno.test("parseCli: prompts over 4000 characters are refused without echoing them", () => {
  const tty = { stdinIsTerminal: true };
  const limit = LIMITS.maxPromptChars;
  assertEquals(parseCli(["猫".repeat(limit)], tty).prompt?.length, limit);
  assertEquals(parseCli(["🐱".repeat(limit)], tty).prompt?.length, 2 * limit, "code points count");
  const long = "a cat on a mat ".repeat(200_000); // 3 MB
  for (
    const [args, what] of [
      [[long], "the prompt"],
      [["tokens", long], "the prompt"],
      [["x", "--negative", long], "the negative prompt"],
    ] as [string[], string][]
  ) {
    const e = assertThrows(
      () => parseCli(args, tty),
      `${what} is ${long.length} characters long ("a cat on a mat a cat on a mat a cat on…"); the limit is 4000: shorten it`,
    );
    assert(e.message.length < 200, e.message);
  }
  const e = assertThrows(() => parseCli(["-", long], tty), '"-" reads the prompts from stdin');
  assert(e.message.length < 200, e.message);
  assertEquals(excerpt("short"), "short");
});

Deno.test("parseCli: --allow-any-out", () => {
  const tty = { stdinIsTerminal: true };
  assertEquals(parseCli(["x"], tty).allowAnyOut, false);
  assertEquals(parseCli(["-", "--allow-any-out"], tty).allowAnyOut, true);
  assert(HELP.includes("--allow-any-out") && HELP.includes("2^64−1"), "--help tells");
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
  assertThrows(
    () => parseCli(["a", "--clip-skip", "1.5"], io),
    "--clip-skip 1.5 is not a decimal integer",
  );
  assertThrows(
    () => parseCli(["a", "--clip-skip", "x"], io),
    "--clip-skip x is not a decimal integer",
  );
  assertThrows(() => parseCli(["a", "--chunks"], io), "--chunks applies to sd tokens");
});
