/**
 * The features fixture (`features/tiny-sd-features.{json,safetensors}`): its cases by kind and
 * its golden tensors.
 *
 * @module
 */

import { SafeTensorsFile } from "../src/safetensors.ts";
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
