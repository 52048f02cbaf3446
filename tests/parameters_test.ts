/**
 * The PNG `parameters` text (`src/cli/parameters.ts`) in A1111's format.
 */

import { assert, assertEquals } from "../src/std/assert.ts";
import { formatParameters } from "../src/cli/parameters.ts";

/** The parameters of one image, as the tests vary them. */
const PARAMS = {
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

Deno.test("formatParameters: the text other SD tools read", () => {
  const p = PARAMS;
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

Deno.test("formatParameters: Clip skip when > 1, Emphasis: None for literal brackets", () => {
  const p = { ...PARAMS, prompt: "a (cat)" };
  const tail = (q: Partial<typeof p> & { clipSkip?: number; emphasis?: boolean }) =>
    formatParameters({ ...p, ...q }).split("Model: sd15, ")[1];
  assertEquals(tail({}), "Version: sd 0.1.0");
  assertEquals(tail({ clipSkip: 1, emphasis: true }), "Version: sd 0.1.0");
  assertEquals(tail({ clipSkip: 2 }), "Clip skip: 2, Version: sd 0.1.0");
  assertEquals(tail({ emphasis: false }), "Emphasis: None, Version: sd 0.1.0");
  assertEquals(tail({ emphasis: false, prompt: "a cat" }), "Version: sd 0.1.0");
});
