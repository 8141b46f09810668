"""Deep-model engine vs nnU-Net v2's own predictor, same model folder, same input, same run.

The model folder is a random-weight nnU-Net v2 3d_fullres PlainConvUNet shaped like
TotalSegmentator's ``total --fast`` model (3 mm, 118 classes; 5 stages, 32..320 features, patch
96^3); the input is the IMAGIO phantom at 1.5 mm, so both predictors resample the CT down to the
model's 3 mm grid and the 118 class logits back up to 1.5 mm, as nnU-Net does for any input
whose spacing differs from the plans'. Each predictor runs in its own subprocess so that its peak resident memory (ru_maxrss)
is its own; both get the same torch thread count. nnU-Net runs with
``perform_everything_on_device=False`` on the CPU, as it does by default there.

Rows: name, value, unit, baseline (nnU-Net), ratio (baseline / ours; > 1 means ours is better),
plus the fraction of identical labels. On a CUDA machine the same rows are added for the GPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

_WORKER = r"""
import json, resource, sys, time
import numpy as np, torch
which, folder, ct_path, out_path, device = sys.argv[1:6]
torch.set_num_threads(int(sys.argv[6]))
from imagio import io
ct = io.read_image(ct_path)
if which == "ours":
    from imagio.segmentation.engine.predictor import Engine, EngineOptions
    extra = json.loads(sys.argv[7]) if len(sys.argv) > 7 else {}   # EngineOptions overrides
    eng = Engine(folder, EngineOptions(device=device, mirror=False, step=0.5, **extra))
    t0 = time.perf_counter()
    lab = eng.predict_array(ct.array, ct.spacing_kji)
else:
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    p = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False,
                        perform_everything_on_device=(device != "cpu"), device=torch.device(device),
                        verbose=False, allow_tqdm=False)
    p.initialize_from_trained_model_folder(folder, use_folds=(0,), checkpoint_name="checkpoint_final.pth")
    t0 = time.perf_counter()
    lab = p.predict_single_npy_array(ct.array[None].astype(np.float32),
                                     {"spacing": [float(s) for s in ct.spacing_kji]}, None, None, False)
if device.startswith("cuda"):
    torch.cuda.synchronize()
dt = time.perf_counter() - t0
np.save(out_path, np.asarray(lab, dtype=np.uint8))
gpu = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None
print(json.dumps({"seconds": dt, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "peak_gpu_mib": gpu}))
"""

LABELS = ("background",) + tuple(f"class_{n}" for n in range(1, 118))


def _run(which, folder, ct_path, out, device, threads, options: dict | None = None):
    """One predictor run in its own subprocess; ``options``: EngineOptions overrides for ours
    (e.g. ``{"autocast": "none", "accumulate": "float32"}``). Returns the worker's JSON row."""
    env = dict(os.environ, nnUNet_raw="/tmp", nnUNet_preprocessed="/tmp", nnUNet_results="/tmp")
    r = subprocess.run([sys.executable, "-c", _WORKER, which, str(folder), str(ct_path), str(out), device,
                        str(threads)] + ([json.dumps(options)] if options else []),
                       capture_output=True, text=True, env=env, encoding="utf-8")
    if r.returncode:
        raise RuntimeError(f"{which} predictor failed:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def run() -> list[dict]:
    try:
        import torch
        import nnunetv2  # noqa: F401
    except ImportError:
        return [{"name": "engine benchmark skipped (torch or nnunetv2 not installed)", "value": None}]
    from imagio import io, phantom
    from imagio.segmentation.engine import synthetic

    threads = max(1, os.cpu_count() or 1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = synthetic.make_model_folder(tmp / "model", labels=LABELS, patch_size=(96, 96, 96),
                                             spacing=(3.0, 3.0, 3.0), features=(32, 64, 128, 256, 320))
        ph = phantom.generate(spacing=1.5, seed=0)
        ct_path = tmp / "ct.nii.gz"
        io.write_image(ph.ct, ct_path)
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        for dev in devices:
            ours = _run("ours", folder, ct_path, tmp / "ours.npy", dev, threads)
            ref = _run("nnunet", folder, ct_path, tmp / "ref.npy", dev, threads)
            import numpy as np

            a, b = np.load(tmp / "ours.npy"), np.load(tmp / "ref.npy")
            same = float((a == b).mean()) if a.shape == b.shape else 0.0
            tag = f"{dev}, phantom 1.5 mm {tuple(ph.ct.shape)}, 3 mm model, 118 classes"
            rows += [
                {"name": f"predict time ({tag})", "value": ours["seconds"], "unit": "s",
                 "baseline": ref["seconds"], "ratio": ref["seconds"] / ours["seconds"]},
                {"name": f"peak RSS ({dev})", "value": ours["peak_rss_mib"], "unit": "MiB",
                 "baseline": ref["peak_rss_mib"], "ratio": ref["peak_rss_mib"] / ours["peak_rss_mib"]},
                {"name": f"identical labels vs nnU-Net ({dev})", "value": same, "unit": "fraction"},
            ]
            if ours["peak_gpu_mib"]:
                rows.append({"name": "peak GPU memory (cuda)", "value": ours["peak_gpu_mib"], "unit": "MiB",
                             "baseline": ref["peak_gpu_mib"],
                             "ratio": ref["peak_gpu_mib"] / ours["peak_gpu_mib"]})
    return rows
