"""The ``imagio`` command line.

Core subcommands live here (phantom, info, demo); each feature package adds its own through a
``register(subparsers)`` function listed in ``FEATURE_COMMANDS``. A user error prints one
line ``imagio: error: ...`` and exits with code 2, never a traceback.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

# One OpenBLAS thread unless the user set a count (before numpy is first imported: OpenBLAS reads
# it when loaded). IMAGIO's BLAS calls are coordinate transforms, (n, 3) x (3, 3) products
# (`Volume.ijk_to_world` ...): memory-bound, so a second thread gains nothing, and OpenBLAS's
# threads spin after every call waiting for the next (`imagio demo`: 6 % of its CPU samples in
# blas_thread_server/exec_blas, perf record; 3-4 CPU-s). The values are the same with one or
# more threads (Testing/test_cli_blas_threads.py).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from .coords import ArgumentParser
from .errors import Cancelled, ImagioError, InputError
from .progress import close_bars, printer

# modules exposing register(subparsers); each adds its subcommands
FEATURE_COMMANDS: tuple[str, ...] = (
    "imagio.segmentation.commands",
    "imagio.segmentation.model_commands",
    "imagio.planning.commands",
    "imagio.planning.bronchoscopy.commands",
    "imagio.planning.ablation.commands",
    "imagio.stratification.commands",
    "imagio.report",
    "imagio.web.commands",
    "imagio.detection.commands",
)


# core commands --------------------------------------------------------------------------------

def cmd_phantom(args) -> int:
    from . import phantom

    thigh_opts = {k: getattr(args, k, None) for k in ("side", "compartment", "tumour_diameter", "tumour_angle",
                                                       "tumour_s", "necrotic_fraction")}
    if args.anatomy == "thigh":   # the limb phantom of the sarcoma biopsy (imagio.phantom.limb)
        return _thigh_phantom(args, thigh_opts)
    given = [k for k, v in thigh_opts.items() if v is not None]
    if given:
        raise InputError(f"--{given[0].replace('_', '-')} is a thigh phantom option: add --anatomy thigh")
    try:
        ph = phantom.generate(spacing=args.spacing, seed=args.seed, anatomy=args.anatomy, sex=args.sex,
                              size=args.size, arms=args.arms, phase=args.phase)
    except ValueError as e:
        raise InputError(f"{e}: choose another phantom option") from None
    paths = phantom.save(ph, Path(args.out))
    for p in paths:
        print(p)
    return 0


def _thigh_phantom(args, opts) -> int:
    from .phantom import limb

    kw = {"side": opts["side"] or "left", "tumour_compartment": opts["compartment"] or "anterior",
          "necrotic_fraction": 0.5 if opts["necrotic_fraction"] is None else opts["necrotic_fraction"],
          "tumour_angle_deg": opts["tumour_angle"]}
    for k, name in (("tumour_diameter", "tumour_diameter_mm"), ("tumour_s", "tumour_s_mm")):
        if opts[k] is not None:
            kw[name] = opts[k]
    if not 0.0 <= kw["necrotic_fraction"] < 1.0:
        raise InputError("--necrotic-fraction must be 0 (none) to below 1 (the core's share of the tumour's radius)")
    try:
        ph = limb.thigh(seed=args.seed, spacing_mm=args.spacing, **kw)
    except ValueError as e:
        raise InputError(f"{e}: choose another thigh phantom option") from None
    for p in limb.save(ph, Path(args.out)):
        print(p)
    return 0


def _looks_like_labels(vol, path: Path) -> bool:
    """A label map: names known (.seg.nrrd, sidecar) or few non-negative integer values."""
    from . import io

    if vol.labels or io.sidecar_path(path).exists():
        return True
    a = vol.array
    return a.dtype.kind in "iub" and a.size > 0 and a.min() >= 0 and np.unique(a).size < 256


def cmd_info(args) -> int:
    from . import io

    path = Path(args.file)
    vol = io.read_image(path, args.series)
    info = vol.describe()
    info["file"] = str(path)
    read = vol.meta.pop("read", None)
    looks_like_labels = _looks_like_labels(vol, path)
    if not looks_like_labels:
        from .ct_check import hu_problem

        # shown, not refused: an inspection command reports what segment and plan would refuse
        info["not_ct_in_hu"] = hu_problem(vol)
    label_warnings = []
    if looks_like_labels:
        # a label map that plan/segment would refuse is refused here too: one line, exit 2
        # (new-user trial: `info` printed the reason and exited 0 on negative label values)
        lab = io.read_labels(path)
        label_warnings = [w for w in lab.warnings if w not in vol.warnings]
        counts = np.bincount(lab.array.ravel().astype(np.int64))
        twins = io.duplicate_names(lab.labels)
        info["labels"] = {   # a name two values carry is listed once per value (trial 21)
            (f"{lab.labels[v]} (value {v})" if lab.labels[v] in twins else lab.labels[v]):
            {"value": v, "voxels": int(counts[v]),
                            "volume_ml": round(float(counts[v]) * lab.voxel_volume_ml, 3)}
            for v in sorted(lab.labels)
        }
    if vol.meta:
        info["meta"] = vol.meta
    if read:
        info["read"] = read
    info["warnings"] = list(vol.warnings) + label_warnings
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    for k, v in info.items():
        if k == "labels":
            print(f"labels: {len(v)}")
            for name, d in v.items():
                print(f"  {d['value']:4d} {name:40s} {d['volume_ml']:10.2f} mL")
        elif k == "read":
            print("DICOM read:")
            for rk, rv in v.items():
                if rk == "series_in_folder":
                    print(f"  {rk}:" + "".join(f"\n    {x}" for x in rv))
                elif rk not in ("warnings", "dropped"):
                    print(f"  {rk}: {rv}")
            for d in v.get("dropped", []):
                print(f"  dropped: {d}")
        elif k == "warnings":   # the reader issued each as an InputWarning: `_run` prints it once, on stderr
            continue
        elif k == "not_ct_in_hu":
            print("CT in HU: yes" if v is None else f"CT in HU: NO, segment and plan refuse it: {v}")
        else:
            print(f"{k}: {v}")
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo

    from .demo_summary import format_summary

    summary = run_demo(Path(args.out), spacing=args.spacing, seed=args.seed,
                       progress=printer(args.quiet))
    print(json.dumps(summary, indent=1) if args.json else format_summary(summary))
    return 0


def build_parser() -> ArgumentParser:
    from . import __version__
    from .dicom import add_series_argument

    p = ArgumentParser(prog="imagio", description=(
        "IMAGIO: CT segmentation and needle/bronchoscopy planning for interventional oncology."))
    p.add_argument("--version", action="version", version=f"imagio {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("phantom", help="generate the digital patient (CT + labels + ground truth)",
                       description="Generate the deterministic digital patient and write CT, label map "
                                   "(.seg.nrrd and NIfTI + names sidecar) and its generating geometry (JSON).")
    s.add_argument("out", help="output folder")
    s.add_argument("--spacing", type=float, default=1.5, help="isotropic voxel size in mm (default 1.5)")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    s.add_argument("--anatomy", choices=("cylinder", "realistic", "thigh"), default="realistic",
                   help="realistic (default: shaped torso, rib course, lobes, organs), cylinder (the geometric test "
                        "phantom) or thigh (one thigh with a soft-tissue sarcoma: the sarcoma biopsy's phantom)")
    s.add_argument("--sex", choices=("male", "female"), default="male", help="realistic anatomy only (default male)")
    s.add_argument("--size", type=float, default=1.0, help="realistic anatomy: length scale 0.8-1.25 (default 1.0)")
    s.add_argument("--arms", choices=("down", "up"), default="down", help="realistic anatomy only (default down)")
    s.add_argument("--phase", choices=("native", "arterial", "portal_venous"), default="portal_venous",
                   help="realistic anatomy: contrast phase (default portal_venous)")
    g = s.add_argument_group("thigh phantom (--anatomy thigh)")
    g.add_argument("--side", choices=("left", "right"), help="which thigh (default left)")
    g.add_argument("--compartment", choices=("anterior", "medial", "posterior"),
                   help="the tumour's compartment (default anterior)")
    g.add_argument("--tumour-diameter", type=float, metavar="MM", help="tumour long axis, 30-200 mm (default 80)")
    g.add_argument("--tumour-angle", type=float, metavar="DEG",
                   help="tumour centre's angle round the femur, degrees from anterior towards medial (a septum's "
                        "angle, e.g. 80 for the medial septum, gives a tumour across it); default: mid-compartment")
    g.add_argument("--tumour-s", type=float, metavar="MM",
                   help="tumour centre along the thigh, mm above the knee joint line (0-400; default 220)")
    g.add_argument("--necrotic-fraction", type=float,
                   help="radius share of the necrotic core, 0 (none) to <1 (default 0.5)")
    s.set_defaults(func=cmd_phantom)

    s = sub.add_parser("info", help="geometry, HU range and labels of an image",
                       description="Print the geometry (size, spacing, origin in RAS, directions), value "
                                   "range and, for label maps, the structures with volumes. For a DICOM "
                                   "folder: the series read, images dropped (localizers), tilt and gaps "
                                   "corrected, padding replaced, and the other series in the folder.")
    s.add_argument("file", help="NIfTI/NRRD/MetaImage file, DICOM folder or one DICOM file of a series")
    s.add_argument("--json", action="store_true", help="print JSON")
    add_series_argument(s)
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("demo", help="run the main job on the embedded default case (the phantom)",
                       description="Generate the phantom, segment and plan it, and write the CT, the "
                                   "segmentation, a Slicer scene and a PNG of the 3D view.")
    s.add_argument("out", nargs="?", default="demo_out", help="output folder (default demo_out)")
    s.add_argument("--spacing", type=float, default=1.5, help="phantom voxel size in mm (default 1.5)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--quiet", action="store_true", help="no progress lines")
    s.add_argument("--json", action="store_true",
                   help="print the full JSON summary (always written to OUT/summary.json) instead of "
                        "the short one")
    s.set_defaults(func=cmd_demo)

    for mod in FEATURE_COMMANDS:
        importlib.import_module(mod).register(sub)
    return p


def _run(args) -> int:
    """Run one parsed command with its inputs protected: no write may replace an input, and an
    output that is an input (or an existing file without --force) is refused before any work.
    Warnings about the inputs (``imagio.io.InputWarning``) are printed as ``imagio: warning:``, unless
    an input is refused (`errors.InputError`): its one line names the problem and what to do."""
    import warnings

    from .io import InputWarning, say_warnings
    from .outputs import check_outputs, check_writable_folder, command_paths, output_folders, protect

    inputs, outs = command_paths(args)
    # --force replaces only IMAGIO's earlier outputs; a command without --force (`ablation import-devices
    # --to`) replaces its earlier outputs; a user's file is never replaced (outputs.refuse_foreign)
    check_outputs(outs, inputs, force=getattr(args, "force", True), owned_only=hasattr(args, "force"))
    for folder in output_folders(args):
        check_writable_folder(folder)
    from .errors import InputError

    refused = False   # an input refused: its one line is all (trial 116 L8: 1-3 warning lines came first)
    with protect(inputs), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", InputWarning)
        try:
            return int(args.func(args) or 0)
        except InputError:
            refused = True
            raise
        finally:
            close_bars()   # a bar left open by an error: the lines printed next stand alone (trial 31)
            # a snapshot, printed directly: ``warnings.showwarning`` inside ``catch_warnings(record=True)``
            # appends to ``caught`` itself, and the loop never ended (trial 8: a numpy RuntimeWarning
            # grew the list until the machine ran out of memory)
            seen = set()
            for w in list(caught):
                text = str(w.message)
                if (w.category, text) in seen:
                    continue
                seen.add((w.category, text))
                if issubclass(w.category, InputWarning):
                    if not refused:
                        say_warnings([text])
                else:
                    print(warnings.formatwarning(w.message, w.category, w.filename, w.lineno).rstrip(),
                          file=sys.stderr)


def _streams_say_any_text() -> None:
    """Let stdout and stderr print any character, whatever the locale.

    Under an ASCII locale (``LC_ALL=C`` without Python's UTF-8 mode) a label name, a path or a
    unit such as "\u00b1" in a message would raise UnicodeEncodeError and lose the message; the
    character is written as a backslash escape instead (io.TextIOWrapper.reconfigure).
    """
    for stream in (sys.stdout, sys.stderr):
        enc = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        if enc not in ("utf8", "utf16", "utf32") and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


def main(argv=None) -> int:
    _streams_say_any_text()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except Cancelled as e:
        print(f"imagio: cancelled: {e}", file=sys.stderr)
        return 130
    except ImagioError as e:
        print(f"imagio: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader closed the pipe (`imagio info X | head`): exit silently, as the Python
        # docs recommend (signal, "Note on SIGPIPE"): stdout to devnull so that the interpreter's
        # final flush raises no second error (new-user trial 62 L3: "imagio: error: None: Broken pipe")
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except OSError as e:   # a file that cannot be read or written: one line, never a traceback
        print(f"imagio: error: {e.filename}: {e.strerror}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
