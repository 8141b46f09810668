"""Run an nnU-Net v2 model folder on a ``Volume`` (RAS) and return a named label ``Volume``.

Steps (same as nnU-Net's predictor): optional reorientation of the array to RAS-canonical axes
(axis permutations and flips only, never resampling: TotalSegmentator feeds its models
nibabel's ``as_closest_canonical`` volumes; other models get the array as SimpleITK reads the
file, i.e. our [k, j, i] order), transpose_forward, crop to non-zero, normalisation, resampling
to the plans' spacing (torch, on the device), sliding window with the plans' patch size and
nnU-Net's Gaussian map, optional mirroring, fold averaging, logits resampled back (order 1,
torch), argmax, paste into the crop box, transpose back, undo the reorientation.

Precision: the network runs in fp32 on the CPU (never autocast there) and under fp16/bf16
autocast on CUDA. Logits are accumulated in float16 like nnU-Net (``accumulate_dtype``), on the
device when they fit in GPU memory, else on the CPU. The export resamples a few classes at a
time and keeps a running argmax, so memory stays bounded for 100+ classes.

Probabilities (optional, ``return_probabilities``): the softmax of the order-1 resampled float32
logits for the chosen classes, accumulated in the same export loop (online log-sum-exp over the
class chunks, ``export.ClassSoftmax``), pasted into the crop box (outside it: probability 1 for
background, 0 for the other classes, as nnU-Net's export) and brought back to the input grid
exactly like the labels. The labels are the same whether or not probabilities are asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import InputError
from ...progress import Progress
from ...volume import Volume, ras_canonical_plan
from ...volume import reorient_array as _reorient
from ...volume import unreorient_array as _unreorient
from . import model_folder as mf
from .export import ClassSoftmax, argmax_linear_export, linear_plan
from .network import build_network
from .preprocess import crop_to_nonzero, normalize
from .resample import compute_new_shape, resample_to_shape
from .sliding_window import predict_logits


@dataclass
class EngineOptions:
    device: str | None = None          # "cpu" | "cuda" | "cuda:1"; None: CUDA when available
    folds: list | None = None          # None: all folds present
    step: float = 0.5                  # tile step as a fraction of the patch (TotalSegmentator: 0.8)
    mirror: bool = False               # mirroring TTA on the checkpoint's allowed axes
    batch_size: int | None = None      # tiles per forward pass (None: default_batch_size)
    autocast: str = "fp16"             # CUDA only: "fp16" | "bf16" | "none"
    accumulate: str = "float16"        # logits accumulator dtype ("float16" as nnU-Net, or "float32")
    orientation: str | None = None     # "RAS": feed RAS-canonical axes; None: the volume's [k, j, i]
    checkpoint_name: str = "checkpoint_final.pth"
    export_chunk: int = 8              # classes resampled together in the export
    fast_export: bool = True           # interpolate-based order-1 export (export.py)
    threads: int | None = None         # torch CPU threads (None: leave as is)


SMALL_PATCH_VOXELS = 64 ** 3  # below this, batching tiles pays on the CPU (ENGINE_NOTES: 106 -> 14 ms per 32^3)


def default_batch_size(device_type: str, patch_size) -> int:
    """Tiles per forward pass: on the CPU batching helps small patches only (a 96^3 tile of a
    5-stage U-Net ran 1.35 s alone vs 1.9 s per tile in batches of 4 on 2 cores); on CUDA 2."""
    if device_type == "cuda":
        return 2
    return 4 if int(np.prod(patch_size)) <= SMALL_PATCH_VOXELS else 1


def _torch_device(name):
    import torch

    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError("CUDA was requested but no CUDA GPU is available to torch; use --device cpu")
    return dev


class Engine:
    """A loaded model folder: network + fold weights, ready to run on volumes."""

    def __init__(self, folder, options: EngineOptions | None = None):
        import torch

        self.options = options or EngineOptions()
        self.device = _torch_device(self.options.device)
        self.model = mf.load_model_folder(folder, self.options.folds, self.options.checkpoint_name)
        n_in = len(self.model.dataset.get("channel_names", self.model.dataset.get("modality", {"0": "CT"})))
        n_out = len(self.model.labels)
        self.network = build_network(self.model.configuration, n_in, n_out).to(self.device)
        expected = self.network.state_dict().keys()
        self.fold_weights, self.mirror_axes = [], None
        for f in self.model.folds:
            ckpt = mf.load_checkpoint(self.model.checkpoint_path(f))
            self.fold_weights.append(mf.clean_state_dict(ckpt["network_weights"], expected))
            if self.mirror_axes is None:
                self.mirror_axes = ckpt.get("inference_allowed_mirroring_axes")
        try:
            self.network.load_state_dict(self.fold_weights[0])
        except RuntimeError as e:
            raise InputError(f"checkpoint does not match the plans' network: {str(e)[:300]}") from None
        self.n_in = n_in
        del torch

    # ------------------------------------------------------------------------------------------
    def class_index(self, name, label_map: dict | None = None) -> int:
        """Class value of ``name``: a dataset.json class name, its name mapped through
        ``label_map``, or an int class value. Raises InputError for a class the model lacks."""
        if isinstance(name, (int, np.integer)) and int(name) in self.model.labels:
            return int(name)
        mapped = {**{n: v for v, n in self.model.labels.items()},
                  **{(label_map or {}).get(n, n): v for v, n in self.model.labels.items()}}
        if name not in mapped:
            raise InputError(f"the model has no class {name!r}; its classes: "
                             f"{', '.join(n for v, n in sorted(self.model.labels.items()))}")
        return int(mapped[name])

    def predict_array(self, arr: np.ndarray, spacing, progress=None, return_probabilities=None):
        """Label array (same shape as ``arr``) for an array in the model's input axis order
        (nnU-Net's: as SimpleITK reads a file, spacing per array axis in mm).

        return_probabilities: optional class values (ints); then returns (labels,
        {value: float32 array in [0, 1], same shape as ``arr``}), the softmax probability of
        each class on the input grid (see the module docstring)."""
        import torch

        with torch.inference_mode():
            return self._predict_array(arr, spacing, progress, return_probabilities)

    def _predict_array(self, arr, spacing, progress, return_probabilities=None):
        import torch

        opt, model = self.options, self.model
        prog = Progress(progress) if not isinstance(progress, Progress) else progress
        if opt.threads:
            torch.set_num_threads(opt.threads)
        data = np.asarray(arr)[None] if np.asarray(arr).ndim == 3 else np.asarray(arr)
        if data.shape[0] != self.n_in:
            raise InputError(f"model expects {self.n_in} input channel(s), got {data.shape[0]}")
        tf, tb = model.transpose_forward, model.transpose_backward
        data = data.transpose([0] + [t + 1 for t in tf]).astype(np.float32, copy=False)
        spacing_t = [float(spacing[t]) for t in tf]
        shape_before_crop = data.shape[1:]
        prog(0.0, "preprocessing")
        data, nonzero, bbox = crop_to_nonzero(data)
        shape_cropped = data.shape[1:]
        conf = model.configuration
        target = list(model.spacing)
        if len(target) < len(shape_cropped):
            target = [spacing_t[0]] + target
        new_shape = compute_new_shape(shape_cropped, spacing_t, target)
        data = normalize(data, conf["normalization_schemes"],
                         model.plans.get("foreground_intensity_properties_per_channel", {}),
                         conf.get("use_mask_for_norm"), nonzero)
        dkw = conf.get("resampling_fn_data_kwargs", {}) or {}
        x = torch.from_numpy(data).to(self.device)
        x = resample_to_shape(x, new_shape, spacing_t, target, order=dkw.get("order", 3),
                              order_z=dkw.get("order_z", 0), force_separate_z=dkw.get("force_separate_z"))
        x = x.float().contiguous()
        prog(0.05, "preprocessed")
        # results on the device when the float16 logits fit comfortably, else on the CPU
        n_cls = len(model.labels)
        need = 2 * (n_cls + 1) * int(np.prod([max(a, b) for a, b in zip(x.shape[1:], model.patch_size)]))
        results_device = self.device
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            if need > 0.5 * free:
                results_device = torch.device("cpu")
        autocast = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(opt.autocast)
        acc_dtype = torch.float16 if opt.accumulate == "float16" else torch.float32
        bs = opt.batch_size or default_batch_size(self.device.type, model.patch_size)
        mirror = self.mirror_axes if opt.mirror else None
        logits = None
        n_f = len(self.fold_weights)
        for i, weights in enumerate(self.fold_weights):
            if i > 0 or n_f > 1:
                self.network.load_state_dict(weights)
            sub = prog.sub(0.05 + 0.85 * i / n_f, 0.05 + 0.85 * (i + 1) / n_f)
            out = predict_logits(self.network, x, model.patch_size, step=opt.step, mirror_axes=mirror,
                                 batch_size=bs, device=self.device, results_device=results_device,
                                 autocast_dtype=autocast, accumulate_dtype=acc_dtype,
                                 progress=lambda f, m, s=sub, k=i: s(f, f"fold {model.folds[k]}: {m}"))
            logits = out if logits is None else logits.add_(out)
        if n_f > 1:
            logits /= n_f
        del x
        prog(0.9, "resampling to the input grid")
        softmax = None
        if return_probabilities is not None:
            classes = [int(c) for c in return_probabilities]
            bad = [c for c in classes if not 0 <= c < n_cls]
            if bad:
                raise InputError(f"class value(s) {bad} not in the model (0..{n_cls - 1})")
            softmax = ClassSoftmax(classes)
        seg = self._export(logits, shape_cropped, target, spacing_t, softmax)
        box = tuple(slice(lo, hi) for lo, hi in bbox)
        full = np.zeros(shape_before_crop, dtype=np.uint8 if n_cls < 256 else np.uint16)
        full[box] = seg
        prog(1.0, "done")
        if softmax is None:
            return full.transpose(tb)
        probs = {}
        for c, p in softmax.result().items():
            pf = np.full(shape_before_crop, 1.0 if c == 0 else 0.0, np.float32)
            pf[box] = p
            probs[c] = np.ascontiguousarray(pf.transpose(tb))
        return full.transpose(tb), probs

    def _export(self, logits, shape_cropped, current_spacing, new_spacing, softmax=None) -> np.ndarray:
        """Running argmax over class chunks of the order-1 resampled logits (values rounded to
        the accumulator dtype like nnU-Net's float16 export); ``softmax``: optional
        ``ClassSoftmax`` fed the float32 resampled chunks."""
        import torch

        pkw = self.model.configuration.get("resampling_fn_probabilities_kwargs", {}) or {}
        if self.options.fast_export:
            plan = linear_plan(tuple(logits.shape[1:]), tuple(shape_cropped), current_spacing, new_spacing,
                               pkw.get("order", 1), pkw.get("order_z", 0), pkw.get("force_separate_z"))
            if plan is not None:
                return argmax_linear_export(logits.to(self.device), shape_cropped, plan, self.options.export_chunk,
                                            softmax)
        best = arg = None
        step = max(1, self.options.export_chunk)
        for c0 in range(0, logits.shape[0], step):
            chunk = logits[c0:c0 + step].to(self.device)
            r = resample_to_shape(chunk, shape_cropped, current_spacing, new_spacing, order=pkw.get("order", 1),
                                  order_z=pkw.get("order_z", 0), force_separate_z=pkw.get("force_separate_z"))
            if softmax is not None:
                softmax.add(r.float(), c0)
            r = r.to(logits.dtype)
            m, a = r.max(dim=0)
            if best is None:
                best, arg = m, a
            else:
                better = m > best  # ties keep the lower class, as argmax does
                best = torch.where(better, m, best)
                arg = torch.where(better, a + c0, arg)
        return arg.to("cpu").numpy()

    def label_names(self, mapping: dict | None = None) -> dict[int, str]:
        mapping = mapping or {}
        return {v: mapping.get(n, n) for v, n in self.model.labels.items() if v != 0}

    def segment(self, volume: Volume, progress=None, label_map: dict | None = None, return_probabilities=None):
        """Label Volume on the input grid (RAS geometry preserved), labels named (dataset.json
        names mapped through ``label_map`` to anatomy names).

        return_probabilities: optional class names (dataset.json or mapped names) or values;
        then returns (labels, {name: float32 probability Volume}) with each probability Volume
        on exactly the input grid (same shape and IJK->RAS). Raises InputError for an unknown
        class."""
        if isinstance(return_probabilities, (str, int, np.integer)):
            return_probabilities = (return_probabilities,)
        names = list(return_probabilities) if return_probabilities is not None else None
        classes = None if names is None else [self.class_index(n, label_map) for n in names]
        arr = volume.array
        spacing = volume.spacing_kji
        perm = flip = None
        if (self.options.orientation or "").upper() == "RAS":
            perm, flip = ras_canonical_plan(volume.ijk_to_ras)
            arr = _reorient(arr, perm, flip)
            spacing = np.asarray(spacing)[perm]
        out = self.predict_array(arr, spacing, progress, classes)
        seg, probs = (out, None) if classes is None else out
        if perm is not None:
            seg = _unreorient(seg, perm, flip)
        labels = volume.with_array(seg, name=f"{volume.name} segmentation".strip(), labels=self.label_names(label_map))
        if classes is None:
            return labels
        vols = {}
        for n, c in zip(names, classes):
            p = probs[c] if perm is None else _unreorient(probs[c], perm, flip)
            vols[n] = volume.with_array(p, name=f"{volume.name} P({n})".strip(), labels={})
        return labels, vols


def segment_volume(volume: Volume, model, options: EngineOptions | None = None, progress=None,
                   label_map: dict | None = None) -> Volume:
    """One call: load ``model`` (a model folder path or an ``Engine``) and segment ``volume``."""
    engine = model if isinstance(model, Engine) else Engine(Path(model), options)
    return engine.segment(volume, progress, label_map)
