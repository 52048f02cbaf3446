/**
 * `UNet2DConditionModel` of SD 1.x, built from its `config.json`; parameter paths are the
 * checkpoint keys (`down_blocks.0.resnets.1.conv1.weight`).
 *
 * @module
 */

import { UserError } from "../errors.ts";
import type { DType, Gpu } from "../gpu/device.ts";
import { scope, Tensor } from "../gpu/tensor.ts";
import { unary } from "../ops/elementwise.ts";
import { concatChannels } from "../ops/layout.ts";
import type { UNetConfig } from "./config.ts";
import { Conv2d, GroupNorm, Linear, type Probe } from "./nn.ts";
import { ParamStore, type VarBuilder } from "./params.ts";
import { Downsample2D, ResnetBlock2D, Upsample2D } from "./resnet.ts";
import { Transformer2DModel } from "./transformer.ts";

interface Block {
  resnets: ResnetBlock2D[];
  attentions: Transformer2DModel[];
  sampler: Downsample2D | Upsample2D | null;
}

/**
 * Sinusoidal timestep features as diffusers' `get_timestep_embedding`: half = dim/2,
 * freq_i = exp(−ln(10000)·i/(half − shift)), [sin, cos] or [cos, sin] with flip_sin_to_cos.
 */
export function timestepFeatures(
  t: number,
  dim: number,
  flipSinToCos: boolean,
  shift: number,
): Float32Array {
  const half = dim / 2;
  const out = new Float32Array(dim);
  for (let i = 0; i < half; i++) {
    // torch computes the exponent and the product in f32.
    const freq = Math.fround(Math.exp(Math.fround((-Math.log(10000) * i) / (half - shift))));
    const arg = Math.fround(t * freq);
    const s = Math.sin(arg), c = Math.cos(arg);
    out[i] = flipSinToCos ? c : s;
    out[half + i] = flipSinToCos ? s : c;
  }
  return out;
}

/** The SD 1.x UNet. */
export class UNet {
  readonly store: ParamStore;
  readonly conv_in: Conv2d;
  readonly time_linear_1: Linear;
  readonly time_linear_2: Linear;
  readonly down_blocks: Block[] = [];
  readonly mid_resnets: ResnetBlock2D[];
  readonly mid_attention: Transformer2DModel;
  readonly up_blocks: Block[] = [];
  readonly conv_norm_out: GroupNorm;
  readonly conv_out: Conv2d;

  constructor(readonly config: UNetConfig, dtype: DType) {
    const c = config;
    this.store = new ParamStore("unet", dtype);
    const vs = this.store.root();
    const ch = c.block_out_channels;
    const tembC = ch[0] * 4;
    const groups = c.norm_num_groups, eps = c.norm_eps;
    const heads = (i: number) =>
      Array.isArray(c.attention_head_dim) ? c.attention_head_dim[i] : c.attention_head_dim;
    const transformer = (v: VarBuilder, channels: number, i: number) =>
      new Transformer2DModel(
        v,
        channels,
        heads(i),
        c.cross_attention_dim,
        groups,
        c.use_linear_projection,
        c.transformer_layers_per_block,
      );

    this.conv_in = new Conv2d(vs.pp("conv_in"), c.in_channels, ch[0], 3);
    this.time_linear_1 = new Linear(vs.pp("time_embedding").pp("linear_1"), ch[0], tembC);
    this.time_linear_2 = new Linear(vs.pp("time_embedding").pp("linear_2"), tembC, tembC);

    let out = ch[0];
    c.down_block_types.forEach((type, i) => {
      const v = vs.pp("down_blocks").pp(i);
      const inC = out;
      out = ch[i];
      const last = i === ch.length - 1;
      const hasAttn = type === "CrossAttnDownBlock2D";
      if (!hasAttn && type !== "DownBlock2D") throw new UserError(`unsupported down block ${type}`);
      const block: Block = { resnets: [], attentions: [], sampler: null };
      for (let j = 0; j < c.layers_per_block; j++) {
        const rin = j === 0 ? inC : out;
        block.resnets.push(new ResnetBlock2D(v.pp("resnets").pp(j), rin, out, groups, eps, tembC));
        if (hasAttn) block.attentions.push(transformer(v.pp("attentions").pp(j), out, i));
      }
      if (!last) {
        block.sampler = new Downsample2D(v.pp("downsamplers").pp(0), out, c.downsample_padding);
      }
      this.down_blocks.push(block);
    });

    const midC = ch[ch.length - 1];
    const mv = vs.pp("mid_block");
    this.mid_resnets = [0, 1].map((j) =>
      new ResnetBlock2D(mv.pp("resnets").pp(j), midC, midC, groups, eps, tembC)
    );
    this.mid_attention = transformer(mv.pp("attentions").pp(0), midC, ch.length - 1);

    const rev = [...ch].reverse();
    const revHeads = (i: number) => ch.length - 1 - i;
    let prev = rev[0];
    c.up_block_types.forEach((type, i) => {
      const v = vs.pp("up_blocks").pp(i);
      const outC = rev[i];
      const inC = rev[Math.min(i + 1, ch.length - 1)];
      const last = i === ch.length - 1;
      const hasAttn = type === "CrossAttnUpBlock2D";
      if (!hasAttn && type !== "UpBlock2D") throw new UserError(`unsupported up block ${type}`);
      const block: Block = { resnets: [], attentions: [], sampler: null };
      for (let j = 0; j < c.layers_per_block + 1; j++) {
        const skip = j === c.layers_per_block ? inC : outC;
        const rin = j === 0 ? prev : outC;
        block.resnets.push(
          new ResnetBlock2D(v.pp("resnets").pp(j), rin + skip, outC, groups, eps, tembC),
        );
        if (hasAttn) {
          block.attentions.push(transformer(v.pp("attentions").pp(j), outC, revHeads(i)));
        }
      }
      if (!last) block.sampler = new Upsample2D(v.pp("upsamplers").pp(0), outC);
      prev = outC;
      this.up_blocks.push(block);
    });

    this.conv_norm_out = new GroupNorm(vs.pp("conv_norm_out"), groups, ch[0], eps);
    this.conv_out = new Conv2d(vs.pp("conv_out"), ch[0], c.out_channels, 3);
  }

