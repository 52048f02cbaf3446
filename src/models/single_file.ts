/**
 * A single-file SD 1.x checkpoint (`v1-5-pruned-emaonly.safetensors` layout: original key names)
 * as three weight sources, through the one rename table of `src/weights/checkpoint_keys.ts`.
 *
 * @module
 */

import { SafeTensorsFile } from "../weights/safetensors.ts";
import {
  mapCheckpointKeys,
  shapeMismatchAdvice,
  transformedShape,
} from "../weights/checkpoint_keys.ts";
import type { ModelConfigs } from "./config.ts";
import type { WeightSource } from "./params.ts";
import { FLOAT_DTYPES, MappedSource } from "./sources.ts";

/**
 * Opens `path` and maps its keys to the unet, vae and text_encoder components; `configDir` is
 * where `configs` came from (`--config`; none: SD 1.5's), for the advice when shapes differ.
 */
export async function loadSingleFile(
  path: string,
  configs: ModelConfigs,
  configDir?: string,
): Promise<{ file: SafeTensorsFile; sources: Record<string, WeightSource> }> {
  const file = await SafeTensorsFile.open(path);
  const floatKeys = [...file.tensors.values()]
    .filter((t) => FLOAT_DTYPES.has(t.dtype))
    .map((t) => t.name);
  const mapped = mapCheckpointKeys(floatKeys, configs, path);
  const maps: Record<string, Map<string, { fileKey: string; shape: readonly number[] }>> = {
    unet: new Map(),
    vae: new Map(),
    text_encoder: new Map(),
  };
  for (const [fileKey, target] of mapped) {
    const name = target.component === "text_encoder"
      ? target.name.replace(/^text_model\./, "")
      : target.name;
    const shape = transformedShape(file.tensors.get(fileKey)!.shape, target.transform);
    maps[target.component].set(name, { fileKey, shape });
  }
  const sources: Record<string, WeightSource> = {};
  for (const [component, map] of Object.entries(maps)) {
    sources[component] = new MappedSource(
      path, // the component is named by the loader's messages
      file,
      map,
      (wrong) => shapeMismatchAdvice(wrong, configDir),
    );
  }
  return { file, sources };
}

/** conv_in's key in a single-file checkpoint (`model.diffusion_model.input_blocks.0.0.weight`). */
const CONV_IN_KEY = "model.diffusion_model.input_blocks.0.0.weight";

/**
 * The UNet's input channels of a single-file checkpoint, from conv_in's weight [320, C, 3, 3]:
 * 4 for a normal model, 9 for an inpainting one (a single file has no config to say so).
 */
export async function singleFileUNetInChannels(path: string): Promise<number> {
  const file = await SafeTensorsFile.open(path);
  try {
    const info = file.tensors.get(CONV_IN_KEY);
    if (!info || info.shape.length !== 4) {
      throw new Error(`${path}: no ${CONV_IN_KEY} [320, C, 3, 3]: not an SD 1.x checkpoint`);
    }
    return info.shape[1];
  } finally {
    file.close();
  }
}
