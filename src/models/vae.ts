/**
 * `AutoencoderKL` of SD 1.x: the decoder (latents → image) and the encoder (image → latent
 * mean/log-variance, for image-to-image). Built from `vae/config.json`; keys as in the checkpoint.
 *
 * Precision: diffusers runs this VAE in f32 even in f16 pipelines (`force_upcast: true`) because
 * its decoder overflows f16; the pipeline follows that flag.
 *
 * @module
 */

import { bytesOf, type DType } from "../gpu/device.ts";
import { scope, type Tensor } from "../gpu/tensor.ts";
import { sliceChannels } from "../ops/slice.ts";
import type { VaeConfig } from "./config.ts";
import { Conv2d, GroupNorm, type Probe, SpatialAttention } from "./nn.ts";
import { ParamStore, type VarBuilder } from "./params.ts";
import { Downsample2D, ResnetBlock2D, Upsample2D } from "./resnet.ts";

const EPS = 1e-6;

/** `UNetMidBlock2D`: resnet, single-head attention, resnet. */
class MidBlock {
  readonly resnets: ResnetBlock2D[];
  readonly attention: SpatialAttention | null;
  constructor(vs: VarBuilder, c: number, groups: number, withAttention: boolean) {
    this.resnets = [0, 1].map((j) =>
      new ResnetBlock2D(vs.pp("resnets").pp(j), c, c, groups, EPS, null)
    );
    this.attention = withAttention
      ? new SpatialAttention(vs.pp("attentions").pp(0), c, groups, EPS)
      : null;
  }

  forward(x: Tensor): Tensor {
    return scope(() => {
      let h = this.resnets[0].forward(x);
      if (this.attention) h = this.attention.forward(h);
      return this.resnets[1].forward(h);
    });
  }
}

interface Stage {
  resnets: ResnetBlock2D[];
  sampler: Downsample2D | Upsample2D | null;
}

/** The decoder (`decoder.*`) with `post_quant_conv`. */
class Decoder {
  readonly conv_in: Conv2d;
  readonly mid_block: MidBlock;
  readonly up_blocks: Stage[] = [];
  readonly conv_norm_out: GroupNorm;
  readonly conv_out: Conv2d;

  constructor(vs: VarBuilder, c: VaeConfig) {
    const ch = c.block_out_channels, g = c.norm_num_groups;
    const rev = [...ch].reverse();
    this.conv_in = new Conv2d(vs.pp("conv_in"), c.latent_channels, rev[0], 3);
    this.mid_block = new MidBlock(vs.pp("mid_block"), rev[0], g, c.mid_block_add_attention);
    let prev = rev[0];
    rev.forEach((out, i) => {
      const v = vs.pp("up_blocks").pp(i);
      const stage: Stage = { resnets: [], sampler: null };
      for (let j = 0; j < c.layers_per_block + 1; j++) {
        stage.resnets.push(
          new ResnetBlock2D(v.pp("resnets").pp(j), j === 0 ? prev : out, out, g, EPS, null),
        );
      }
      if (i < rev.length - 1) stage.sampler = new Upsample2D(v.pp("upsamplers").pp(0), out);
      prev = out;
      this.up_blocks.push(stage);
    });
    this.conv_norm_out = new GroupNorm(vs.pp("conv_norm_out"), g, ch[0], EPS);
    this.conv_out = new Conv2d(vs.pp("conv_out"), ch[0], c.out_channels, 3);
  }

  forward(z: Tensor, probe?: Probe): Tensor {
    // Each activation is released as soon as the next exists (at 512×512 one is 67–134 MB in
    // f16), and the pool's buffers of the previous resolution are freed at each upsampling.
    const gpu = z.gpu;
    let x = this.conv_in.forward(z);
    probe?.("decoder.conv_in", x);
    x = replace(x, this.mid_block.forward(x));
    probe?.("decoder.mid_block", x);
    this.up_blocks.forEach((stage, i) => {
      if (i > 0) gpu.trimPool();
      for (const r of stage.resnets) x = replace(x, r.forward(x));
      if (stage.sampler) x = replace(x, stage.sampler.forward(x));
      probe?.(`decoder.up_blocks.${i}`, x);
    });
    const out = this.conv_out.forward(
      this.conv_norm_out.forwardSilu(x, probe, "decoder.conv_norm_out"),
    );
    probe?.("decoder.conv_out", out);
    return out;
  }
}

/** Releases `old` (a finished activation) and returns `next`. */
function replace(old: Tensor, next: Tensor): Tensor {
  old.release();
  return next;
}

/** The encoder (`encoder.*`) with `quant_conv`. */
class Encoder {
  readonly conv_in: Conv2d;
  readonly down_blocks: Stage[] = [];
  readonly mid_block: MidBlock;
  readonly conv_norm_out: GroupNorm;
  readonly conv_out: Conv2d;

