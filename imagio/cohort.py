"""Cohort runs on Dask distributed: many scans in, one table out.

``imagio detect COHORT --out DIR`` and ``imagio segment COHORT --out DIR`` where COHORT is
* a folder: every image file in it (NIfTI, NRRD, MetaImage) and every sub-folder holding DICOM
  files (one series each);
* a CSV with a ``path`` column (optional ``seriesuid``, ``age``, ``sex``, ``smoker``,
  ``family_history``, ``extrathoracic_cancer``, ``emphysema``; an empty cell: unknown; relative
  paths from the CSV's folder);
* a text file (``.txt``/``.lst``): one scan or DICOM series folder per line (a study list).

Each scan is one task (:func:`run_case`: detection, :func:`run_segment_case`: segmentation) on a
Dask cluster: a ``LocalCluster`` (one process per
worker, one thread each) by default, an existing scheduler (``--scheduler tcp://host:8786``), or
batch jobs through dask-jobqueue (``--jobqueue slurm|pbs|sge|lsf``, optional dependency). Each
worker process loads a deep model once (:func:`imagio.detection.deep.engine_for` and
:func:`imagio.segmentation.models.cached_engine` are cached per process). A case writes its
files into ``DIR/cases/<case id>/`` and ends with ``done.json``
(written last, atomically); a failing case writes ``failed.json`` with its reason and the others
go on. A rerun skips the cases that have ``done.json`` (failed ones are tried again). The
cohort tables are rebuilt from the case folders at the end: ``DIR/cohort_cases.csv`` (one row per
case: status, reason, counts) and the cases' tables concatenated: ``DIR/cohort_nodules.csv``
(detection: every case's nodule table, LUNA16 columns first, LPS mm) or
``DIR/cohort_structures.csv`` (segmentation: structure volumes), plus ``DIR/cohort.log``.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError

CASE_FIELDS = ("case", "seriesuid", "status", "candidates", "nodules", "highest_lung_rads",
               "top_probability", "structures", "reason", "path")


def is_dicom_folder(path: Path) -> bool:
    from .io import _is_dicom_file

    return path.is_dir() and any(_is_dicom_file(f) for f in sorted(path.iterdir())[:50] if f.is_file())


def is_cohort(path: Path) -> bool:
    """A folder that is not itself a DICOM series, a CSV or a study list."""
    return (path.is_dir() and not is_dicom_folder(path)) or path.suffix.lower() in (".csv", ".txt", ".lst")


def _case_id(path: Path) -> str:
    from .io import IMAGE_SUFFIXES

    name = path.name
    for s in sorted(IMAGE_SUFFIXES, key=len, reverse=True):
        if name.endswith(s):
            return name[: -len(s)]
    return name


def _bool(v: str):
    v = (v or "").strip().lower()
    return None if v == "" else v in ("1", "true", "yes", "y")


def list_cases(src: Path) -> list[dict]:
    """[{case, path, seriesuid?, patient}] of a cohort source (see module docstring). Raises
    InputError for an empty cohort, a CSV without a path column or duplicate case ids."""
    from .io import IMAGE_SUFFIXES

    if not src.exists():
        raise InputError(f"cohort source {src} not found")
    cases = []
    if src.is_dir():
        for f in sorted(src.iterdir()):
            if (f.is_file() and any(f.name.endswith(s) for s in IMAGE_SUFFIXES)) or is_dicom_folder(f):
                cases.append({"case": _case_id(f), "path": str(f), "patient": {}})
    elif src.suffix.lower() == ".csv":
        with open(src, newline="") as fh:
            r = csv.DictReader(fh)
            if not r.fieldnames or "path" not in r.fieldnames:
                raise InputError(f"{src}: a cohort CSV needs a 'path' column; got {r.fieldnames}")
            for row in r:
                p = Path(row["path"])
                p = p if p.is_absolute() else src.parent / p
                pat = {}
                if row.get("age"):
                    pat["age"] = float(row["age"])
                if row.get("sex"):
                    pat["sex"] = row["sex"].strip().lower()
                for k in ("smoker", "family_history", "extrathoracic_cancer", "emphysema"):
                    if _bool(row.get(k, "")) is not None:
                        pat[k] = _bool(row[k])
                cases.append({"case": row.get("seriesuid") or _case_id(p), "path": str(p),
                              "seriesuid": row.get("seriesuid") or None, "patient": pat})
    else:
        for line in src.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                p = Path(line)
                p = p if p.is_absolute() else src.parent / p
                cases.append({"case": _case_id(p), "path": str(p), "patient": {}})
    if not cases:
        raise InputError(f"{src}: no scan found (image files, DICOM series folders, or listed paths)")
    ids = [c["case"] for c in cases]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise InputError(f"{src}: case ids appear twice ({', '.join(dup[:5])}); give a seriesuid column")
    return cases


def _write_atomic(path: Path, doc: dict) -> None:
    from .outputs import write_text

    write_text(path, json.dumps(doc, indent=1))   # atomic, recorded (outputs.atomic_path)


def _recorded(case: dict, out_root: str, work) -> dict:
    """Run ``work(ct, case_folder) -> row fields`` on the case's scan; write ``done.json`` (last,
    atomically) or ``failed.json`` with the reason. Never raises for a bad scan."""
    from . import io

    d = Path(out_root) / "cases" / case["case"]
    d.mkdir(parents=True, exist_ok=True)
    (d / "failed.json").unlink(missing_ok=True)
    t0 = time.perf_counter()
    row = {"case": case["case"], "path": case["path"], "seriesuid": case.get("seriesuid") or ""}
    try:
        row.update(work(io.read_image(case["path"]), d))
        row["seconds"] = round(time.perf_counter() - t0, 2)
        _write_atomic(d / "done.json", row)
    except Exception as e:  # noqa: BLE001 - a case's failure is recorded, the cohort goes on
        row.update(status="failed", reason=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        _write_atomic(d / "failed.json", row)
    return row


def run_case(case: dict, out_root: str, opts) -> dict:
    """One detection task (runs on a Dask worker): :func:`run_scan` on the case's scan with the
    case's patient facts, recorded by :func:`_recorded`."""
    from .detection.commands import series_id
    from .detection.pipeline import run_scan

    def work(ct, d):
        sid = case.get("seriesuid") or series_id(ct, Path(case["path"]))
        opts_c = type(opts)(**{**opts.__dict__, "patient": {**opts.patient, **case["patient"]}})
        return run_scan(ct, sid, d, opts_c, ct_path=case["path"])

    return _recorded(case, out_root, work)


