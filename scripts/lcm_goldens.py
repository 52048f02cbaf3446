#!/usr/bin/env python3
"""Goldens of diffusers' LCMScheduler for tests/lcm_scheduler_test.ts.

Writes `lcm-scheduler.safetensors` and `lcm-scheduler.json` into --out, in the style of the
shared `schedulers.{safetensors,json}`: the scheduler as an SD 1.5 pipeline builds it for the
LCM-LoRA recipe, `LCMScheduler.from_config(pipe.scheduler.config)` (SD 1.5's PNDM config), and

- `lcm.n{n}.timesteps` for n = 1, 2, 4, 6, 8 steps with the default `original_inference_steps`
  (50), and `lcm.orig{o}.n{n}.timesteps` with `set_timesteps(n, original_inference_steps=o)`;
- a 4-step and an 8-step loop (`lcm.loop{n}.…`) following `lcm.loop_rule` in the JSON: `x0`
  (the initial latents), and per step k `{k}.model_input`, `{k}.prev_sample`, `{k}.denoised`.
  One CPU generator seeded `lcm.seed` draws the initial latents and then, inside `step`, the
  noise injected between steps, as the pipelines pass their generator.

The model output is a fixed function of (model_input, t), `lcm.model_rule`, that the test
computes the same way. Timesteps are stored as F64, tensors as F32. The JSON's `header` names
this script, the diffusers source it ran and how that source was imported.

diffusers is not installed where this runs: --diffusers names the extracted source (the folder
holding `diffusers/`). The package is imported from there; if its imports need something absent
(Pillow, huggingface_hub…), `schedulers/scheduling_lcm.py` alone is loaded with the four small
helpers it imports reproduced here (config registration, `randn_tensor` for a CPU generator,
logging, the output base class) — the scheduler's own code is diffusers' either way.

Usage (torch and numpy needed; CPU is enough):
    python3 scripts/lcm_goldens.py --diffusers /tmp/diffusers-src/py --out tests/fixtures/
"""

import argparse
import functools
import hashlib
import importlib.util
import inspect
import json
import logging
import os
import re
import struct
import sys
import types

import numpy as np
import torch

# SD 1.5's scheduler/scheduler_config.json, field for field (scheduler/config.ts's
# SD15_SCHEDULER_CONFIG): what `pipe.scheduler.config` holds for the SD 1.5 repo.
SD15_SCHEDULER_CONFIG = {
    "_class_name": "PNDMScheduler",
    "_diffusers_version": "0.6.0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
    "clip_sample": False,
}

STEP_COUNTS = [1, 2, 4, 6, 8]
ORIGINAL_STEPS = [25, 100]  # besides the config's default (50)
LOOP_STEPS = [4, 8]
SEED = 100
SHAPE = (1, 4, 8, 8)
MODEL_RULE = "eps = 0.9 * model_input - t / 10000 (t the timestep, float32)"
LOOP_RULE = (
    "g = torch.Generator('cpu').manual_seed(seed); set_timesteps(n); "
    "x = torch.randn((1,4,8,8), generator=g) * init_noise_sigma; for k, t in enumerate(timesteps): "
    "xin = scale_model_input(x, t); eps = model_rule(xin, t); "
    "x, denoised = step(eps, t, x, generator=g, return_dict=False)"
)