  /** Releases the cross-attention K/V computed from the last text states (see `Attention`). */
  clearContextCache(): void {
    const blocks = [...this.down_blocks, ...this.up_blocks];
    const transformers = [...blocks.flatMap((b) => b.attentions), this.mid_attention];
    for (const t of transformers) {
      for (const b of t.transformer_blocks) b.attn2.clearContextCache();
    }
  }

  /** The time embedding input for timestep `t` and batch `batch`, on the GPU. */
  timestepInput(gpu: Gpu, t: number, batch: number): Tensor {
    const dim = this.config.block_out_channels[0];
    const f = timestepFeatures(t, dim, this.config.flip_sin_to_cos, this.config.freq_shift);
    const data = new Float32Array(batch * dim);
    for (let b = 0; b < batch; b++) data.set(f, b * dim);
    return Tensor.from(gpu, data, [batch, dim], this.store.dtype, { label: "timestep" });
  }

  /**
   * The noise prediction for `sample` [B, 4, h, w] at timestep `t` with text states
   * `context` [B, 77, C]. `probe` receives every block's output (slower: unfused norm_out).
   */
  forward(sample: Tensor, t: number, context: Tensor, probe?: Probe): Tensor {
    const gpu = sample.gpu;
    return scope(() => {
      const B = sample.shape[0];
      const temb = this.time_linear_2.forward(
        this.time_linear_1.forward(this.timestepInput(gpu, t, B), { activation: "silu" }),
      );
      probe?.("time_embedding", temb);
      const tembAct = unary("silu", temb);

      let x = this.conv_in.forward(sample);
      probe?.("conv_in", x);
      const skips: Tensor[] = [x];
      this.down_blocks.forEach((block, i) => {
        const name = `down_blocks.${i}`;
        block.resnets.forEach((resnet, j) => {
          x = resnet.forward(x, tembAct);
          probe?.(`${name}.resnets.${j}`, x);
          if (block.attentions[j]) {
            x = block.attentions[j].forward(x, context);
            probe?.(`${name}.attentions.${j}`, x);
          }
          skips.push(x);
        });
        if (block.sampler) {
          x = block.sampler.forward(x);
          probe?.(`${name}.downsamplers.0`, x);
          skips.push(x);
        }
        probe?.(name, x);
      });

      x = this.mid_resnets[0].forward(x, tembAct);
      x = this.mid_attention.forward(x, context);
      x = this.mid_resnets[1].forward(x, tembAct);
      probe?.("mid_block", x);

      this.up_blocks.forEach((block, i) => {
        const name = `up_blocks.${i}`;
        block.resnets.forEach((resnet, j) => {
          const skip = skips.pop()!;
          x = scope(() => resnet.forward(concatChannels(x, skip), tembAct));
          probe?.(`${name}.resnets.${j}`, x);
          if (block.attentions[j]) {
            x = block.attentions[j].forward(x, context);
            probe?.(`${name}.attentions.${j}`, x);
          }
        });
        if (block.sampler) {
          // The next skip connection's size (diffusers' forward_upsample_size).
          const next = skips.at(-1)!.shape;
          x = (block.sampler as Upsample2D).forward(x, [next[2], next[3]]);
          probe?.(`${name}.upsamplers.0`, x);
        }
        probe?.(name, x);
      });

      const out = this.conv_out.forward(this.conv_norm_out.forwardSilu(x, probe, "conv_norm_out"));
      probe?.("conv_out", out);
      return out;
    });
  }
}
