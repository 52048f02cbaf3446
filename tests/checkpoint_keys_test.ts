/**
 * The single-file key table against the tiny fixture: `tiny-sd-single.fp16.safetensors` (made by
 * diffusers' conversion script from the same weights as `tiny-sd/`) must map onto exactly the keys
 * of `tiny-sd/{unet,vae,text_encoder}/*.fp16.safetensors`, with equal shapes after transforms and
 * byte-identical data.
 */

import { assert, assertEquals, assertThrows } from "../src/std/assert.ts";
import { SafeTensorsFile } from "../src/weights/safetensors.ts";
import { SD15_UNET, SD15_VAE } from "../src/models/config.ts";
import {
  type CheckpointComponent,
  type CheckpointKeyConfig,
  isIgnoredCheckpointKey,
  mapCheckpointKey,
  mapCheckpointKeys,
  shapeMismatchAdvice,
  transformedShape,
  UnknownCheckpointKeyError,
  unknownKeysAdvice,
} from "../src/weights/checkpoint_keys.ts";
import { fixture } from "./fixtures.ts";

async function tinyConfig(): Promise<CheckpointKeyConfig> {
  return {
    unet: JSON.parse(await Deno.readTextFile(fixture("tiny-sd/unet/config.json"))),
    vae: JSON.parse(await Deno.readTextFile(fixture("tiny-sd/vae/config.json"))),
  };
}

/** SD 1.5's numbering (https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5). */
const SD15: CheckpointKeyConfig = {
  unet: { ...SD15_UNET, mid_block_type: "UNetMidBlock2DCrossAttn" },
  vae: SD15_VAE,
};

const COMPONENT_FILES: Record<CheckpointComponent, string> = {
  unet: "tiny-sd/unet/diffusion_pytorch_model.fp16.safetensors",
  vae: "tiny-sd/vae/diffusion_pytorch_model.fp16.safetensors",
  text_encoder: "tiny-sd/text_encoder/model.fp16.safetensors",
};

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

Deno.test("tiny single file maps onto exactly the diffusers keys, shapes and bytes", async () => {
  const config = await tinyConfig();
  const single = await SafeTensorsFile.open(fixture("tiny-sd-single.fp16.safetensors"));
  const parts = Object.fromEntries(
    await Promise.all(
      Object.entries(COMPONENT_FILES).map(async (
        [c, p],
      ) => [c, await SafeTensorsFile.open(fixture(p))]),
    ),
  ) as Record<CheckpointComponent, SafeTensorsFile>;
  try {
    const mapping = mapCheckpointKeys(single.tensors.keys(), config, "tiny-sd-single");
    assertEquals(mapping.size, single.tensors.size, "every fixture key maps (none ignored)");

    const produced: Record<CheckpointComponent, Set<string>> = {
      unet: new Set(),
      vae: new Set(),
      text_encoder: new Set(),
    };
    let squeezed = 0;
    let compared = 0;
    for (const [key, target] of mapping) {
      produced[target.component].add(target.name);
      const src = single.tensors.get(key)!;
      const dst = parts[target.component].tensors.get(target.name);
      assert(dst, `${key} → ${target.component}/${target.name}: no such tensor`);
      assertEquals(
        transformedShape(src.shape, target.transform),
        dst.shape,
        `shape of ${key} → ${target.name}`,
      );
      assertEquals(src.dtype, dst.dtype, `dtype of ${key}`);
      if (target.transform) squeezed++;
      const [a, b] = await Promise.all([
        single.readRaw(key),
        parts[target.component].readRaw(target.name),
      ]);
      assert(bytesEqual(a, b), `data of ${key} differs from ${target.component}/${target.name}`);
      compared++;
    }
    for (const c of Object.keys(parts) as CheckpointComponent[]) {
      const expected = [...parts[c].tensors.keys()].sort();
      assertEquals([...produced[c]].sort(), expected, `key set of ${c}`);
    }
    // q, k, v, proj_out weights of the encoder's and the decoder's mid attention.
    assertEquals(squeezed, 8);
    assertEquals(compared, 981);
  } finally {
    single.close();
    for (const f of Object.values(parts)) f.close();
  }
});

