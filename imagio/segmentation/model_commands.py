"""CLI: ``imagio models list|fetch|import|verify``; ``segment_with_model`` runs
``imagio segment CT --model NAME`` (registered with the rule-based ``segment`` command)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..progress import printer
from ..outputs import check_outputs


def register(subparsers) -> None:
    p = subparsers.add_parser("models", help="list, download, import and verify deep segmentation models",
                              description="The model catalogue (TotalSegmentator tasks for interventional "
                                          "oncology) and the per-user cache ($IMAGIO_MODELS_DIR or ~/.imagio/models).")
    sub = p.add_subparsers(dest="models_cmd", required=True)
    q = sub.add_parser("list", help="catalogue models and what is installed", description="List catalogue models.")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(func=cmd_models_list)
    q = sub.add_parser("fetch", help="download a model (resumable, SHA-256 verified)",
                       description="Download every part of a catalogue model into the cache.")
    q.add_argument("name")
    q.add_argument("--quiet", action="store_true")
    q.set_defaults(func=cmd_models_fetch)
    q = sub.add_parser("import", help="import a model zip downloaded by hand",
                       description="Import one part zip of a catalogue model (e.g. behind a hospital firewall).")
    q.add_argument("name")
    q.add_argument("zip", nargs="+", help="zip file(s), one per part")
    q.set_defaults(func=cmd_models_import)
    q = sub.add_parser("verify", help="check cached files against their SHA-256",
                       description="Verify installed models (all installed ones when no name is given).")
    q.add_argument("name", nargs="?")
    q.set_defaults(func=cmd_models_verify)


def cmd_models_list(args) -> int:
    from . import models

    rows = models.list_models()
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"cache: {models.models_dir()}")
    for r in rows:
        lic = "licence key required" if r["licence_key_required"] else r["licence"]
        sha = "" if r["sha256_published"] else " (SHA-256 recorded at first download)"
        print(f"{r['name']:<28} tasks {','.join(map(str, r['task_ids'])):<22} {r['installed']:>4} installed  "
              f"{'~%s MB' % r['size_mb'] if r['size_mb'] else 'size unknown'}  {lic}{sha}\n    {r['title']}")
    return 0


def cmd_models_fetch(args) -> int:
    from . import models

    path = models.fetch(args.name, printer(args.quiet))
    print(path)
    return 0


def cmd_models_import(args) -> int:
    from . import models

    for z in args.zip:
        print(models.import_zip(args.name, Path(z)))
    return 0


def cmd_models_verify(args) -> int:
    from . import models

    names = [args.name] if args.name else [r["name"] for r in models.list_models() if not r["installed"].startswith("0/")]
    bad = 0
    for n in names:
        problems = models.verify(n)
        print(f"{n}: " + ("OK" if not problems else "; ".join(problems)))
        bad += bool(problems)
    return 1 if bad else 0


def segment_with_model(args) -> int:
    """``imagio segment CT --model NAME|FOLDER --out SEG``: deep-model segmentation into a label map
    (written atomically by ``imagio.io.write_labels``; the CT is checked to be in HU first)."""
    from .. import io
    from . import models

    out = io.require_image_output(args.out)
    check_outputs([out], [args.ct], args.force)
    ct = io.read_image(Path(args.ct), args.series)
    folds = [f.strip() for f in args.folds.split(",")] if args.folds else None
    seg = models.segment(ct, args.model, device=args.device, folds=folds, mirror=args.mirror or None,
                         step=args.step, batch_size=args.batch_size, progress=printer(args.quiet))
    io.write_labels(seg, out)
    print(json.dumps({"out": str(out), "labels": {str(k): v for k, v in sorted(seg.labels.items())},
                      "input_warnings": io.input_warnings(ct)}), file=sys.stdout)
    return 0
