/**
 * The features fixture (`features/tiny-sd-features.{json,safetensors}`): its cases by kind and
 * its golden tensors.
 *
 * @module
 */

import { SafeTensorsFile } from "../src/weights/safetensors.ts";
import { existsSync } from "../src/std/fs.ts";
import { join } from "../src/std/path.ts";
import { fixture } from "./fixtures.ts";

/** One case of the features fixture (the JSON's fields; `cli` the `sd` arguments). */
export interface FeatureCase {
  key: string;
  kind: string;
  prompt: string;
  negative_prompt: string;
  width: number;
  height: number;
  cli: string[];
  [field: string]: unknown;
}

/** The cases of `kind` (e.g. "text"), in the fixture's order. */
export async function featureCases(kind: string): Promise<FeatureCase[]> {
  const meta = JSON.parse(await Deno.readTextFile(fixture("features/tiny-sd-features.json")));
  return (meta.cases as FeatureCase[]).filter((c) => c.kind === kind);
}

/** The golden tensors (close it after use). */
export function featureGolden(): Promise<SafeTensorsFile> {
  return SafeTensorsFile.open(fixture("features/tiny-sd-features.safetensors"));
}

/**
 * A case's `sd` arguments with its paths (relative to `features/` in the JSON) made absolute: an
 * option's value that names a file or folder there.
 */
export function featureCli(c: { cli: readonly string[] }): string[] {
  const base = fixture("features");
  return c.cli.map((arg, i) =>
    i > 0 && c.cli[i - 1].startsWith("--") && existsSync(join(base, arg)) ? join(base, arg) : arg
  );
}
