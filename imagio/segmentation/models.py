"""The model catalogue (``imagio/data/models.json``), the per-user model cache, downloads and
imports, and running a catalogue model on a ``Volume``.

Cache: ``$IMAGIO_MODELS_DIR`` or ``~/.imagio/models`` (shared by every Slicer version), one folder
per catalogue model holding its part folders (nnU-Net dataset folders) and ``installed.json``: the
SHA-256 of each zip and of every file extracted from it. Files are checked against that record
before every use. Where the publisher gives no SHA-256 (TotalSegmentator does not), the first
download or import computes it and records it ("trust on first use"); ``models list`` says so.
Downloads resume with HTTP Range after a cut connection and go to a ``.part`` file first.
``$IMAGIO_MODELS_CATALOGUE`` may point to another catalogue JSON (e.g. a hospital mirror).
"""

from __future__ import annotations

from functools import lru_cache

import hashlib
import http.client
import json
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from importlib import resources
from pathlib import Path

from ..errors import ImagioError, InputError
from ..progress import Progress

CHUNK = 1 << 20


class ModelError(ImagioError):
    """A model cannot be fetched, imported, verified or used (message says what to do)."""


def catalogue() -> dict:
    """Model entries by name (the ``models`` object of the catalogue JSON)."""
    alt = os.environ.get("IMAGIO_MODELS_CATALOGUE")
    text = Path(alt).read_text(encoding="utf-8") if alt else resources.files("imagio.data").joinpath("models.json").read_text(encoding="utf-8")
    return json.loads(text)["models"]


def entry(name: str) -> dict:
    cat = catalogue()
    if name not in cat:
        raise ModelError(f"unknown model {name!r}; known: {', '.join(sorted(cat))} (or give a model folder path)")
    return cat[name]


def models_dir() -> Path:
    """Per-user model cache: $IMAGIO_MODELS_DIR or ~/.imagio/models."""
    return Path(os.environ.get("IMAGIO_MODELS_DIR") or Path.home() / ".imagio" / "models")


def _manifest_path(name: str) -> Path:
    return models_dir() / name / "installed.json"


def _manifest(name: str) -> dict:
    p = _manifest_path(name)
    return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {"parts": {}}


def _write_manifest(name: str, man: dict) -> None:
    p = _manifest_path(name)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(man, indent=1), encoding="utf-8")
    tmp.replace(p)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _refuse_licensed(name: str, e: dict) -> None:
    if e.get("licence_key_required"):
        raise ModelError(
            f"the model {name!r} needs a licence key from its authors ({e.get('licence')}; "
            f"{e.get('licence_url', 'see the publisher')}), so imagio does not download it. If you hold a "
            f"licence, download the weights with the publisher's tools and run: imagio models import {name} FILE.zip")


# downloads ------------------------------------------------------------------------------------

