"""The ``imagio`` command line.

Core subcommands live here (phantom, info, demo); each feature package adds its own through a
``register(subparsers)`` function listed in ``FEATURE_COMMANDS``. A user error prints one
line ``imagio: error: ...`` and exits with code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

import numpy as np

from .errors import Cancelled, ImagioError
from .progress import printer

# modules exposing register(subparsers); each adds its subcommands
FEATURE_COMMANDS: tuple[str, ...] = (
    "imagio.segmentation.commands",
    "imagio.segmentation.model_commands",
    "imagio.planning.commands",
    "imagio.planning.bronchoscopy.commands",
    "imagio.planning.ablation.commands",
    "imagio.stratification.commands",
    "imagio.report",
    "imagio.detection.commands",
)


# core commands --------------------------------------------------------------------------------

def cmd_phantom(args) -> int:
    from . import phantom

    ph = phantom.generate(spacing=args.spacing, seed=args.seed)
    paths = phantom.save(ph, Path(args.out))
    for p in paths:
        print(p)
    return 0


def cmd_info(args) -> int:
    from . import io

    path = Path(args.file)
    vol = io.read_image(path)
    info = vol.describe()
    info["file"] = str(path)
    side = io.sidecar_path(path)
    if vol.labels or side.exists() or vol.array.dtype.kind in "iub" and np.unique(vol.array).size < 256:
        try:
            lab = io.read_labels(path)
            counts = np.bincount(lab.array.ravel().astype(np.int64))
            info["labels"] = {
                lab.labels[v]: {"value": v, "voxels": int(counts[v]),
                                "volume_ml": round(float(counts[v]) * lab.voxel_volume_ml, 3)}
                for v in sorted(lab.labels)
            }
        except ImagioError as e:
            info["labels_error"] = str(e)
    if vol.meta:
        info["meta"] = vol.meta
    if args.json:
        print(json.dumps(info, indent=1))
    else:
        for k, v in info.items():
            if k == "labels":
                print(f"labels: {len(v)}")
                for name, d in v.items():
                    print(f"  {d['value']:4d} {name:40s} {d['volume_ml']:10.2f} mL")
            else:
                print(f"{k}: {v}")
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo

    summary = run_demo(Path(args.out), spacing=args.spacing, seed=args.seed,
                       progress=printer(args.quiet))
    print(json.dumps(summary, indent=1))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="imagio", description=(
        "IMAGIO: CT segmentation and needle/bronchoscopy planning for interventional oncology."))
    p.add_argument("--version", action="version", version=f"imagio {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("phantom", help="generate the digital patient (CT + labels + ground truth)",
                       description="Generate the deterministic digital patient and write CT, label map "
                                   "(.seg.nrrd and NIfTI + names sidecar) and its generating geometry (JSON).")
    s.add_argument("out", help="output folder")
    s.add_argument("--spacing", type=float, default=1.5, help="isotropic voxel size in mm (default 1.5)")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    s.set_defaults(func=cmd_phantom)

    s = sub.add_parser("info", help="geometry, HU range and labels of an image",
                       description="Print the geometry (size, spacing, origin in RAS, directions), value "
                                   "range and, for label maps, the structures with volumes.")
    s.add_argument("file", help="NIfTI/NRRD/MetaImage file or DICOM series folder")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("demo", help="run the main job on the embedded default case (the phantom)",
                       description="Generate the phantom, segment and plan it, and write the CT, the "
                                   "segmentation, a Slicer scene and a PNG of the 3D view.")
    s.add_argument("out", nargs="?", default="demo_out", help="output folder (default demo_out)")
    s.add_argument("--spacing", type=float, default=1.5, help="phantom voxel size in mm (default 1.5)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--quiet", action="store_true", help="no progress lines")
    s.set_defaults(func=cmd_demo)

    for mod in FEATURE_COMMANDS:
        importlib.import_module(mod).register(sub)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except Cancelled as e:
        print(f"imagio: cancelled: {e}", file=sys.stderr)
        return 130
    except ImagioError as e:
        print(f"imagio: error: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
        print(f"imagio: error: {e.filename}: {e.strerror}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
