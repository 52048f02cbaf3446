#!/usr/bin/env python3
"""Reference outputs of diffusers for tiny-sd at sizes whose latent sides are odd (issue 17).

Where a latent side is odd at some UNet level, diffusers' up-blocks upsample to the skip
connection's size (`upsample_size` in `unet_2d_condition.py`). This script records, for tiny-sd
at W×H = 200×136 (latent 25×17) and 136×72 (latent 17×9), in f32 on the CPU:

- `odd.{W}x{H}.text.uncond_cond` [2, 77, 32]: the text states ([negative, prompt]);
- `odd.{W}x{H}.unet.x` [1, 4, h, w] (torch.randn, seed 7) and `odd.{W}x{H}.unet.t951.out`
  [2, 4, h, w]: the UNet on cat([x, x]) at t = 951, with `.unet.t951.probe.up_blocks.{i}` and
  `.probe.down_blocks.{i}` for bisecting;
- `odd.{W}x{H}.pipe.latents_in`, `.pipe.timesteps`, `.pipe.image` [H, W, 3]: a DDIM 4-step
  text-to-image run (guidance 7.5, seed 11) through `StableDiffusionPipeline`, output_type "np";
- when PIL is installed: `resize.src` (a 40×30 RGB pattern, values 0–255) and
  `resize.lanczos.{W}x{H}` = `Image.resize((W, H), Image.LANCZOS)` of it, for src/image.ts.

and `odd-size-golden.json` with the cases (prompt, negative prompt, seed, steps, sizes).

Needs torch and transformers; diffusers comes from its source tarball (no install):

    python3 scripts/odd_size_goldens.py \
        --fixtures ../shared/fixtures --diffusers ../shared/reference/diffusers-src.tgz \
        --out tests/fixtures

diffusers imports PIL at module level; without PIL a stub module is put in its place (only the
resize golden needs the real one).
"""

import argparse
import json
import os
import sys
import tarfile
import tempfile
import types

SIZES = [(200, 136), (136, 72)]
PROMPT = "a lighthouse on a cliff at dusk"
NEGATIVE = "blurry"
UNET_SEED = 7
PIPE_SEED = 11
PIPE_STEPS = 4
GUIDANCE = 7.5


def stub_pil():
    """A stand-in for PIL good enough for diffusers' import-time uses (no image is touched).

    Every attribute is a dummy class, so annotations (`PIL.Image.Image | None`, `Union[...]`) and
    `isinstance` checks work; calling one returns it.
    """
    import importlib.machinery

    class Dummy(type):
        def __getattr__(cls, name):
            if name.startswith("__"):
                raise AttributeError(name)
            return Dummy(name, (), {})

        def __call__(cls, *a, **k):
            return cls

    class StubModule(types.ModuleType):
        def __getattr__(self, name):
            if name.startswith("__"):
                raise AttributeError(name)
            return Dummy(name, (), {})

    def module(name):
        m = StubModule(name)
        m.__spec__ = importlib.machinery.ModuleSpec(name, None)
        m.__path__ = []
        sys.modules[name] = m
        return m

    pil = module("PIL")
    pil.__version__ = "10.0.0"
    for sub in ["Image", "ImageOps", "ImageDraw", "ImageFont", "PngImagePlugin", "ImageFilter"]:
        setattr(pil, sub, module(f"PIL.{sub}"))