def _cluster(scheduler: str | None, workers: int, jobqueue: str | None, memory: str):
    """(Client, cluster or None) for the chosen way of running.

    Raises InputError when Dask distributed is not installed (the ``cohort`` extra)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise InputError("a cohort run needs Dask distributed: pip install 'imagio[cohort]'") from None

    if scheduler:
        return Client(scheduler), None
    if jobqueue:
        try:
            import dask_jobqueue
        except ImportError:
            raise InputError("--jobqueue needs dask-jobqueue: pip install 'imagio[cluster]'") from None
        cls = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "sge": "SGECluster", "lsf": "LSFCluster"}[jobqueue]
        cluster = getattr(dask_jobqueue, cls)(cores=1, processes=1, memory=memory)
        cluster.scale(workers)
        return Client(cluster), cluster
    # workers = 0: one worker thread inside this process (the single-process reference run)
    cluster = LocalCluster(n_workers=max(1, workers), threads_per_worker=1, processes=workers > 0,
                           memory_limit=memory, dashboard_address=":0")
    return Client(cluster), cluster


@dataclass
class SegmentOptions:
    """Segmentation task of a cohort: HU-rule ``structures`` or a deep ``model`` (catalogue name
    or folder) on ``device``."""

    structures: tuple = ()
    model: str | None = None
    device: str | None = None
    lungs_optional: bool = False   # the default structure set: a scan without lungs is not a failure


def run_segment_case(case: dict, out_root: str, opts: SegmentOptions) -> dict:
    """One segmentation task: ``segmentation.seg.nrrd`` and ``structures.csv`` (structure,
    volume_ml) in the case folder, recorded by :func:`_recorded`."""
    from . import io

    def work(ct, d):
        if opts.model:
            from .segmentation.models import segment

            seg = segment(ct, opts.model, device=opts.device)
        else:
            from .segmentation.rules import segment

            seg = segment(ct, list(opts.structures), lungs_optional=opts.lungs_optional)
        io.write_labels(seg, d / "segmentation.seg.nrrd")
        from .outputs import atomic_path

        with atomic_path(d / "structures.csv") as tmp, open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(("structure", "volume_ml"))
            for v, n in sorted(seg.labels.items()):
                w.writerow((n, round(float((seg.array == v).sum() * seg.voxel_volume_ml), 2)))
        return {"status": "done", "structures": len(seg.labels), "reason": ""}

    return _recorded(case, out_root, work)


def _task(opts):
    """(task function, the case table's file name, the cohort table's name) for ``opts``."""
    if isinstance(opts, SegmentOptions):
        return run_segment_case, "structures.csv", "cohort_structures.csv"
    return run_case, "nodules.csv", "cohort_nodules.csv"


def cohort_tables(out: Path, cohort_table: str) -> tuple[Path, Path]:
    """(the cases' table concatenated, cohort_cases.csv) in the cohort folder ``out``."""
    return out / cohort_table, out / "cohort_cases.csv"


def collect(out: Path, cases: list[dict], table: str = "nodules.csv",
            cohort_table: str = "cohort_nodules.csv") -> tuple[list[dict], Path, Path]:
    """Rebuild the cohort tables from the case folders (done / failed / missing); written through
    `outputs.atomic_path` (atomic, recorded; a user's file refused)."""
    from .outputs import atomic_path

    rows = []
    tab_path, case_path = cohort_tables(out, cohort_table)
    header = None
    with atomic_path(tab_path) as tmp, open(tmp, "w", newline="") as fn:
        wn = csv.writer(fn)
        for c in cases:
            d = out / "cases" / c["case"]
            if (d / "done.json").exists():
                row = json.loads((d / "done.json").read_text())
                with open(d / table, newline="") as f:
                    r = csv.reader(f)
                    h = next(r)
                    if header is None:
                        header = h
                        wn.writerow(["case", *h])
                    for line in r:
                        wn.writerow([c["case"], *line])
            elif (d / "failed.json").exists():
                row = json.loads((d / "failed.json").read_text())
            else:
                row = {"case": c["case"], "path": c["path"], "status": "missing", "reason": "not run"}
            rows.append(row)
    with atomic_path(case_path) as tmp, open(tmp, "w", newline="") as fc:
        w = csv.DictWriter(fc, CASE_FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return rows, case_path, tab_path


def run_cohort(src: Path, out: Path, opts, scheduler: str | None = None, workers: int = 2,
               jobqueue: str | None = None, memory: str = "8GB", quiet: bool = False) -> dict:
    """Run every case of ``src`` not done yet in ``out`` on a Dask cluster; return a summary
    (counts, table paths, dashboard link). ``opts``: detection :class:`Options
    <imagio.detection.pipeline.Options>` or :class:`SegmentOptions`. Cases run in the order
    listed. Raises InputError when Dask distributed is not installed."""
    try:
        from distributed import as_completed
    except ImportError:
        raise InputError("a cohort run needs Dask distributed: pip install 'imagio[cohort]'") from None

    from .outputs import refuse_foreign

    cases = list_cases(src)
    task, table, cohort_table = _task(opts)
    for f in cohort_tables(out, cohort_table):   # a user's file: refused before any work
        refuse_foreign(f)
    out.mkdir(parents=True, exist_ok=True)
    todo = [c for c in cases if not (out / "cases" / c["case"] / "done.json").exists()]
    log = open(out / "cohort.log", "a")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    log.write(f"{stamp} cohort {src}: {len(cases)} cases, {len(cases) - len(todo)} already done, "
              f"{len(todo)} to run\n")
    dashboard = None
    if todo:
        client, cluster = _cluster(scheduler, workers, jobqueue, memory)
        try:
            dashboard = client.dashboard_link
            if not quiet:
                print(f"Dask dashboard: {dashboard}", flush=True)
            futures = [client.submit(task, c, str(out), opts, key=f"imagio-{c['case']}", pure=False)
                       for c in todo]
            bar = None
            if not quiet:
                from tqdm import tqdm

                bar = tqdm(total=len(futures), desc="cohort", unit="scan")
            for fut in as_completed(futures):
                row = fut.result()
                log.write(f"{time.strftime('%H:%M:%S')} {row['case']}: {row.get('status')}"
                          + (f" ({row['reason']})" if row.get("reason") else "") + "\n")
                log.flush()
                if bar is not None:
                    bar.update(1)
            if bar is not None:
                bar.close()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    rows, case_path, nod_path = collect(out, cases, table, cohort_table)
    status = [r.get("status") for r in rows]
    summary = {"cases": len(cases), "ran": len(todo), "skipped_done": len(cases) - len(todo),
               "done": status.count("done"), "failed": status.count("failed"),
               "failures": {r["case"]: r["reason"] for r in rows if r.get("status") == "failed"},
               "cases_csv": str(case_path), "table_csv": str(nod_path),
               "log": str(out / "cohort.log"), "dashboard": dashboard}
    log.write(f"{time.strftime('%H:%M:%S')} finished: {summary['done']} done, {summary['failed']} failed\n")
    log.close()
    return summary


def add_cohort_arguments(s) -> None:
    """The cohort options of ``imagio detect`` and ``imagio segment``."""
    c = s.add_argument_group("cohort (the input is a folder, CSV or list of scans; --out a folder)")
    c.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler (tcp://host:8786); default: a LocalCluster")
    c.add_argument("--workers", type=int, default=2,
                   help="LocalCluster / jobqueue workers, one process and one thread each (default 2; 0: "
                        "one worker thread inside this process)")
    c.add_argument("--jobqueue", choices=("slurm", "pbs", "sge", "lsf"),
                   help="start the workers as batch jobs through dask-jobqueue (pip install imagio[cluster])")
    c.add_argument("--worker-memory", default="8GB", help="memory per worker (LocalCluster limit, jobqueue request)")


def cmd_cohort(args, opts) -> int:
    if getattr(args, "evaluate", None):
        raise InputError("--evaluate goes with one scan; score a cohort's cohort_nodules.csv "
                         "with imagio.detection.froc.evaluate")
    if getattr(args, "lungs", None):
        raise InputError("--lungs goes with one scan; a cohort uses IMAGIO's lung segmenter")
    s = run_cohort(Path(args.ct), Path(args.out), opts, args.scheduler, args.workers, args.jobqueue,
                   args.worker_memory, args.quiet)
    print(json.dumps(s, indent=1))
    if s["failed"]:
        from .io import say_warnings

        say_warnings([f"{s['failed']} case(s) failed (reasons in {s['cases_csv']}); the others are done"])
        return 1   # a script that checks the exit status must not read a partial cohort as success
    return 0