  constructor(vs: VarBuilder, c: VaeConfig) {
    const ch = c.block_out_channels, g = c.norm_num_groups;
    this.conv_in = new Conv2d(vs.pp("conv_in"), c.in_channels, ch[0], 3);
    let prev = ch[0];
    ch.forEach((out, i) => {
      const v = vs.pp("down_blocks").pp(i);
      const stage: Stage = { resnets: [], sampler: null };
      for (let j = 0; j < c.layers_per_block; j++) {
        stage.resnets.push(
          new ResnetBlock2D(v.pp("resnets").pp(j), j === 0 ? prev : out, out, g, EPS, null),
        );
      }
      if (i < ch.length - 1) stage.sampler = new Downsample2D(v.pp("downsamplers").pp(0), out, 0);
      prev = out;
      this.down_blocks.push(stage);
    });
    const top = ch[ch.length - 1];
    this.mid_block = new MidBlock(vs.pp("mid_block"), top, g, c.mid_block_add_attention);
    this.conv_norm_out = new GroupNorm(vs.pp("conv_norm_out"), g, top, EPS);
    this.conv_out = new Conv2d(vs.pp("conv_out"), top, 2 * c.latent_channels, 3);
  }

  forward(image: Tensor): Tensor {
    let x = this.conv_in.forward(image);
    for (const stage of this.down_blocks) {
      x = scope(() => {
        let h = x;
        for (const r of stage.resnets) h = r.forward(h);
        return stage.sampler ? stage.sampler.forward(h) : h;
      });
    }
    x = this.mid_block.forward(x);
    return this.conv_out.forward(this.conv_norm_out.forward(x, true));
  }
}

/** The SD 1.x VAE. */
export class Vae {
  readonly store: ParamStore;
  readonly decoder: Decoder;
  readonly encoder: Encoder;
  readonly post_quant_conv: Conv2d | null;
  readonly quant_conv: Conv2d | null;

  constructor(readonly config: VaeConfig, dtype: DType) {
    this.store = new ParamStore("vae", dtype);
    const vs = this.store.root();
    const lc = config.latent_channels;
    this.encoder = new Encoder(vs.pp("encoder"), config);
    this.decoder = new Decoder(vs.pp("decoder"), config);
    this.quant_conv = config.use_quant_conv
      ? new Conv2d(vs.pp("quant_conv"), 2 * lc, 2 * lc, 1)
      : null;
    this.post_quant_conv = config.use_post_quant_conv
      ? new Conv2d(vs.pp("post_quant_conv"), lc, lc, 1)
      : null;
  }

  /**
   * Bytes of the largest activation of one image `height` × `width` (multiples of 8) through the
   * decoder — and the encoder, with `encoder` — in the VAE's dtype: a kernel binds each whole, so
   * this is what must fit the device's storage-binding limit. The decoder's largest is an
   * upsampler's output (SD's 256 channels at 512×512) or its last level's; the encoder's its first
   * level's.
   */
  largestActivationBytes(height: number, width: number, encoder: boolean): number {
    const ch = this.config.block_out_channels, rev = [...ch].reverse();
    const h = height / 8, w = width / 8, n = ch.length;
    let most = 0;
    // Decoder: up block i works at 2^i × the latent size; its upsampler writes 2^(i+1).
    rev.forEach((c, i) => {
      const s = 2 ** (i < n - 1 ? i + 1 : i);
      most = Math.max(most, c * h * s * w * s);
    });
    if (encoder) {
      ch.forEach((c, i) => {
        const s = 2 ** (n - 1 - i);
        most = Math.max(most, c * h * s * w * s);
      });
    }
    return most * bytesOf(this.store.dtype);
  }

  /** `vae.decode(z)`: z [B, 4, h, w] (already divided by scaling_factor) → image [B, 3, 8h, 8w] in [-1, 1]. */
  decode(z: Tensor, probe?: Probe): Tensor {
    return scope(() => {
      let x = z;
      if (this.post_quant_conv) {
        x = this.post_quant_conv.forward(x);
        probe?.("post_quant_conv", x);
      }
      return this.decoder.forward(x, probe);
    });
  }

  /** `vae.encode(image).latent_dist`: image [B, 3, H, W] in [-1, 1] → { mean, logvar } [B, 4, H/8, W/8]. */
  encode(image: Tensor): { mean: Tensor; logvar: Tensor } {
    if (!this.encoder.conv_in.weight.loaded) {
      throw new Error("the VAE encoder was not loaded: load the model with { vaeEncoder: true }");
    }
    return scope(() => {
      let moments = this.encoder.forward(image);
      if (this.quant_conv) moments = this.quant_conv.forward(moments);
      const lc = this.config.latent_channels;
      const mean = sliceChannels(moments, 0, lc);
      const logvar = sliceChannels(moments, lc, lc, { clampMin: -30, clampMax: 20 });
      return { mean, logvar };
    });
  }
}
