"""Cohort runs on Dask distributed: many scans in, one table out.

``imagio detect COHORT --out DIR`` and ``imagio segment COHORT --out DIR`` where COHORT is
* a folder: every image file in it (NIfTI, NRRD, MetaImage) and every sub-folder holding DICOM
  files (one series each);
* a CSV with a ``path`` column (optional ``seriesuid``, ``age``, ``sex``, ``smoker``,
  ``family_history``, ``extrathoracic_cancer``, ``emphysema``; the words of
  :mod:`imagio.stratification.patient`, an empty or "unknown" cell: unknown, any other value
  refused before a case runs; relative paths from the CSV's folder);
* a text file (``.txt``/``.lst``): one scan or DICOM series folder per line (a study list).

Each scan is one task (:func:`run_case`: detection, :func:`run_segment_case`: segmentation) on a
Dask cluster: a ``LocalCluster`` (one process per
worker, one thread each) by default, an existing scheduler (``--scheduler tcp://host:8786``), or
batch jobs through dask-jobqueue (``--jobqueue slurm|pbs|sge|lsf``, optional dependency). Each
worker process loads a deep model once (:func:`imagio.detection.deep.engine_for` and
:func:`imagio.segmentation.models.cached_engine` are cached per process). A case writes its
files into ``DIR/cases/<case id>/`` and ends with ``done.json``
(written last, atomically); a failing case writes ``failed.json`` with its reason and the others
go on. A rerun skips the cases whose ``done.json`` records the same inputs (`case_inputs`: scan
path, size and time, patient facts, options; failed ones are tried again, ``--force`` runs every
case), and a case run again loses the files of its earlier run it does not write again. The
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
               "review_low_probability", "uncategorised", "top_probability", "structures", "reason", "input_warnings", "path")


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


def patient_from_row(src: Path, line: int, row: dict) -> dict:
    """The patient facts of one cohort CSV row (`stratification.patient`: the words
    ``imagio detect``'s options take; an unknown or empty cell is left out, as an option not
    given). Raises InputError naming the row, the column, the value and what is accepted."""
    from .stratification.patient import FIELDS, parse

    pat = {}
    for k in FIELDS:
        try:
            v = parse(k, row.get(k))
        except ValueError as e:
            raise InputError(f"{src} line {line}, column {k}: {e}; correct the CSV (no case was run)") from None
        if v is not None:
            pat[k] = v
    return pat


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
        with open(src, newline="", encoding="utf-8") as fh:
            r = csv.DictReader(fh)
            if not r.fieldnames or "path" not in r.fieldnames:
                raise InputError(f"{src}: a cohort CSV needs a 'path' column; got {r.fieldnames}")
            for row in r:
                p = Path(row["path"])
                p = p if p.is_absolute() else src.parent / p
                pat = patient_from_row(src, r.line_num, row)
                cases.append({"case": row.get("seriesuid") or _case_id(p), "path": str(p),
                              "seriesuid": row.get("seriesuid") or None, "patient": pat})
    else:
        for line in src.read_text(encoding="utf-8").splitlines():
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
        how = ("give a seriesuid column" if src.suffix.lower() == ".csv" else
               "list them in a CSV with a path and a seriesuid column (a case id each)")
        raise InputError(f"{src}: case ids appear twice ({', '.join(dup[:5])}: scans of one name); {how}")
    return cases


def scan_fingerprint(path: str) -> dict:
    """What identifies a case's scan for a rerun: its path and, per file (the image file, or the
    files of a DICOM series folder), size and modification time."""
    p = Path(path)
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    stats = []
    for f in files:
        try:
            st = f.stat()   # follows a link: the scan it points at
            stats.append([str(f.relative_to(p)) if p.is_dir() else f.name, st.st_size, st.st_mtime_ns])
        except OSError:
            stats.append([f.name, None, None])
    if len(stats) > 1:
        import hashlib

        return {"path": str(p), "files": len(stats),
                "sha256_of_sizes_and_times": hashlib.sha256(json.dumps(stats).encode()).hexdigest()}
    return {"path": str(p), "file": stats[0] if stats else None}


def case_inputs(case: dict, opts) -> dict:
    """The inputs a case's result depends on, recorded in its ``done.json``: the scan
    (`scan_fingerprint`), the case's patient facts over the command line's, and the options. A
    rerun takes a case as done only when these equal the current ones (new-user trial 37 H4: a
    corrected sex, and a row pointed at another scan, kept the old results)."""
    from .jsonable import to_jsonable

    doc = {"scan": scan_fingerprint(case["path"]), "seriesuid": case.get("seriesuid") or ""}
    o = dict(opts.__dict__)
    if "patient" in o:
        o["patient"] = {**o["patient"], **case.get("patient", {})}
    doc["options"] = o
    return json.loads(json.dumps(to_jsonable(doc)))


def changed_inputs(recorded: dict | None, current: dict) -> list[str]:
    """The parts of ``current`` (`case_inputs`) that differ from ``recorded`` (a done case's): []
    when the case is done with these inputs."""
    if not isinstance(recorded, dict):
        return ["inputs not recorded (an older run)"]
    out = []
    if recorded.get("scan") != current["scan"] or recorded.get("seriesuid") != current["seriesuid"]:
        out.append("scan")
    ro, co = recorded.get("options") or {}, current["options"]
    if ro.get("patient") != co.get("patient"):
        out.append("patient data")
    if {k: v for k, v in ro.items() if k != "patient"} != {k: v for k, v in co.items() if k != "patient"}:
        out.append("options")
    return out


def _write_atomic(path: Path, doc: dict) -> None:
    from .outputs import write_text

    write_text(path, json.dumps(doc, indent=1))   # atomic, recorded (outputs.atomic_path)


SEGMENT_FILES = ("segmentation.seg.nrrd", "structures.csv")   # `run_segment_case`


def _case_outputs(d: Path, segment: bool) -> list[Path]:
    """The files a detection (`detection.outputs.scan_files` with every option) or segmentation
    task may write in its case folder ``d``."""
    if segment:
        return [d / n for n in SEGMENT_FILES]
    from .detection.outputs import scan_files
    from .detection.pipeline import Options

    return scan_files(d, Options(slicer=True, report=True))


def _recorded(case: dict, out_root: str, work, segment: bool = False) -> dict:
    """Run ``work(ct, case_folder) -> row fields`` on the case's scan; write ``done.json`` (last,
    atomically) or ``failed.json`` with the reason. Never raises for a bad scan."""
    from . import io

    from .outputs import remove_earlier_output, remove_stale_outputs, snapshot

    d = Path(out_root) / "cases" / case["case"]
    d.mkdir(parents=True, exist_ok=True)
    (d / "failed.json").unlink(missing_ok=True)
    remove_earlier_output(d / "done.json")   # a rerun (changed inputs, --force): done only when it ends
    before = snapshot(_case_outputs(d, segment))
    t0 = time.perf_counter()
    row = {"case": case["case"], "path": case["path"], "seriesuid": case.get("seriesuid") or ""}
    try:
        import warnings

        with warnings.catch_warnings():
            # recorded with the case, not printed by the worker as Python's warning and source line
            # (new-user trial 40 LOW: raw "io.py:291: InputWarning ..." lines on a cohort's stderr)
            warnings.simplefilter("ignore", io.InputWarning)
            ct = io.read_image(case["path"])
        if ct.warnings:
            row["input_warnings"] = list(ct.warnings)
        row.update(work(ct, d))
        row["seconds"] = round(time.perf_counter() - t0, 2)
        row["inputs"] = case.get("inputs")
        remove_stale_outputs(before)   # an earlier run's files this one did not write
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
        io.write_labels(seg, d / SEGMENT_FILES[0])
        from .outputs import atomic_path

        with atomic_path(d / SEGMENT_FILES[1]) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(("structure", "volume_ml"))
            for v, n in sorted(seg.labels.items()):
                w.writerow((n, round(float((seg.array == v).sum() * seg.voxel_volume_ml), 2)))
        return {"status": "done", "structures": len(seg.labels), "reason": ""}

    return _recorded(case, out_root, work, segment=True)


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
    with atomic_path(tab_path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fn:
        wn = csv.writer(fn)
        for c in cases:
            d = out / "cases" / c["case"]
            if (d / "done.json").exists():
                row = json.loads((d / "done.json").read_text(encoding="utf-8"))
                with open(d / table, newline="", encoding="utf-8") as f:
                    r = csv.reader(f)
                    h = next(r)
                    if header is None:
                        header = h
                        wn.writerow(["case", *h])
                    for line in r:
                        if h != header:   # a case written by another version: its columns by name (review 41 L3)
                            by = dict(zip(h, line))
                            line = [by.get(k, "") for k in header]
                        wn.writerow([c["case"], *line])
            elif (d / "failed.json").exists():
                row = json.loads((d / "failed.json").read_text(encoding="utf-8"))
            else:
                row = {"case": c["case"], "path": c["path"], "status": "missing", "reason": "not run"}
            rows.append(row)
    with atomic_path(case_path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fc:
        w = csv.DictWriter(fc, CASE_FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows({k: _cell(r[k]) for k in CASE_FIELDS if k in r} for r in rows)
    return rows, case_path, tab_path


def _cell(v):
    """A case table cell: a list of texts joined with "; ", any other list or dict as JSON (a
    case's done.json also holds structured fields, e.g. ``lung_rads_conditions``, a list of
    dicts: new-user trial 85 M1, the table writer's join stopped the cohort with a traceback)."""
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return "; ".join(v)
    return json.dumps(v) if isinstance(v, (list, dict)) else v


def run_cohort(src: Path, out: Path, opts, scheduler: str | None = None, workers: int = 2,
               jobqueue: str | None = None, memory: str = "8GB", quiet: bool = False,
               force: bool = False) -> dict:
    """Run every case of ``src`` not done yet in ``out`` with the same inputs (`case_inputs`: scan,
    patient facts, options; every case with ``force``) on a Dask cluster; return a summary
    (counts, table paths, dashboard link). ``opts``: detection :class:`Options
    <imagio.detection.pipeline.Options>` or :class:`SegmentOptions`. Cases run in the order
    listed. Raises InputError when Dask distributed is not installed."""
    try:
        from distributed import as_completed
    except ImportError:
        raise InputError("a cohort run needs Dask distributed: pip install 'imagio[cohort]'") from None

    from .outputs import refuse_foreign, refuse_input

    cases = list_cases(src)
    task, table, cohort_table = _task(opts)
    for f in cohort_tables(out, cohort_table):   # a user's file or an input: refused before any work
        refuse_input(f)
        refuse_foreign(f)
    out.mkdir(parents=True, exist_ok=True)
    todo, rerun = [], {}
    for c in cases:
        c["inputs"] = case_inputs(c, opts)
        done = out / "cases" / c["case"] / "done.json"
        if not done.exists():
            todo.append(c)
            continue
        try:
            recorded = json.loads(done.read_text(encoding="utf-8")).get("inputs")
        except (OSError, ValueError):
            recorded = None
        why = ["--force"] if force else changed_inputs(recorded, c["inputs"])
        if why:
            todo.append(c)
            rerun[c["case"]] = ", ".join(why)
    log = open(out / "cohort.log", "a", encoding="utf-8")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    log.write(f"{stamp} cohort {src}: {len(cases)} cases, {len(cases) - len(todo)} already done, "
              f"{len(todo)} to run" + (f" ({len(rerun)} done before, run again)" if rerun else "") + "\n")
    for k, why in rerun.items():
        log.write(f"{time.strftime('%H:%M:%S')} {k}: run again: {why} "
                  + ("given" if why == "--force" else "changed since its recorded run") + "\n")
    log.flush()
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
               "run_again": rerun,
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
                   args.worker_memory, args.quiet, force=args.force)
    print(json.dumps(s, indent=1))
    if s["failed"]:
        from .io import say_warnings

        say_warnings([f"{s['failed']} case(s) failed (reasons in {s['cases_csv']}); the others are done"])
        return 1   # a script that checks the exit status must not read a partial cohort as success
    return 0