Deno.test("SD 1.5 numbering: blocks, up/downsamplers, reversed VAE decoder, text prefix", () => {
  const cases: [string, string, string, string?][] = [
    ["model.diffusion_model.time_embed.0.weight", "unet", "time_embedding.linear_1.weight"],
    ["model.diffusion_model.input_blocks.0.0.bias", "unet", "conv_in.bias"],
    [
      "model.diffusion_model.input_blocks.2.0.in_layers.2.weight",
      "unet",
      "down_blocks.0.resnets.1.conv1.weight",
    ],
    [
      "model.diffusion_model.input_blocks.3.0.op.weight",
      "unet",
      "down_blocks.0.downsamplers.0.conv.weight",
    ],
    [
      "model.diffusion_model.input_blocks.4.0.skip_connection.bias",
      "unet",
      "down_blocks.1.resnets.0.conv_shortcut.bias",
    ],
    [
      "model.diffusion_model.input_blocks.8.1.transformer_blocks.0.attn2.to_k.weight",
      "unet",
      "down_blocks.2.attentions.1.transformer_blocks.0.attn2.to_k.weight",
    ],
    [
      "model.diffusion_model.input_blocks.11.0.emb_layers.1.weight",
      "unet",
      "down_blocks.3.resnets.1.time_emb_proj.weight",
    ],
    [
      "model.diffusion_model.middle_block.1.proj_in.weight",
      "unet",
      "mid_block.attentions.0.proj_in.weight",
    ],
    [
      "model.diffusion_model.middle_block.2.out_layers.3.bias",
      "unet",
      "mid_block.resnets.1.conv2.bias",
    ],
    [
      "model.diffusion_model.output_blocks.2.1.conv.weight",
      "unet",
      "up_blocks.0.upsamplers.0.conv.weight",
    ],
    [
      "model.diffusion_model.output_blocks.5.2.conv.bias",
      "unet",
      "up_blocks.1.upsamplers.0.conv.bias",
    ],
    [
      "model.diffusion_model.output_blocks.11.1.transformer_blocks.0.ff.net.0.proj.weight",
      "unet",
      "up_blocks.3.attentions.2.transformer_blocks.0.ff.net.0.proj.weight",
    ],
    ["model.diffusion_model.out.0.weight", "unet", "conv_norm_out.weight"],
    ["model.diffusion_model.out.2.bias", "unet", "conv_out.bias"],
    [
      "first_stage_model.encoder.down.3.block.1.norm2.weight",
      "vae",
      "encoder.down_blocks.3.resnets.1.norm2.weight",
    ],
    [
      "first_stage_model.encoder.down.0.downsample.conv.weight",
      "vae",
      "encoder.down_blocks.0.downsamplers.0.conv.weight",
    ],
    [
      "first_stage_model.decoder.up.3.block.2.conv1.weight",
      "vae",
      "decoder.up_blocks.0.resnets.2.conv1.weight",
    ],
    [
      "first_stage_model.decoder.up.3.upsample.conv.bias",
      "vae",
      "decoder.up_blocks.0.upsamplers.0.conv.bias",
    ],
    [
      "first_stage_model.decoder.up.0.block.0.nin_shortcut.weight",
      "vae",
      "decoder.up_blocks.3.resnets.0.conv_shortcut.weight",
    ],
    ["first_stage_model.decoder.norm_out.bias", "vae", "decoder.conv_norm_out.bias"],
    [
      "first_stage_model.encoder.mid.attn_1.proj_out.weight",
      "vae",
      "encoder.mid_block.attentions.0.to_out.0.weight",
      "squeeze_attn_1x1",
    ],
    [
      "first_stage_model.decoder.mid.attn_1.q.bias",
      "vae",
      "decoder.mid_block.attentions.0.to_q.bias",
    ],
    [
      "first_stage_model.decoder.mid.attn_1.norm.weight",
      "vae",
      "decoder.mid_block.attentions.0.group_norm.weight",
    ],
    ["first_stage_model.post_quant_conv.weight", "vae", "post_quant_conv.weight"],
    [
      "cond_stage_model.transformer.text_model.encoder.layers.11.mlp.fc2.bias",
      "text_encoder",
      "text_model.encoder.layers.11.mlp.fc2.bias",
    ],
    [
      "cond_stage_model.transformer.text_model.embeddings.position_ids",
      "text_encoder",
      "text_model.embeddings.position_ids",
    ],
    // Checkpoints saved with old transformers have no `text_model.` level.
    [
      "cond_stage_model.transformer.final_layer_norm.weight",
      "text_encoder",
      "text_model.final_layer_norm.weight",
    ],
  ];
  for (const [key, component, name, transform] of cases) {
    const expected = transform ? { component, name, transform } : { component, name };
    assertEquals(mapCheckpointKey(key, SD15), expected, key);
  }
});

