/**
 * The layers shared by CLIP, the UNet and the VAE, each declaring its parameters under the
 * checkpoint's names (`weight`, `bias`) and running on the ops of `src/ops/`.
 *
 * @module
 */

import type { Tensor } from "../gpu/tensor.ts";
import { attention } from "../ops/attention.ts";
import { conv2d, prepareConv } from "../ops/conv2d.ts";
import { variants } from "../ops/variants.ts";
import { linear } from "../ops/linear.ts";
import { unary } from "../ops/elementwise.ts";
import { groupNorm } from "../ops/groupnorm.ts";
import { layerNorm } from "../ops/layernorm.ts";
import { nchwToNlc, nlcToNchw } from "../ops/layout.ts";
import type { ConvModule, Param, VarBuilder } from "./params.ts";

/** Called with each probed module's output (tests bisect mismatches with it). */
export type Probe = (module: string, t: Tensor) => void;

/** `torch.nn.Linear`. */
export class Linear {
  readonly weight: Param;
  readonly bias: Param | null;
  constructor(vs: VarBuilder, inF: number, outF: number, bias = true) {
    this.weight = vs.param("weight", [outF, inF]);
    this.bias = bias ? vs.param("bias", [outF]) : null;
  }

  /** x [..., in] → [..., out]. */
  forward(
    x: Tensor,
    opts: { activation?: "none" | "gelu" | "quick_gelu" | "silu"; residual?: Tensor } = {},
  ): Tensor {
    return linear(x, this.weight.t, this.bias?.t ?? null, opts);
  }
}

/** `torch.nn.Conv2d` with square kernels. */
export class Conv2d implements ConvModule {
  readonly weight: Param;
  readonly bias: Param;
  #directDropped = false;
  constructor(
    vs: VarBuilder,
    inC: number,
    outC: number,
    readonly kernel: number,
    readonly stride: 1 | 2 = 1,
    readonly padding: number | [number, number, number, number] = kernel === 3 ? 1 : 0,
  ) {
    this.weight = vs.param("weight", [outC, inC, kernel, kernel]);
    this.bias = vs.param("bias", [outC]);
    vs.store.convs.push(this);
  }

  /** 3×3, stride 1, padding 1. */
  get winogradEligible(): boolean {
    return this.kernel === 3 && this.stride === 1 && this.padding === 1;
  }

  prepareWinograd(): void {
    if (this.winogradEligible && this.weight.loaded) prepareConv(this.weight.t);
  }

  dropDirectWeight(): void {
    if (!this.winogradEligible || this.#directDropped || !this.weight.loaded) return;
    this.weight.t.destroy();
    this.#directDropped = true;
  }

  /** x [B, C, H, W] → [B, O, H', W'], optionally + residual. */
  forward(x: Tensor, residual?: Tensor): Tensor {
    if (this.#directDropped && variants(x.gpu).conv === "direct") {
      throw new Error(
        `${this.weight.key}: the 3×3 filter was replaced by its Winograd transform at load; load with --conv direct to run direct convolution`,
      );
    }
    return conv2d(x, this.weight.t, this.bias.t, {
      stride: this.stride,
      padding: this.padding,
      residual,
    });
  }
}

/** `torch.nn.GroupNorm`, optionally fused with the SiLU that follows it. */
export class GroupNorm {
  readonly weight: Param;
  readonly bias: Param;
  constructor(vs: VarBuilder, readonly groups: number, channels: number, readonly eps: number) {
    this.weight = vs.param("weight", [channels]);
    this.bias = vs.param("bias", [channels]);
  }

  /** Normalizes x [B, C, ...]; `silu` applies SiLU after the affine. */
  forward(x: Tensor, silu = false): Tensor {
    return groupNorm(x, this.groups, this.weight.t, this.bias.t, this.eps, { silu });
  }

  /**
   * SiLU(norm(x)), fused — unless `probe` is given: it then sees the normalized tensor under
   * `name` (before the separate SiLU), as diffusers' `conv_norm_out` hook does.
   */
  forwardSilu(x: Tensor, probe: Probe | undefined, name: string): Tensor {
    if (!probe) return this.forward(x, true);
    const n = this.forward(x, false);
    probe(name, n);
    return unary("silu", n);
  }
}

/** `torch.nn.LayerNorm` over the last dim. */
export class LayerNorm {
  readonly weight: Param;
  readonly bias: Param;
  constructor(vs: VarBuilder, channels: number, readonly eps: number) {
    this.weight = vs.param("weight", [channels]);
    this.bias = vs.param("bias", [channels]);
  }

  /** x [..., C] → same shape. */
  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight.t, this.bias.t, this.eps);
  }
}

/**
 * diffusers' `Attention` (to_q, to_k, to_v, to_out.0) on token-major tensors. SD's UNet
 * attention has no q/k/v biases; the VAE's has them.
 */
export class Attention {
  readonly to_q: Linear;
  readonly to_k: Linear;
  readonly to_v: Linear;
  readonly to_out: Linear;
  #kv: { context: Tensor; k: Tensor; v: Tensor } | null = null;
  constructor(
    vs: VarBuilder,
    queryDim: number,
    contextDim: number,
    readonly heads: number,
    qkvBias: boolean,
  ) {
    this.to_q = new Linear(vs.pp("to_q"), queryDim, queryDim, qkvBias);
    this.to_k = new Linear(vs.pp("to_k"), contextDim, queryDim, qkvBias);
    this.to_v = new Linear(vs.pp("to_v"), contextDim, queryDim, qkvBias);
    this.to_out = new Linear(vs.pp("to_out").pp(0), queryDim, queryDim);
  }

  /**
   * x [B, N, C], context [B, M, Cc] (self-attention when absent) → [B, N, C] (+ residual).
   * Cross-attention's K and V depend only on the text states, which stay the same for every
   * denoising step: they are computed once per context tensor and kept until
   * {@linkcode clearContextCache} (or another context).
   */
  forward(x: Tensor, context?: Tensor, residual?: Tensor): Tensor {
    const q = this.to_q.forward(x);
    let k: Tensor, v: Tensor;
    if (context) {
      if (this.#kv?.context !== context) {
        this.clearContextCache();
        this.#kv = {
          context,
          k: this.to_k.forward(context).pin(),
          v: this.to_v.forward(context).pin(),
        };
      }
      ({ k, v } = this.#kv);
    } else {
      k = this.to_k.forward(x);
      v = this.to_v.forward(x);
    }
    const o = attention(q, k, v, this.heads);
    return this.to_out.forward(o, { residual });
  }

  /** Releases the cached cross-attention K and V. */
  clearContextCache(): void {
    this.#kv?.k.release();
    this.#kv?.v.release();
    this.#kv = null;
  }
}

/**
 * The VAE mid-block's single-head spatial attention: GroupNorm, q/k/v over H·W tokens,
 * output projection and the residual connection.
 */
export class SpatialAttention {
  readonly group_norm: GroupNorm;
  readonly attn: Attention;
  constructor(vs: VarBuilder, channels: number, groups: number, eps: number) {
    this.group_norm = new GroupNorm(vs.pp("group_norm"), groups, channels, eps);
    this.attn = new Attention(vs, channels, channels, 1, true);
  }

  /** x [B, C, H, W] → same shape. */
  forward(x: Tensor): Tensor {
    const [, , h, w] = x.shape;
    const tokens = nchwToNlc(this.group_norm.forward(x));
    const residual = nchwToNlc(x);
    return nlcToNchw(this.attn.forward(tokens, undefined, residual), h, w);
  }
}