def download(url: str, dest: Path, sha256: str | None = None, progress=None, retries: int = 5,
             timeout: float = 60.0) -> str:
    """Download ``url`` to ``dest`` (via ``dest.part``, resumed with HTTP Range after a cut or a
    previous interrupted run); verify ``sha256`` when given. Returns the file's SHA-256."""
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    prog = progress if isinstance(progress, Progress) else Progress(progress)
    attempt = 0
    while True:
        have = part.stat().st_size if part.exists() else 0
        req = urllib.request.Request(url, headers={"User-Agent": "imagio"})
        if have:
            req.add_header("Range", f"bytes={have}-")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                status = getattr(r, "status", 200)
                if status == 206:
                    total = have + int(r.headers.get("Content-Length", 0))
                    mode = "ab"
                else:  # the server ignored Range: start over
                    have, mode = 0, "wb"
                    total = int(r.headers.get("Content-Length", 0))
                with open(part, mode) as f:
                    while True:
                        block = r.read(CHUNK)
                        if not block:
                            break
                        f.write(block)
                        have += len(block)
                        prog(have / total if total else 0.0, f"downloading {dest.name}: {have / 1e6:.1f} MB")
            if total and have < total:
                raise ConnectionError(f"connection closed at {have} of {total} bytes")
            break
        except urllib.error.HTTPError as e:
            if e.code == 416 and have:  # range not satisfiable: the .part is already complete
                break
            raise ModelError(f"download of {url} failed: HTTP {e.code} {e.reason}; check the address or "
                             "download the zip by hand and use 'imagio models import'") from None
        except (ConnectionError, TimeoutError, OSError, urllib.error.URLError, http.client.HTTPException) as e:
            attempt += 1
            if attempt > retries:
                raise ModelError(f"download of {url} failed after {retries} retries ({e}); run the same command "
                                 f"again to resume ({part} is kept), or download the zip by hand and use "
                                 "'imagio models import'") from None
            time.sleep(min(0.2 * attempt, 2.0))
    digest = sha256_file(part)
    if sha256 and digest.lower() != sha256.lower():
        part.unlink()
        raise ModelError(f"checksum mismatch for {dest.name}: expected SHA-256 {sha256}, got {digest}; the file "
                         "was deleted. Download again; if it persists the source or the catalogue changed")
    part.replace(dest)
    return digest


# install / import -----------------------------------------------------------------------------

def _safe_members(zf: zipfile.ZipFile) -> list[str]:
    names = zf.namelist()
    for n in names:
        p = Path(n)
        if p.is_absolute() or ".." in p.parts:
            raise ModelError(f"unsafe path {n!r} in the zip; refused")
    return names


def _part_for_zip(e: dict, names: list[str]) -> dict | None:
    """The catalogue part whose folder the zip's members hold (the only part of a one-part entry);
    None for a multi-part entry none of whose part folders is in the zip: the model in it then
    names its own task (`task_problems` with ``part`` None)."""
    parts = e.get("parts", [])
    for p in parts:
        if any(p["folder"] in n.split("/") for n in names):
            return p
    return parts[0] if len(parts) == 1 else None


def install_zip(name: str, zip_path: Path, progress=None) -> Path:
    """Verify (catalogue SHA-256, else record a computed one; the model's task, input channel and
    classes against the catalogue entry, ``task_problems``) and extract one part zip into the
    cache. Returns the part folder. Nothing is left behind when it fails."""
    e = entry(name)
    zip_path = Path(zip_path)
    if not zip_path.is_file():
        raise InputError(f"{zip_path} not found")
    digest = sha256_file(zip_path)
    try:
        zf = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile:
        raise ModelError(f"{zip_path} is not a zip file (truncated download?); download it again") from None
    with zf:
        names = _safe_members(zf)
        p = _part_for_zip(e, names)
        if p is not None and p.get("sha256") and p["sha256"].lower() != digest:
            raise ModelError(f"checksum mismatch for {zip_path.name}: the catalogue says SHA-256 {p['sha256']}, "
                             f"the file has {digest}; refused")
        base = models_dir() / name
        created = not base.exists()
        base.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".import-", dir=base))
        try:
            bad = zf.testzip()
            if bad is not None:
                raise ModelError(f"{zip_path.name} is corrupt (bad entry {bad}); download it again")
            zf.extractall(tmp)
            src = None if p is None else next((c for c in tmp.rglob(p["folder"]) if c.is_dir()), None)
            if src is None:
                src = tmp  # a zip of the model folder itself
            from .engine.model_folder import find_model_folder

            problems = task_problems(name, e, p, find_model_folder(src))  # must hold an nnU-Net model folder
            if problems:
                raise ModelError(f"{zip_path.name} is not the model {name!r}: " + "; ".join(problems)
                                 + f". Import it under the catalogue name of its task, or run it as a folder "
                                   "(imagio segment CT --model FOLDER)")
            files = {str(f.relative_to(src)): sha256_file(f) for f in sorted(src.rglob("*")) if f.is_file()}
            target = base / p["folder"]
            if target.exists():
                shutil.rmtree(target)
            shutil.move(str(src), str(target))
        except BaseException:
            if created:   # a refused first import leaves no empty model folder behind
                shutil.rmtree(base, ignore_errors=True)
            raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    man = _manifest(name)
    man["parts"][p["folder"]] = {
        "task_id": p.get("task_id"), "zip_sha256": digest,
        "sha256_source": "catalogue" if p.get("sha256") else "computed at first import (not published)",
        "source": str(p.get("url") or zip_path), "files": files}
    _write_manifest(name, man)
    return target


