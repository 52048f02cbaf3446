/**
 * Every expected failure is a `UserError` (`src/errors.ts`): the bad inputs the CLI tests try,
 * run in-process through `run` (what `main` calls before it maps the error to an exit code), each
 * throw one whose kind gives the exit code the end-to-end test expects; and the exit-code mapping
 * itself.
 */

import { assert, assertEquals } from "../src/std/assert.ts";
import { join } from "../src/std/path.ts";
import { run } from "../src/cli/run.ts";
import { describeError, EXIT_FAILED, EXIT_USAGE, exitCodeOf } from "../src/cli/errors.ts";
import { fileError, UsageError, UserError } from "../src/errors.ts";
import { BAD_INPUTS, corruptTinyCopy, TINY_ARGS } from "./bad_inputs.ts";
import { hasGpu } from "./gpu.ts";
import { withTmp } from "./temp.ts";

/** The error `run(args)` throws in `dir` (stdin a terminal: no jobs read from it). */
async function errorOf(dir: string, args: string[]): Promise<unknown> {
  const cwd = Deno.cwd();
  Deno.chdir(dir);
  try {
    await run(args, true);
  } catch (e) {
    return e;
  } finally {
    Deno.chdir(cwd);
  }
  throw new Error(`sd ${args.join(" ")} did not fail`);
}

function assertUserError(e: unknown, kind: "usage" | "failed", includes: string, what: string) {
  assert(e instanceof UserError, `${what}: ${e} is not a UserError`);
  assertEquals(e.kind, kind, `${what}: ${e.message}`);
  assert(e.message.includes(includes), `${what}: "${includes}" in "${e.message}"`);
  assert(!describeError(e).includes("unexpected"), `${what}: ${describeError(e)}`);
}

Deno.test("every bad input of the CLI tests throws a UserError of kind usage", async () => {
  await withTmp(async (dir) => {
    Deno.writeTextFileSync(join(dir, "blocker"), "");
    const cases: [string[], string][] = [
      // With stdin a terminal, no arguments is a missing prompt (a pipe gives no jobs instead).
      ...BAD_INPUTS.map((
        [args, msg],
      ): [string[], string] => [args, args.length ? msg : "no prompt"]),
      [["tokens", "x", "--tokenizer", dir], "has no vocab.json and merges.txt"],
      [["fetch", "--weights", dir], "--weights names local files, which have nothing to fetch"],
      [
        ["fetch", "--tokenizer", dir],
        "--tokenizer names a local folder, which has nothing to fetch",
      ],
      [["fetch", "--config", dir], "--config names a local folder, which has nothing to fetch"],
      [["fetch", "--model", "sd9"], 'unknown model "sd9"'],
      [["a cat", "--lock", join(dir, "no.lock")], "cannot read the weights lock"],
      [["a cat", "--config", dir, "--weights", join(dir, "x.safetensors")], "no unet/config.json"],
    ];
    for (const [args, msg] of cases) {
      const e = await errorOf(dir, args);
      assertUserError(e, "usage", msg, `sd ${args.join(" ")}`);
      assertEquals(exitCodeOf(e), EXIT_USAGE);
    }
  });
});

Deno.test({
  name: "corrupt weights throw a UserError of kind failed, naming the file",
  ignore: !hasGpu,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withTmp(async (dir) => {
      const model = corruptTinyCopy(join(dir, "model"));
      const e = await errorOf(dir, ["a cat", ...TINY_ARGS.slice(2), "--weights", model, "-q"]);
      assertUserError(e, "failed", "diffusion_pytorch_model", "corrupt weights");
      assertEquals(exitCodeOf(e), EXIT_FAILED);
    });
  },
});

Deno.test("exit codes: usage 2, other user errors and bugs 1; file-system errors name the file", () => {
  assertEquals(exitCodeOf(new UsageError("x")), EXIT_USAGE);
  assertEquals(exitCodeOf(new UserError("x", { kind: "usage" })), EXIT_USAGE);
  assertEquals(exitCodeOf(new UserError("x")), EXIT_FAILED);
  assertEquals(exitCodeOf(new Error("x")), EXIT_FAILED);
  assert(describeError(new Error("x")).includes("unexpected: please report it"));
  assertEquals(describeError(new UserError("x; do y")), "sd: x; do y");
  const denied = fileError(
    new Deno.errors.PermissionDenied("Permission denied"),
    "cannot write",
    "a.png",
  );
  assertUserError(denied, "failed", "cannot write a.png: Permission denied", "fileError");
  const bug = new TypeError("x");
  assertEquals(fileError(bug, "cannot write", "a.png"), bug);
});