def model_output(xin: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The stand-in for the UNet: MODEL_RULE."""
    return 0.9 * xin - t.to(torch.float32) / 10000.0


# --- loading diffusers' LCMScheduler ------------------------------------------------------------


def import_from_package(root: str):
    sys.path.insert(0, root)
    from diffusers.schedulers.scheduling_lcm import LCMScheduler  # noqa: E402

    def from_config(config: dict):
        return LCMScheduler.from_config(dict(config))

    return LCMScheduler, from_config


class _Config(dict):
    """diffusers' FrozenDict as the scheduler reads it: `self.config.name`."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError as e:
            raise AttributeError(name) from e


def _register_to_config(init):
    """diffusers' `@register_to_config`: every `__init__` argument, defaults applied, in `config`."""

    @functools.wraps(init)
    def wrapped(self, *args, **kwargs):
        bound = inspect.signature(init).bind(self, *args, **kwargs)
        bound.apply_defaults()
        config = dict(bound.arguments)
        config.pop("self")
        config.pop("kwargs", None)
        self._internal_dict = _Config(config)
        init(self, *args, **kwargs)

    return wrapped


class _ConfigMixin:
    config_name = "scheduler_config.json"

    @property
    def config(self):
        return self._internal_dict


def _randn_tensor(shape, generator=None, device=None, dtype=None, layout=None):
    """diffusers' `randn_tensor` for one CPU generator (or none) and a CPU tensor."""
    if isinstance(generator, list):
        raise NotImplementedError("a list of generators")
    return torch.randn(
        shape, generator=generator, device="cpu", dtype=dtype, layout=layout or torch.strided
    )


def import_isolated(root: str):
    """Loads schedulers/scheduling_lcm.py alone, its relative imports served by the stubs above."""
    pkg = "_diffusers_lcm_only"

    def module(name, **attrs):
        m = types.ModuleType(name)
        m.__path__ = []  # a package, so that relative imports below it resolve
        m.__dict__.update(attrs)
        sys.modules[name] = m
        return m

    module(pkg)
    module(f"{pkg}.configuration_utils", ConfigMixin=_ConfigMixin, register_to_config=_register_to_config)
    module(
        f"{pkg}.utils",
        BaseOutput=type("BaseOutput", (), {}),
        logging=types.SimpleNamespace(get_logger=logging.getLogger),
    )
    module(f"{pkg}.utils.torch_utils", randn_tensor=_randn_tensor)
    module(f"{pkg}.schedulers")
    module(f"{pkg}.schedulers.scheduling_utils", SchedulerMixin=type("SchedulerMixin", (), {}))
    path = os.path.join(root, "diffusers", "schedulers", "scheduling_lcm.py")
    spec = importlib.util.spec_from_file_location(f"{pkg}.schedulers.scheduling_lcm", path)
    lcm = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = lcm
    spec.loader.exec_module(lcm)
    LCMScheduler = lcm.LCMScheduler

    def from_config(config: dict):
        """diffusers' `ConfigMixin.from_config` for a plain dict: `__init__` takes the fields it
        names, the others stay in the config (`_class_name` renamed)."""
        init_keys = set(inspect.signature(LCMScheduler.__init__).parameters) - {"self", "kwargs"}
        init = {k: v for k, v in config.items() if k in init_keys}
        scheduler = LCMScheduler(**init)
        hidden = {k: v for k, v in config.items() if k not in init}
        if "_class_name" in hidden:
            hidden["_class_name"] = LCMScheduler.__name__
        scheduler._internal_dict = _Config({**scheduler.config, **hidden})
        return scheduler

    return LCMScheduler, from_config


def load(root: str, isolated: bool):
    if not isolated:
        try:
            return (*import_from_package(root), "package")
        except Exception as e:  # noqa: BLE001 — any failure of the full package: fall back
            reason = f"isolated (the package's import failed: {e})"
    else:
        reason = "isolated (--isolated)"
    return (*import_isolated(root), reason)


# --- writing ------------------------------------------------------------------------------------


def save_safetensors(tensors: dict, path: str, metadata: dict):
    """The safetensors format: u64 header size, JSON header (8-byte aligned), raw little-endian data."""
    dtypes = {np.dtype("float32"): "F32", np.dtype("float64"): "F64"}
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {
            "dtype": dtypes[array.dtype],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def diffusers_version(root: str) -> str:
    with open(os.path.join(root, "diffusers", "__init__.py")) as f:
        found = re.search(r'^__version__\s*=\s*"([^"]+)"', f.read(), re.M)
    return found.group(1) if found else "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--diffusers", default="/tmp/diffusers-src/py", help="folder holding diffusers/")
    ap.add_argument("--out", default="tests/fixtures/", help="output folder")
    ap.add_argument(
        "--snapshot", default="58eb52c0", help="the diffusers snapshot's name for the header "
        "(shared/reference/README.md: diffusers-src.tgz is snapshot 58eb52c0)"
    )
    ap.add_argument("--isolated", action="store_true", help="load scheduling_lcm.py alone")
    args = ap.parse_args()

    root = os.path.abspath(args.diffusers)
    source = os.path.join(root, "diffusers", "schedulers", "scheduling_lcm.py")
    if not os.path.isfile(source):
        sys.exit(f"{source} not found: extract diffusers-src.tgz and pass the folder holding diffusers/")
    torch.set_default_dtype(torch.float32)
    LCMScheduler, from_config, how = load(root, args.isolated)
    scheduler = from_config(SD15_SCHEDULER_CONFIG)
    assert type(scheduler).__name__ == "LCMScheduler"

    tensors = {}
    for original in [None, *ORIGINAL_STEPS]:
        for n in STEP_COUNTS:
            scheduler.set_timesteps(n, original_inference_steps=original)
            prefix = "lcm" if original is None else f"lcm.orig{original}"
            tensors[f"{prefix}.n{n}.timesteps"] = scheduler.timesteps.numpy().astype(np.float64)

    for n in LOOP_STEPS:
        g = torch.Generator("cpu").manual_seed(SEED)
        scheduler.set_timesteps(n)
        x = torch.randn(SHAPE, generator=g, dtype=torch.float32) * scheduler.init_noise_sigma
        tensors[f"lcm.loop{n}.x0"] = x.numpy().copy()
        tensors[f"lcm.loop{n}.timesteps"] = scheduler.timesteps.numpy().astype(np.float64)
        for k, t in enumerate(scheduler.timesteps):
            xin = scheduler.scale_model_input(x, t)
            eps = model_output(xin, t)
            x, denoised = scheduler.step(eps, t, x, generator=g, return_dict=False)
            tensors[f"lcm.loop{n}.{k}.model_input"] = xin.numpy().copy()
            tensors[f"lcm.loop{n}.{k}.prev_sample"] = x.numpy().copy()
            tensors[f"lcm.loop{n}.{k}.denoised"] = denoised.numpy().copy()
        assert x.dtype == torch.float32 and len(scheduler.timesteps) == n

    config = {k: v for k, v in dict(scheduler.config).items()}
    header = {
        "made_by": "scripts/lcm_goldens.py",
        "command": " ".join(["python3", *sys.argv]),
        "diffusers_version": diffusers_version(root),
        "diffusers_snapshot": args.snapshot,
        "diffusers_import": how,
        "scheduling_lcm.py_sha256": sha256(source),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "built_as": "LCMScheduler.from_config(SD 1.5's scheduler_config.json, a PNDM one)",
    }
    meta = {
        "header": header,
        "lcm.config": config,
        "lcm.init_noise_sigma": float(scheduler.init_noise_sigma),
        "lcm.step_counts": STEP_COUNTS,
        "lcm.original_inference_steps": ORIGINAL_STEPS,
        "lcm.loop_steps": LOOP_STEPS,
        "lcm.seed": SEED,
        "lcm.model_rule": MODEL_RULE,
        "lcm.loop_rule": LOOP_RULE,
    }
    os.makedirs(args.out, exist_ok=True)
    json_path = os.path.join(args.out, "lcm-scheduler.json")
    st_path = os.path.join(args.out, "lcm-scheduler.safetensors")
    with open(json_path, "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.write("\n")
    save_safetensors(tensors, st_path, {"made_by": "scripts/lcm_goldens.py", "see": "lcm-scheduler.json"})
    print(f"wrote {st_path} ({len(tensors)} tensors) and {json_path}; diffusers import: {how}")


if __name__ == "__main__":
    main()
