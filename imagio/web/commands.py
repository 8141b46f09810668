"""``imagio web [CT | DICOM folder | scene.mrb]``: start IMAGIO Web (one user session per process)."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError


def add_arguments(p):
    p.add_argument("input", nargs="?",
                   help="CT file (NIfTI/NRRD/MHA), DICOM series folder or Slicer scene (.mrb/.mrml); "
                        "default: the digital patient")
    p.add_argument("--labels", help="label file with the structures (else the rule-based segmenters run)")
    p.add_argument("--phantom-spacing", type=float, default=2.0, help="phantom voxel size in mm (default 2: bronchoscopic routes need slices <= 2.5 mm)")
    p.add_argument("--out", default="imagio_web_out", help="folder for the report and the scene (.mrb)")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default: this machine only)")
    p.add_argument("--port", type=int, default=8080)


def register(sub):
    s = sub.add_parser("web", help="IMAGIO Web: the planning workstation in a browser (trame-slicer)",
                       description=__doc__.splitlines()[0] + " Needs the 'web' extra (trame-slicer).")
    add_arguments(s)
    s.set_defaults(func=cmd_web)


def cmd_web(args) -> int:
    try:
        import trame_slicer  # noqa: F401
    except ImportError:
        raise InputError("IMAGIO Web needs trame-slicer: pip install 'imagio[web]' (or make web)") from None
    if args.input and not Path(args.input).exists():
        raise InputError(f"{args.input}: no such file or folder; check the path")
    if args.labels and not Path(args.labels).exists():
        raise InputError(f"{args.labels}: no such file; check the path")
    ct = None
    if args.input and not str(args.input).lower().endswith((".mrb", ".mrml")):
        from .. import io

        # refused here, one line and exit 2, before the server starts: an MR or a label map given as
        # the CT (new-user trial 95 F4: the page loaded a label map as the CT without a word)
        ct = io.read_ct(args.input, task="IMAGIO Web")
    from .app import PlanningWorkstation

    app = PlanningWorkstation(phantom_spacing=args.phantom_spacing, ct_path=args.input, labels_path=args.labels,
                              out_dir=args.out, ct_volume=ct)
    app.server.start(host=args.host, port=args.port, open_browser=False)
    return 0