def _dataset_task(folder: Path) -> tuple[str, dict[str, int], list[str]]:
    """(dataset name, {label name: value}, input channel names) of a model folder."""
    import re

    ds = json.loads((Path(folder) / "dataset.json").read_text(encoding="utf-8"))
    labels = {str(k): v for k, v in ds.get("labels", {}).items()}
    channels = [str(v) for v in (ds.get("channel_names") or ds.get("modality") or {}).values()]
    m = None
    for part in ((Path(folder),) + tuple(Path(folder).parents))[:4]:
        m = re.match(r"(Dataset\d{3}_[^/]+)$", part.name)
        if m:
            break
    try:
        plans = json.loads((Path(folder) / "plans.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        plans = {}
    name = m.group(1) if m else str(plans.get("dataset_name", "?"))
    return name, labels, channels


def task_problems(name: str, e: dict, part: dict, folder: Path) -> list[str]:
    """How the model in ``folder`` differs from the catalogue part ``part`` of model ``name``.

    Compared: the input channel (the catalogue holds CT models: one channel named CT), the
    task id in the dataset name (DatasetNNN_...), and the classes: each catalogue class value
    must carry that class in dataset.json (names compared after ``label_map``, case-insensitive)
    and dataset.json may hold no class beyond the catalogue's (its ``classes`` and the
    ``other_classes`` it knows the model has and does not write);
    for TotalSegmentator 'total' parts every class must be a TotalSegmentator class name.
    ``part`` None: a zip of a multi-part entry that holds none of its part folders; the problem
    names the model's own task and every part's (new-user trial 106 L9: 'total' named its five
    parts, not the zip's task). Empty when they agree. Each problem names both sides.
    """
    from .. import anatomy

    ds_name, labels, channels = _dataset_task(folder)
    problems = []
    if [c.strip().upper() for c in channels] != ["CT"]:
        problems.append(f"its input channels are {channels or 'not given'}, the catalogue model takes one CT channel")
    if part is None:
        folders = [q["folder"] for q in e.get("parts", [])]
        problems.append(f"it is task {ds_name}, the catalogue's {name!r} is {len(folders)} part models, tasks "
                        f"{', '.join(folders)}, each imported from its own zip")
        part = {"folder": f"its {len(folders)} parts"}
    tid = part.get("task_id")
    if tid is not None and ds_name[:7] == "Dataset" and ds_name[7:10].isdigit() and int(ds_name[7:10]) != int(tid):
        problems.append(f"it is task {ds_name}, the catalogue's {name!r} is task {part.get('folder')}")
    lmap = {str(k).lower(): v for k, v in (e.get("label_map") or {}).items()}

    def canon(n: str) -> str:
        return lmap.get(n.lower(), n.lower())

    have = {}
    for n, v in labels.items():
        if isinstance(v, (list, tuple)):
            continue
        have[int(v)] = n
    classes = e.get("classes")
    if isinstance(classes, dict):
        wrong = [(int(v), c) for v, c in classes.items()
                 if int(v) not in have or canon(have[int(v)]) != canon(c)]
        # a class the catalogue does not list: another task's output (new-user trial 82 L3: a zip
        # renamed to Dataset913 with a third class 'airways' was imported and verified "OK")
        known = {str(k) for k in classes} | {str(k) for k in (e.get("other_classes") or {})}
        extra = [(v, n) for v, n in have.items() if v and str(v) not in known]
        if wrong or extra:
            theirs = ", ".join(f"{v}={n}" for v, n in sorted(have.items()) if v)
            want = ", ".join(f"{v}={c}" for v, c in sorted((int(v), c) for v, c in classes.items()))
            more = (f"; {', '.join(f'{v}={n}' for v, n in sorted(extra))} not among the catalogue's"
                    if extra and not wrong else "")
            problems.append(f"its classes are {theirs or 'none'} ({ds_name}), the catalogue's {name!r} has {want} "
                            f"({part.get('folder')}){more}")
    elif e.get("label_values") == "totalsegmentator":
        ts = set(anatomy.totalsegmentator_labels().values())
        unknown = sorted(n for v, n in have.items() if v and canon(n) not in ts)
        if unknown:
            problems.append(f"its classes {', '.join(unknown[:6])} ({ds_name}) are not TotalSegmentator classes of "
                            f"{name!r} ({part.get('folder')})")
    return problems


def _takes_ct(model: str) -> bool:
    """Whether ``model`` expects CT in HU: every catalogue model; a model folder when its
    dataset.json names one CT channel (or cannot be read: then the CT check applies)."""
    if model in catalogue():
        return True
    try:
        from .engine.model_folder import find_model_folder

        _, _, channels = _dataset_task(find_model_folder(Path(model)))
    except (ImagioError, OSError, ValueError):
        return True
    return [c.strip().upper() for c in channels] == ["CT"]


def import_zip(name: str, zip_path: Path, progress=None) -> Path:
    """Import a zip the user downloaded by hand (hospital firewalls); licensed models allowed."""
    return install_zip(name, zip_path, progress)


def fetch(name: str, progress=None) -> Path:
    """Download every missing part of a catalogue model into the cache (verified)."""
    e = entry(name)
    _refuse_licensed(name, e)
    prog = Progress(progress) if not isinstance(progress, Progress) else progress
    parts = e.get("parts", [])
    man = _manifest(name)
    for k, p in enumerate(parts):
        if p["folder"] in man["parts"] and (models_dir() / name / p["folder"]).is_dir():
            continue  # cached
        if not p.get("url"):
            raise ModelError(f"no download address for {name} part {p['folder']}; use 'imagio models import'")
        zdest = models_dir() / ".downloads" / f"{p['folder']}.zip"
        sub = prog.sub(k / len(parts), (k + 1) / len(parts))
        download(p["url"], zdest, p.get("sha256"), sub)
        try:
            install_zip(name, zdest)
        finally:
            zdest.unlink(missing_ok=True)
    return models_dir() / name


def installed_parts(name: str) -> list[Path]:
    man = _manifest(name)
    return [models_dir() / name / p["folder"] for p in entry(name).get("parts", [])
            if p["folder"] in man["parts"] and (models_dir() / name / p["folder"]).is_dir()]


def verify(name: str) -> list[str]:
    """Problems found (empty: all parts present and every file matches its recorded SHA-256)."""
    e = entry(name)
    man = _manifest(name)
    problems = []
    for p in e.get("parts", []):
        rec = man["parts"].get(p["folder"])
        folder = models_dir() / name / p["folder"]
        if rec is None or not folder.is_dir():
            problems.append(f"{p['folder']}: not installed")
            continue
        for rel, sha in rec["files"].items():
            f = folder / rel
            if not f.is_file():
                problems.append(f"{p['folder']}/{rel}: missing")
            elif sha256_file(f) != sha:
                problems.append(f"{p['folder']}/{rel}: SHA-256 differs from the recorded one (modified or corrupt)")
        if (folder / "dataset.json").is_file():
            from .engine.model_folder import find_model_folder

            problems += [f"{p['folder']}: {t}" for t in task_problems(name, e, p, find_model_folder(folder))]
    return problems


def list_models() -> list[dict]:
    out = []
    for name, e in catalogue().items():
        n_inst = len(installed_parts(name))
        out.append({"name": name, "title": e.get("title", ""), "task_ids": [p.get("task_id") for p in e["parts"]],
                    "licence": e.get("licence"), "licence_key_required": bool(e.get("licence_key_required")),
                    "size_mb": e.get("size_mb"), "installed": f"{n_inst}/{len(e['parts'])}",
                    "sha256_published": all(p.get("sha256") for p in e["parts"])})
    return out


# running ---------------------------------------------------------------------------------------

def resolve(model: str) -> tuple[dict, list[Path]]:
    """(catalogue entry, or {} for a folder; the installed model part folders) of a catalogue
    model name (installed and verified) or an nnU-Net v2 model folder path. Raises ModelError
    (one line saying how to fetch/import it) for a model that is not ready or not found."""
    if model in catalogue():
        e = entry(model)
        problems = verify(model)
        if problems:
            raise ModelError(f"model {model!r} is not ready: {problems[0]}" + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else "")
                             + f"; run 'imagio models fetch {model}' or 'imagio models import {model} ZIP'")
        return e, installed_parts(model)
    if Path(model).exists():
        return {}, [Path(model)]
    raise ModelError(f"{model!r} is neither a catalogue model ({', '.join(sorted(catalogue()))}) nor a folder")


def cached_engine(folder, opts: dict):
    """The Engine for a model part folder and EngineOptions keywords (:func:`engine_options`),
    built once per process for the same folder and options (a cohort's Dask worker loads each
    network once)."""
    return _engine(str(folder), tuple(sorted((k, tuple(v) if isinstance(v, list) else v)
                                             for k, v in opts.items())))


@lru_cache(maxsize=4)
def _engine(folder: str, opts: tuple):
    from .engine.predictor import Engine, EngineOptions

    return Engine(Path(folder), EngineOptions(**{k: list(v) if isinstance(v, tuple) else v
                                                  for k, v in opts}))


def engine_options(e: dict, device=None, folds=None, batch_size=None, mirror=None, step=None) -> dict:
    """EngineOptions keyword arguments for catalogue entry ``e`` (its folds, mirroring, step and
    orientation unless overridden)."""
    return dict(device=device, folds=folds if folds is not None else e.get("folds"),
                batch_size=batch_size, mirror=bool(e.get("mirror", False) if mirror is None else mirror),
                step=float(step or e.get("step") or 0.5), orientation=e.get("orientation"))


def segment(volume, model: str, *, device=None, folds=None, mirror=None, step=None, batch_size=None,
            progress=None):
    """Segment ``volume`` with a catalogue model name (installed, verified first) or a model folder
    path. Multi-part models run part by part and merge by class name (later parts win, as in
    TotalSegmentator). Returns a label Volume on the input grid named with anatomy names."""
    import numpy as np

    from .. import anatomy
    from ..ct_check import check_hu

    if _takes_ct(model):  # before any model work: a CT model on non-HU input writes wrong labels
        check_hu(volume, f"the deep model {Path(model).name}")
    prog = Progress(progress) if not isinstance(progress, Progress) else progress
    e, folders = resolve(model)
    opts = engine_options(e, device=device, folds=folds, batch_size=batch_size, mirror=mirror, step=step)
    label_map = e.get("label_map", {})
    ts_values = {v: k for k, v in anatomy.totalsegmentator_labels().items()} \
        if e.get("label_values") == "totalsegmentator" else {}
    out = np.zeros(volume.shape, dtype=np.uint16)
    names: dict[int, str] = {}
    for k, folder in enumerate(folders):
        sub = prog.sub(k / len(folders), (k + 1) / len(folders))
        seg = cached_engine(folder, opts).segment(volume, sub, label_map)
        for v, n in seg.labels.items():
            value = ts_values.get(n) or next((kk for kk, nn in names.items() if nn == n), None) \
                or (max(names, default=0) + 1 if len(folders) > 1 else v)
            names[value] = n
            out[seg.array == v] = value
    dtype = np.uint8 if max(names, default=0) < 256 else np.uint16
    return volume.with_array(out.astype(dtype), name=f"{volume.name} {Path(model).name}".strip(), labels=names)
