/**
 * diffusers' `ResnetBlock2D`, `Downsample2D` and `Upsample2D` as SD 1.x uses them (UNet and VAE).
 *
 * @module
 */

import { scope, type Tensor } from "../gpu/tensor.ts";
import { addChannelBias } from "../ops/elementwise.ts";
import { upsampleNearest2x } from "../ops/layout.ts";
import { Conv2d, GroupNorm, Linear } from "./nn.ts";
import type { VarBuilder } from "./params.ts";

/**
 * `ResnetBlock2D` (time_embedding_norm "default", output_scale_factor 1):
 * h = conv1(SiLU(norm1(x))) (+ time_emb_proj(SiLU(temb)));  h = conv2(SiLU(norm2(h)));
 * out = shortcut(x) + h, with the residual add fused into conv2's epilogue.
 */
export class ResnetBlock2D {
  readonly norm1: GroupNorm;
  readonly conv1: Conv2d;
  readonly time_emb_proj: Linear | null;
  readonly norm2: GroupNorm;
  readonly conv2: Conv2d;
  readonly conv_shortcut: Conv2d | null;

  constructor(
    vs: VarBuilder,
    inC: number,
    outC: number,
    groups: number,
    eps: number,
    tembC: number | null,
  ) {
    this.norm1 = new GroupNorm(vs.pp("norm1"), groups, inC, eps);
    this.conv1 = new Conv2d(vs.pp("conv1"), inC, outC, 3);
    this.time_emb_proj = tembC ? new Linear(vs.pp("time_emb_proj"), tembC, outC) : null;
    this.norm2 = new GroupNorm(vs.pp("norm2"), groups, outC, eps);
    this.conv2 = new Conv2d(vs.pp("conv2"), outC, outC, 3);
    this.conv_shortcut = inC !== outC ? new Conv2d(vs.pp("conv_shortcut"), inC, outC, 1) : null;
  }

  /** x [B, C, H, W]; `tembAct` = SiLU(temb) [B, T] (shared by every block of a UNet call). */
  forward(x: Tensor, tembAct?: Tensor): Tensor {
    // Intermediates are released as soon as they are consumed (not only at the scope's end):
    // at the VAE's 512×512 stage each is 134 MB in f32.
    return scope(() => {
      const n1 = this.norm1.forward(x, true);
      let h = this.conv1.forward(n1);
      n1.release();
      if (this.time_emb_proj && tembAct) {
        const withTime = addChannelBias(h, this.time_emb_proj.forward(tembAct));
        h.release();
        h = withTime;
      }
      const n2 = this.norm2.forward(h, true);
      h.release();
      const shortcut = this.conv_shortcut ? this.conv_shortcut.forward(x) : x;
      return this.conv2.forward(n2, shortcut);
    });
  }
}

/** `Downsample2D` with a conv: stride 2, padding 1 (UNet) or (0,1,0,1) then padding 0 (VAE). */
export class Downsample2D {
  readonly conv: Conv2d;
  constructor(vs: VarBuilder, channels: number, padding: number) {
    this.conv = new Conv2d(
      vs.pp("conv"),
      channels,
      channels,
      3,
      2,
      padding === 0 ? [0, 1, 0, 1] : padding,
    );
  }

  /** [B, C, H, W] → [B, C, H/2, W/2]. */
  forward(x: Tensor): Tensor {
    return this.conv.forward(x);
  }
}

/** `Upsample2D`: nearest 2× then a 3×3 conv. */
export class Upsample2D {
  readonly conv: Conv2d;
  constructor(vs: VarBuilder, channels: number) {
    this.conv = new Conv2d(vs.pp("conv"), channels, channels, 3);
  }

  /**
   * [B, C, H, W] → [B, C, 2H, 2W], or to `size` (2H − 1 rows and/or 2W − 1 columns: the skip
   * connection's size when the latents were not divisible, as diffusers' `upsample_size`).
   */
  forward(x: Tensor, size?: readonly [number, number]): Tensor {
    return this.conv.forward(upsampleNearest2x(x, size));
  }
}
