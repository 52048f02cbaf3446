/**
 * `CLIPTextModel` (transformers): token + position embeddings, pre-LayerNorm transformer layers
 * with causal self-attention and a quick-GELU MLP, final LayerNorm → `last_hidden_state`; with
 * clip skip N, the final LayerNorm of the N-th hidden state from the end instead (A1111's
 * numbering: 1 = the last layer; diffusers' `clip_skip = N − 1`).
 * Keys are the file's without its `text_model.` prefix (`encoder.layers.0.mlp.fc1.weight`).
 *
 * @module
 */

import { UserError } from "../errors.ts";
import type { DType } from "../gpu/device.ts";
import { scope, type Tensor } from "../gpu/tensor.ts";
import { attention } from "../ops/attention.ts";
import { embedding } from "../ops/layout.ts";
import type { ClipTextConfig } from "./config.ts";
import { LayerNorm, Linear } from "./nn.ts";
import { type Param, ParamStore, type VarBuilder } from "./params.ts";

class ClipLayer {
  readonly layer_norm1: LayerNorm;
  readonly q_proj: Linear;
  readonly k_proj: Linear;
  readonly v_proj: Linear;
  readonly out_proj: Linear;
  readonly layer_norm2: LayerNorm;
  readonly fc1: Linear;
  readonly fc2: Linear;

  constructor(vs: VarBuilder, readonly c: ClipTextConfig) {
    const d = c.hidden_size, eps = c.layer_norm_eps;
    const attn = vs.pp("self_attn");
    this.layer_norm1 = new LayerNorm(vs.pp("layer_norm1"), d, eps);
    this.q_proj = new Linear(attn.pp("q_proj"), d, d);
    this.k_proj = new Linear(attn.pp("k_proj"), d, d);
    this.v_proj = new Linear(attn.pp("v_proj"), d, d);
    this.out_proj = new Linear(attn.pp("out_proj"), d, d);
    this.layer_norm2 = new LayerNorm(vs.pp("layer_norm2"), d, eps);
    this.fc1 = new Linear(vs.pp("mlp").pp("fc1"), d, c.intermediate_size);
    this.fc2 = new Linear(vs.pp("mlp").pp("fc2"), c.intermediate_size, d);
  }

  forward(x: Tensor): Tensor {
    return scope(() => {
      const h = this.layer_norm1.forward(x);
      const a = attention(
        this.q_proj.forward(h),
        this.k_proj.forward(h),
        this.v_proj.forward(h),
        this.c.num_attention_heads,
        { causal: true },
      );
      const r = this.out_proj.forward(a, { residual: x });
      const m = this.fc1.forward(this.layer_norm2.forward(r), { activation: this.c.hidden_act });
      return this.fc2.forward(m, { residual: r });
    });
  }
}

/** The CLIP text encoder of SD 1.x. */
export class ClipTextModel {
  readonly store: ParamStore;
  readonly token_embedding: Param;
  readonly position_embedding: Param;
  readonly layers: ClipLayer[] = [];
  readonly final_layer_norm: LayerNorm;

  constructor(readonly config: ClipTextConfig, dtype: DType) {
    const c = config;
    this.store = new ParamStore("text_encoder", dtype);
    const vs = this.store.root();
    const emb = vs.pp("embeddings");
    this.token_embedding = emb.pp("token_embedding").param("weight", [c.vocab_size, c.hidden_size]);
    this.position_embedding = emb.pp("position_embedding").param("weight", [
      c.max_position_embeddings,
      c.hidden_size,
    ]);
    for (let i = 0; i < c.num_hidden_layers; i++) {
      this.layers.push(new ClipLayer(vs.pp("encoder").pp("layers").pp(i), c));
    }
    this.final_layer_norm = new LayerNorm(
      vs.pp("final_layer_norm"),
      c.hidden_size,
      c.layer_norm_eps,
    );
  }

  /**
   * ids [B·77] (row-major [B, 77]) → last_hidden_state [B, 77, hidden], or with `clipSkip` N > 1
   * `final_layer_norm(hidden_states[−N])`: the output of layer L − N + 1 of L.
   *
   * @throws {UserError} (usage) for a clip skip outside 1 … L
   */
  forward(ids: Uint32Array, batch: number, clipSkip = 1): Tensor {
    const layers = this.layers.length;
    if (!Number.isInteger(clipSkip) || clipSkip < 1 || clipSkip > layers) {
      throw new UserError(
        `--clip-skip ${clipSkip} is out of range: this text encoder has ${layers} layers; use 1 (the last, default) to ${layers}`,
        { kind: "usage" },
      );
    }
    this.store.restore(); // after an offload (see StableDiffusion)
    return scope(() => {
      const len = ids.length / batch;
      let x = embedding(ids, [batch, len], this.token_embedding.t, this.position_embedding.t);
      for (const layer of this.layers.slice(0, layers - clipSkip + 1)) x = layer.forward(x);
      return this.final_layer_norm.forward(x);
    });
  }
}
