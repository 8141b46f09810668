"""Reading an nnU-Net v2 model folder: plans.json, dataset.json, fold_N/checkpoint_*.pth.

Checkpoints load with ``torch.load(weights_only=True)``. Real nnU-Net checkpoints keep numpy
scalars (and dtypes) in their ``logging`` entry, so an explicit allow-list of numpy scalar/dtype
reconstructors is passed through ``torch.serialization.safe_globals``; anything else that needs
pickle (a class, a function) is refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import InputError


@dataclass
class ModelFolder:
    """A parsed model folder. ``configuration`` is the plans' configuration dict (architecture in
    the new format), ``labels`` maps label value -> dataset.json name."""

    path: Path
    plans: dict
    dataset: dict
    configuration_name: str
    configuration: dict
    folds: list[str]
    checkpoint_name: str = "checkpoint_final.pth"
    labels: dict[int, str] = field(default_factory=dict)

    @property
    def transpose_forward(self) -> list[int]:
        return list(self.plans.get("transpose_forward", [0, 1, 2]))

    @property
    def transpose_backward(self) -> list[int]:
        return list(self.plans.get("transpose_backward", [0, 1, 2]))

    @property
    def patch_size(self) -> tuple[int, ...]:
        return tuple(int(p) for p in self.configuration["patch_size"])

    @property
    def spacing(self) -> tuple[float, ...]:
        return tuple(float(s) for s in self.configuration["spacing"])

    def checkpoint_path(self, fold: str) -> Path:
        return self.path / f"fold_{fold}" / self.checkpoint_name


def find_model_folder(path: Path) -> Path:
    """The folder holding plans.json: ``path`` itself or the single one below it (<= 3 levels)."""
    path = Path(path)
    if (path / "plans.json").is_file():
        return path
    found = sorted({p.parent for p in path.glob("*/plans.json")} | {p.parent for p in path.glob("*/*/plans.json")}
                   | {p.parent for p in path.glob("*/*/*/plans.json")})
    if not found:
        raise InputError(f"no nnU-Net model folder (plans.json) under {path}: give the folder that holds "
                         "plans.json, dataset.json and fold_N/")
    if len(found) > 1:
        raise InputError(f"several model folders under {path}: {', '.join(str(f) for f in found)}; give one of them")
    return found[0]


def _read_json(p: Path) -> dict:
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{p.name} missing in model folder {p.parent}") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{p} is not valid JSON ({e}); re-download or re-import the model") from None


def convert_old_architecture(conf: dict) -> dict:
    """Older plans (``UNet_class_name`` ...) to the ``architecture`` entry, as nnU-Net does."""
    if "architecture" in conf:
        return conf
    conf = dict(conf)
    name = conf.get("UNet_class_name")
    classes = {"PlainConvUNet": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
               "ResidualEncoderUNet": "dynamic_network_architectures.architectures.residual_unet.ResidualEncoderUNet"}
    if name not in classes:
        raise InputError(f"unknown architecture {name!r} in old-format plans: only PlainConvUNet and "
                         "ResidualEncoderUNet can be converted")
    n = len(conf["n_conv_per_stage_encoder"])
    dim = len(conf["patch_size"])
    blocks_key = "n_conv_per_stage" if name == "PlainConvUNet" else "n_blocks_per_stage"
    conf["architecture"] = {
        "network_class_name": classes[name],
        "arch_kwargs": {
            "n_stages": n,
            "features_per_stage": [min(conf["UNet_base_num_features"] * 2 ** i, conf["unet_max_num_features"])
                                   for i in range(n)],
            "conv_op": f"torch.nn.modules.conv.Conv{dim}d",
            "kernel_sizes": conf["conv_kernel_sizes"],
            "strides": conf["pool_op_kernel_sizes"],
            blocks_key: conf["n_conv_per_stage_encoder"],
            "n_conv_per_stage_decoder": conf["n_conv_per_stage_decoder"],
            "conv_bias": True,
            "norm_op": f"torch.nn.modules.instancenorm.InstanceNorm{dim}d",
            "norm_op_kwargs": {"eps": 1e-05, "affine": True},
            "dropout_op": None, "dropout_op_kwargs": None,
            "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True},
        },
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
    }
    return conf


def _configuration(plans: dict, name: str) -> dict:
    confs = plans.get("configurations", {})
    if name not in confs:
        raise InputError(f"configuration {name!r} not in plans.json (has {sorted(confs)})")
    conf = dict(confs[name])
    parent = conf.pop("inherits_from", None)
    if parent:
        base = _configuration(plans, parent)
        base.update(conf)
        conf = base
    return conf


def load_model_folder(path, folds=None, checkpoint_name: str = "checkpoint_final.pth",
                      configuration: str | None = None) -> ModelFolder:
    """Parse a model folder. ``folds``: list of fold names (default: every fold_N present with the
    checkpoint). The configuration comes from the first checkpoint's ``init_args`` unless given
    (then no checkpoint is opened here)."""
    path = find_model_folder(Path(path))
    plans = _read_json(path / "plans.json")
    dataset = _read_json(path / "dataset.json")
    if folds is None:
        folds = sorted(p.parent.name[5:] for p in path.glob(f"fold_*/{checkpoint_name}"))
    folds = [str(f) for f in folds]
    if not folds:
        raise InputError(f"no fold_N/{checkpoint_name} in {path}: the model is incomplete; re-import it")
    for f in folds:
        if not (path / f"fold_{f}" / checkpoint_name).is_file():
            raise InputError(f"fold_{f}/{checkpoint_name} missing in {path}")
    if configuration is None:
        ckpt = load_checkpoint(path / f"fold_{folds[0]}" / checkpoint_name)
        configuration = ckpt.get("init_args", {}).get("configuration") or "3d_fullres"
    conf = convert_old_architecture(_configuration(plans, configuration))
    labels = dataset.get("labels", {})
    if any(isinstance(v, (list, tuple)) for v in labels.values()):
        raise InputError("region-based nnU-Net models (labels with lists) are not supported yet")
    label_names = {int(v): str(k) for k, v in labels.items()}
    return ModelFolder(path, plans, dataset, configuration, conf, folds, checkpoint_name, label_names)


def _numpy_safe_globals() -> list:
    """numpy objects that nnU-Net checkpoints pickle in ``logging``: scalars, dtypes, small arrays."""
    import numpy as np

    out = [np.dtype, np.ndarray]
    try:
        from numpy._core import multiarray as ma  # numpy >= 2
    except ImportError:  # pragma: no cover
        from numpy.core import multiarray as ma
    out += [ma.scalar, ma._reconstruct]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        out += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")]
    return out


def load_checkpoint(path: Path) -> dict:
    """``torch.load(weights_only=True)`` with the numpy allow-list; clear errors otherwise."""
    import pickle
    import zipfile

    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint {path} not found")
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "global" not in str(e).lower():
            raise InputError(f"checkpoint {path} is corrupt (not a torch checkpoint: {str(e)[:80]}); "
                             "delete it and fetch or import the model again") from None
        msg = str(e).split("\n")
        detail = next((line.strip() for line in msg if "GLOBAL" in line or "Unsupported" in line), msg[0][:200])
        raise InputError(f"checkpoint {path.name} needs full pickle to load ({detail}); refused for safety "
                         "(weights_only=True). Use a checkpoint that holds only tensors and plain data.") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise InputError(f"checkpoint {path} is corrupt or truncated ({type(e).__name__}: {str(e)[:120]}); "
                         "delete it and fetch or import the model again") from None
    if not isinstance(ckpt, dict) or "network_weights" not in ckpt:
        raise InputError(f"{path} is not an nnU-Net checkpoint (no 'network_weights')")
    return ckpt


def clean_state_dict(weights: dict, expected_keys) -> dict:
    """Strip ``_orig_mod.``/``module.`` prefixes; fill the duplicated ``decoder.encoder.*`` entries
    from ``encoder.*`` when a checkpoint lacks them (and drop them when the network has none)."""
    out = {}
    for k, v in weights.items():
        for pre in ("_orig_mod.", "module."):
            if k.startswith(pre):
                k = k[len(pre):]
        out[k] = v
    expected = set(expected_keys)
    for k in expected - set(out):
        if k.startswith("decoder.encoder.") and k[len("decoder."):] in out:
            out[k] = out[k[len("decoder."):]]
    for k in set(out) - expected:
        if k.startswith("decoder.encoder."):
            del out[k]
    return out