def import_diffusers(tgz):
    dest = os.path.join(tempfile.gettempdir(), "diffusers-src")
    if not os.path.isdir(os.path.join(dest, "py", "diffusers")):
        os.makedirs(dest, exist_ok=True)
        with tarfile.open(tgz) as t:
            t.extractall(dest)
    sys.path.insert(0, os.path.join(dest, "py"))
    try:
        import PIL.Image  # noqa: F401

        have_pil = True
    except ImportError:
        stub_pil()
        have_pil = False
    import diffusers  # noqa: F401

    return have_pil


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fixtures", default="../shared/fixtures", help="folder holding tiny-sd/")
    ap.add_argument("--diffusers", default="../shared/reference/diffusers-src.tgz")
    ap.add_argument("--out", default="tests/fixtures", help="where the golden files go")
    args = ap.parse_args()

    import torch
    from safetensors.torch import save_file
    from transformers import CLIPTextModel, CLIPTokenizer

    have_pil = import_diffusers(args.diffusers)
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model = os.path.join(args.fixtures, "tiny-sd")
    unet = UNet2DConditionModel.from_pretrained(os.path.join(model, "unet")).eval()
    vae = AutoencoderKL.from_pretrained(os.path.join(model, "vae")).eval()
    text_encoder = CLIPTextModel.from_pretrained(os.path.join(model, "text_encoder")).eval()
    tokenizer = CLIPTokenizer.from_pretrained(os.path.join(model, "tokenizer"))
    scheduler = DDIMScheduler.from_pretrained(os.path.join(model, "scheduler"))
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)

    out = {}
    cases = []
    with torch.no_grad():
        cond, uncond = pipe.encode_prompt(PROMPT, "cpu", 1, True, NEGATIVE)
        context = torch.cat([uncond, cond])
        for w, h in SIZES:
            key = f"odd.{w}x{h}"
            out[f"{key}.text.uncond_cond"] = context.clone()
            x = torch.randn(
                (1, 4, h // 8, w // 8), generator=torch.Generator("cpu").manual_seed(UNET_SEED)
            )
            probes = {}
            hooks = []
            for kind in ["down_blocks", "up_blocks"]:
                for i, block in enumerate(getattr(unet, kind)):

                    def hook(_m, _inp, output, name=f"{kind}.{i}"):
                        probes[name] = (output[0] if isinstance(output, tuple) else output).clone()

                    hooks.append(block.register_forward_hook(hook))
            eps = unet(torch.cat([x, x]), 951, encoder_hidden_states=context).sample
            for hk in hooks:
                hk.remove()
            out[f"{key}.unet.x"] = x
            out[f"{key}.unet.t951.out"] = eps
            for name, t in probes.items():
                out[f"{key}.unet.t951.probe.{name}"] = t

            generator = torch.Generator("cpu").manual_seed(PIPE_SEED)
            latents_in = torch.randn((1, 4, h // 8, w // 8), generator=generator)
            generator = torch.Generator("cpu").manual_seed(PIPE_SEED)
            timesteps = []

            def on_step(_pipe, _i, t, kw):
                timesteps.append(float(t))
                return kw

            image = pipe(
                PROMPT,
                negative_prompt=NEGATIVE,
                height=h,
                width=w,
                num_inference_steps=PIPE_STEPS,
                guidance_scale=GUIDANCE,
                generator=generator,
                output_type="np",
                callback_on_step_end=on_step,
            ).images[0]
            out[f"{key}.pipe.latents_in"] = latents_in
            out[f"{key}.pipe.timesteps"] = torch.tensor(timesteps, dtype=torch.float64)
            out[f"{key}.pipe.image"] = torch.from_numpy(image.copy()).float()
            cases.append(
                {
                    "key": key,
                    "width": w,
                    "height": h,
                    "scheduler": "ddim",
                    "steps": PIPE_STEPS,
                    "guidance_scale": GUIDANCE,
                    "seed": PIPE_SEED,
                    "unet_seed": UNET_SEED,
                }
            )

    resize = []
    if have_pil:
        import numpy as np
        from PIL import Image

        sw, sh = 40, 30
        yy, xx = np.mgrid[0:sh, 0:sw]
        src = np.stack([(xx * 255) // (sw - 1), (yy * 255) // (sh - 1), (xx * yy * 7) % 256], -1)
        src = src.astype(np.uint8)
        out["resize.src"] = torch.from_numpy(src.astype(np.float32))
        for w, h in [(64, 48), (24, 40), (40, 30)]:
            lanczos = getattr(Image, "Resampling", Image).LANCZOS
            img = Image.fromarray(src, "RGB").resize((w, h), lanczos)
            out[f"resize.lanczos.{w}x{h}"] = torch.from_numpy(np.asarray(img).astype(np.float32))
            resize.append([w, h])

    os.makedirs(args.out, exist_ok=True)
    save_file(
        {k: v.contiguous() for k, v in out.items()},
        os.path.join(args.out, "odd-size-golden.safetensors"),
    )
    meta = {
        "model": "tiny-sd",
        "prompt": PROMPT,
        "negative_prompt": NEGATIVE,
        "cases": cases,
        "resize": resize,
        "torch": torch.__version__,
        "diffusers": __import__("diffusers").__version__,
        "pil": have_pil,
    }
    with open(os.path.join(args.out, "odd-size-golden.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(f"wrote {len(out)} tensors to {args.out}/odd-size-golden.safetensors (PIL: {have_pil})")


if __name__ == "__main__":
    main()
