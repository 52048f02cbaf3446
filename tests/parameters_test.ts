/**
 * The PNG `parameters` text (`src/cli/parameters.ts`) in A1111's format.
 */

import { assert, assertEquals } from "../src/std/assert.ts";
import { formatParameters } from "../src/cli/parameters.ts";

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
