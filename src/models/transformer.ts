/**
 * diffusers' `Transformer2DModel` with `BasicTransformerBlock`s as SD 1.x uses them: GroupNorm
 * (eps 1e-6), 1×1 `proj_in`, per token: self-attention, cross-attention on the text states and
 * a GEGLU feed-forward (each after a LayerNorm, each with a residual), 1×1 `proj_out` + residual.
 *
 * @module
 */

import { scope, type Tensor } from "../gpu/tensor.ts";
import { geglu, linear } from "../ops/linear.ts";
import { nchwToNlc, nlcToNchw } from "../ops/layout.ts";
import { Attention, Conv2d, GroupNorm, LayerNorm, Linear } from "./nn.ts";
import type { Param, VarBuilder } from "./params.ts";

/** `FeedForward` with GEGLU: `net.0.proj` [2·4C, C] then `net.2` [C, 4C]. */
export class FeedForward {
  readonly proj_w: Param;
  readonly proj_b: Param;
  readonly out: Linear;
  constructor(vs: VarBuilder, dim: number, mult = 4) {
    const inner = dim * mult;
    const proj = vs.pp("net").pp(0).pp("proj");
    this.proj_w = proj.param("weight", [2 * inner, dim]);
    this.proj_b = proj.param("bias", [2 * inner]);
    this.out = new Linear(vs.pp("net").pp(2), inner, dim);
  }

  /** x [B, N, C] → [B, N, C] + residual. */
  forward(x: Tensor, residual: Tensor): Tensor {
    return this.out.forward(geglu(x, this.proj_w.t, this.proj_b.t), { residual });
  }
}

/** `BasicTransformerBlock` (norm1/attn1, norm2/attn2, norm3/ff). */
export class BasicTransformerBlock {
  readonly norm1: LayerNorm;
  readonly attn1: Attention;
  readonly norm2: LayerNorm;
  readonly attn2: Attention;
  readonly norm3: LayerNorm;
  readonly ff: FeedForward;
  constructor(vs: VarBuilder, dim: number, heads: number, contextDim: number) {
    this.norm1 = new LayerNorm(vs.pp("norm1"), dim, 1e-5);
    this.attn1 = new Attention(vs.pp("attn1"), dim, dim, heads, false);
    this.norm2 = new LayerNorm(vs.pp("norm2"), dim, 1e-5);
    this.attn2 = new Attention(vs.pp("attn2"), dim, contextDim, heads, false);
    this.norm3 = new LayerNorm(vs.pp("norm3"), dim, 1e-5);
    this.ff = new FeedForward(vs.pp("ff"), dim);
  }

  /** x [B, N, C], context [B, 77, Cc]. */
  forward(x: Tensor, context: Tensor): Tensor {
    return scope(() => {
      let h = this.attn1.forward(this.norm1.forward(x), undefined, x);
      h = this.attn2.forward(this.norm2.forward(h), context, h);
      return this.ff.forward(this.norm3.forward(h), h);
    });
  }
}

/** `Transformer2DModel` (use_linear_projection false: 1×1 conv projections). */
export class Transformer2DModel {
  readonly norm: GroupNorm;
  readonly proj_in: Conv2d | Linear;
  readonly transformer_blocks: BasicTransformerBlock[] = [];
  readonly proj_out: Conv2d | Linear;
  constructor(
    vs: VarBuilder,
    channels: number,
    heads: number,
    contextDim: number,
    groups: number,
    readonly linearProjection: boolean,
    layers = 1,
  ) {
    this.norm = new GroupNorm(vs.pp("norm"), groups, channels, 1e-6);
    this.proj_in = linearProjection
      ? new Linear(vs.pp("proj_in"), channels, channels)
      : new Conv2d(vs.pp("proj_in"), channels, channels, 1);
    for (let i = 0; i < layers; i++) {
      this.transformer_blocks.push(
        new BasicTransformerBlock(vs.pp("transformer_blocks").pp(i), channels, heads, contextDim),
      );
    }
    this.proj_out = linearProjection
      ? new Linear(vs.pp("proj_out"), channels, channels)
      : new Conv2d(vs.pp("proj_out"), channels, channels, 1);
  }

  /** x [B, C, H, W], context [B, 77, Cc] → [B, C, H, W]. */
  forward(x: Tensor, context: Tensor): Tensor {
    const [, , h, w] = x.shape;
    return scope(() => {
      const normed = this.norm.forward(x);
      let t: Tensor;
      if (this.proj_in instanceof Linear) t = this.proj_in.forward(nchwToNlc(normed));
      else {
        // The 1×1 conv as a matmul on the token-major layout (the same two dispatches as conv +
        // transpose, with the faster GEMM kernel): W [C, C, 1, 1] viewed as [C, C].
        const w = this.proj_in.weight.t;
        t = linear(nchwToNlc(normed), w.reshape([w.shape[0], w.shape[1]]), this.proj_in.bias.t);
      }
      for (const block of this.transformer_blocks) t = block.forward(t, context);
      if (this.proj_out instanceof Linear) {
        return nlcToNchw(this.proj_out.forward(t, { residual: nchwToNlc(x) }), h, w);
      }
      return this.proj_out.forward(nlcToNchw(t, h, w), x);
    });
  }
}