Deno.test("ignored keys map to null; unknown keys are reported, all of them", () => {
  for (
    const k of [
      "alphas_cumprod",
      "betas",
      "posterior_mean_coef2",
      "model_ema.decay",
      "model_ema.diffusion_modelinput_blocks00weight",
      "first_stage_model.loss.logvar",
    ]
  ) {
    assert(isIgnoredCheckpointKey(k), k);
    assertEquals(mapCheckpointKey(k, SD15), null, k);
  }
  const unknown = [
    "model.diffusion_model.input_blocks.12.0.in_layers.0.weight", // past the last input block
    "model.diffusion_model.input_blocks.10.1.proj_in.weight", // down block 3 has no attention
    "model.diffusion_model.output_blocks.11.2.conv.weight", // no upsampler after the last block
    "model.diffusion_model.input_blocks.1.0.in_layers.1.weight", // not a parameter of a ResBlock
    "first_stage_model.decoder.up.0.upsample.conv.weight", // decoder.up.0 is the last: no upsample
    "first_stage_model.decoder.mid.attn_1.qkv.weight",
    "cond_stage_model.transformer.text_model.encoder.layers.0.self_attn.qkv.weight",
    "conditioner.embedders.0.transformer.text_model.final_layer_norm.weight", // SDXL
    "model.diffusion_model.label_emb.0.0.weight",
  ];
  for (const k of unknown) {
    assertThrows(() => mapCheckpointKey(k, SD15), "of no known SD 1.x component");
  }
  const err = assertThrows(
    () =>
      mapCheckpointKeys(
        ["model.diffusion_model.out.0.weight", "betas", ...unknown],
        SD15,
        "x.safetensors",
      ),
    "x.safetensors: 9 keys",
  );
  assert(err instanceof UnknownCheckpointKeyError);
  assertEquals(err.keys, unknown);
});

Deno.test("the mapping follows the config: a 3-block UNet with 1 layer per block", () => {
  const config: CheckpointKeyConfig = {
    unet: {
      layers_per_block: 1,
      block_out_channels: [8, 16, 16],
      down_block_types: ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
      up_block_types: ["CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"],
    },
    vae: { layers_per_block: 1, block_out_channels: [8, 16] },
  };
  const m = (k: string) => mapCheckpointKey(k, config)?.name;
  // input blocks: 0 conv_in, 1 res b0, 2 down b0, 3 res+attn b1, 4 down b1, 5 res+attn b2
  assertEquals(
    m("model.diffusion_model.input_blocks.2.0.op.weight"),
    "down_blocks.0.downsamplers.0.conv.weight",
  );
  assertEquals(
    m("model.diffusion_model.input_blocks.5.1.norm.weight"),
    "down_blocks.2.attentions.0.norm.weight",
  );
  // output blocks: 2 per block; block 0 attends, so its upsampler is in slot 2, block 1's in slot 1
  assertEquals(
    m("model.diffusion_model.output_blocks.1.2.conv.weight"),
    "up_blocks.0.upsamplers.0.conv.weight",
  );
  assertEquals(
    m("model.diffusion_model.output_blocks.3.1.conv.bias"),
    "up_blocks.1.upsamplers.0.conv.bias",
  );
  assertEquals(
    m("model.diffusion_model.output_blocks.5.0.out_layers.3.weight"),
    "up_blocks.2.resnets.1.conv2.weight",
  );
  assertEquals(
    m("first_stage_model.decoder.up.1.block.1.conv2.weight"),
    "decoder.up_blocks.0.resnets.1.conv2.weight",
  );
  assertThrows(() => m("model.diffusion_model.input_blocks.1.1.norm.weight"), "no known");
  assertThrows(() => m("model.diffusion_model.output_blocks.2.1.norm.weight"), "no known");
  assertThrows(() => m("first_stage_model.encoder.down.1.downsample.conv.weight"), "no known");
  assertThrows(
    () =>
      mapCheckpointKey("model.diffusion_model.out.0.weight", {
        ...config,
        unet: { ...config.unet, up_block_types: [] },
      }),
    "unsupported config",
  );
});

Deno.test("transformedShape squeezes only 1×1 kernels", () => {
  assertEquals(transformedShape([32, 32, 1, 1], "squeeze_attn_1x1"), [32, 32]);
  assertEquals(transformedShape([32, 32], "squeeze_attn_1x1"), [32, 32]);
  assertEquals(transformedShape([32, 32, 3, 3], undefined), [32, 32, 3, 3]);
  assertThrows(() => transformedShape([32, 32, 3, 3], "squeeze_attn_1x1"), "not a 1×1");
});

Deno.test("unknown keys: the first two, and what the file probably is (SDXL, SD 2.x, LoRA)", () => {
  const sdxl = new UnknownCheckpointKeyError(
    [
      "conditioner.embedders.0.transformer.text_model.final_layer_norm.weight",
      "conditioner.embedders.1.model.ln_final.weight",
      "model.diffusion_model.label_emb.0.0.weight",
    ],
    "xl.safetensors",
  );
  assertEquals(
    sdxl.message,
    "xl.safetensors: 3 keys of no known SD 1.x component (conditioner.embedders.0.transformer." +
      "text_model.final_layer_norm.weight, conditioner.embedders.1.model.ln_final.weight and 1 " +
      "more); it looks like an SDXL checkpoint, which sd does not support (it runs SD 1.x)",
  );
  assert(
    unknownKeysAdvice(["cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight"])
      .startsWith("it looks like an SD 2.x checkpoint"),
  );
  assertEquals(
    unknownKeysAdvice(["lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight"]),
    "it looks like a LoRA, not a checkpoint: pass it with --lora FILE",
  );
  assertEquals(unknownKeysAdvice(["something.else"]), "");
  assert(
    new UnknownCheckpointKeyError(["something.else"]).message.endsWith(
      "; sd reads SD 1.x checkpoints with the original (CompVis) key names",
    ),
  );
});

Deno.test("shape mismatch advice: SD 2.x / SDXL by cross-attention width, else --config", () => {
  const attn = (context: number) => [
    {
      key: "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight",
      found: [320, context],
    },
  ];
  assert(shapeMismatchAdvice(attn(1024)).startsWith("it looks like an SD 2.x model"));
  assert(shapeMismatchAdvice(attn(2048)).startsWith("it looks like an SDXL model"));
  const other = [{ key: "embeddings.token_embedding.weight", found: [49408, 32] }];
  assertEquals(
    shapeMismatchAdvice(other),
    "not SD 1.5's size: add --config DIR with this SD 1.x model's diffusers configs (SD 2.x and " +
      "SDXL are not supported)",
  );
  assert(shapeMismatchAdvice(other, "cfg").startsWith("give --config the folder of"));
});
