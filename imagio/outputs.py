"""Writing files safely: never over an input, never half-written.

- :func:`atomic_path` gives a temporary name beside the target (same folder, same suffix so
  writers pick the same format) and renames it onto the target only when the write finished:
  an interrupted or failed run leaves the previous file (or none), never a truncated one.
- :func:`protect` marks a command's inputs for the duration of the command; every write through
  :func:`atomic_path` (``imagio.io.write_image``/``write_labels``, :func:`write_text`) refuses
  to replace a protected path, whatever the flags: ``--force`` replaces earlier *outputs* only.
- :func:`check_outputs` refuses up front (before any long computation) an output that is an
  input, that exists without ``--force``, or that exists with ``--force`` but is not an earlier
  output of IMAGIO (a user's file). Every file written through :func:`atomic_path` is recorded,
  with its SHA-256, in a manifest ``.imagio-outputs.json`` in its folder; an existing file that
  the manifest does not list with its current content (a user's file, or one they changed) is
  never replaced, by any command, with or without ``--force`` (:func:`refuse_foreign`).
- :func:`command_paths` finds a parsed command line's inputs (every existing path given to
  it) and outputs (``--out``-style options), for ``imagio.cli`` to guard every command alike.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from pathlib import Path

from .errors import InputError

MANIFEST = ".imagio-outputs.json"   # per folder: the files IMAGIO commands wrote there, with SHA-256

# argparse destinations that name files or folders a command writes
OUTPUT_DESTS = ("out", "diameter_out", "to")  # "to": a device table updated in place (its own target)
# suffixes that make an output a file (else it is taken for a folder)
_FILE_SUFFIXES = (".seg.nrrd", ".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".json", ".pdf", ".html",
                  ".png", ".mrml", ".csv", ".txt", ".zip")

_protected: list[Path] = []


def _key(path) -> Path:
    """Absolute, symlinks resolved, so two spellings of one file compare equal."""
    return Path(os.path.realpath(os.path.abspath(os.fspath(path))))


def _same_file(a, b) -> bool:
    """Whether ``a`` and ``b`` are one file: one spelling (`_key`), or two names of one inode (a
    hard link, which `os.path.realpath` does not resolve; trial 114 LOW: a hard link to the CT
    given as --out was refused as "not an earlier output" rather than as the input)."""
    if _key(a) == _key(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:   # either does not exist
        return False


def _sidecar(path: Path) -> Path | None:
    from .io import sidecar_path  # the label-name sidecar next to an image file

    name = path.name.lower()
    if name.endswith((".nii.gz", ".nii", ".nrrd", ".mha", ".mhd", ".nhdr")) and not name.endswith(".seg.nrrd"):
        return sidecar_path(path)
    return None


def is_protected(path) -> Path | None:
    """The protected input that ``path`` is (same file), or None."""
    for p in _protected:
        if _same_file(path, p):
            return p
    return None


@contextlib.contextmanager
def protect(paths):
    """Within the block, :func:`atomic_path` refuses to write any of ``paths`` (files; a folder
    protects every file under it that exists now)."""
    added = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            added += [_key(f) for f in p.rglob("*") if f.is_file()]
        elif p.exists():
            added.append(_key(p))
            side = _sidecar(p)
            if side is not None and side.exists():
                added.append(_key(side))
    _protected.extend(added)
    try:
        yield
    finally:
        for k in added:
            _protected.remove(k)


def refuse_input(path) -> None:
    """Raise InputError when ``path`` is a protected input."""
    hit = is_protected(path)
    if hit is not None:
        raise InputError(f"refusing to write {path}: it is an input of this command ({hit}); choose another "
                         "output name (--force only replaces earlier outputs, never an input)")


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success rename it onto ``path`` (atomic on one
    file system), on failure delete it. Creates the parent folder. Refuses protected inputs.
    ``path`` that is itself such a temporary name (`is_temporary`: a writer handed one by a
    caller inside its own ``atomic_path``) is yielded as it is: the caller renames and records it."""
    path = Path(path)
    if is_temporary(path):
        yield path
        return
    refuse_input(path)
    refuse_foreign(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    name = path.name
    suffix = next((s for s in _FILE_SUFFIXES if name.lower().endswith(s)), path.suffix)
    stem = name[: len(name) - len(suffix)] if suffix else name
    tmp = path.with_name(f".{stem}.tmp-{uuid.uuid4().hex[:8]}{suffix}")
    try:
        yield tmp
        if tmp.exists():
            os.replace(tmp, path)
            record_output(path)
    finally:
        if tmp.exists():
            tmp.unlink()


def is_temporary(path) -> bool:
    """True for a temporary name `atomic_path` gives (``.NAME.tmp-XXXXXXXX.SUFFIX``), which
    `atomic_path` passes through to the writer as it is."""
    n = Path(path).name
    return n.startswith(".") and ".tmp-" in n


def refuse_foreign(path) -> None:
    """Raise InputError when ``path`` exists and is not an earlier output of IMAGIO
    (`earlier_output`): a file the user made (or changed) in an output folder is never replaced
    (new-user trial 25: a sarcoma plan replaced the user's report.pdf, a needle plan their
    plan.png, bronch their bronch.json, without --force and without a word)."""
    p = Path(path)
    if p.is_file() and not earlier_output(p):
        raise InputError(f"refusing to replace {p}: it exists and is not an earlier output of IMAGIO (made or "
                         f"changed by someone else; IMAGIO lists its own in {p.parent / MANIFEST}, and --force "
                         "replaces only those); choose another "
                         "output folder or name, or move that file away yourself")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _listed_name(path: Path) -> str:
    """The name a file is listed under in `MANIFEST`: its bytes on disk read as UTF-8 (undecodable
    bytes kept as surrogate escapes), the same under every locale (new-user trial 113 U1: a name
    written under an ASCII locale was listed with surrogate escapes, and the same file was then
    "not an earlier output of IMAGIO" under a UTF-8 locale)."""
    from .file_names import as_utf8

    return as_utf8(path.name)


def _read_manifest(text: str) -> dict:
    try:
        doc = json.loads(text) if text.strip() else {}
    except ValueError:
        doc = {}
    if not isinstance(doc, dict) or not isinstance(doc.get("files"), dict):
        doc = {}
    return {"written_by": "imagio (imagio.outputs: files a command wrote here; --force replaces only these, "
                          "when unchanged)", "files": doc.get("files", {})}


def record_output(path) -> None:
    """Add ``path`` (a file IMAGIO just wrote) with its SHA-256 to its folder's manifest
    (`MANIFEST`), under an exclusive lock where the system has one (cohort workers write
    side by side). A manifest that cannot be written only makes a later --force refuse."""
    k = _key(path)
    if not k.is_file():
        return
    try:
        entry = {"sha256": _sha256(k), "bytes": k.stat().st_size}
    except OSError:
        return
    _edit_manifest(k.parent, lambda files: files.__setitem__(_listed_name(k), entry))


def _edit_manifest(folder: Path, edit) -> None:
    """Apply ``edit(files)`` (the manifest's {name: entry}, changed in place) to ``folder``'s
    `MANIFEST` under an exclusive lock where the system has one; an OSError is ignored."""
    try:
        with open(folder / MANIFEST, "a+", encoding="utf-8") as f:
            try:
                import fcntl

                fcntl.flock(f, fcntl.LOCK_EX)
            except ImportError:   # no fcntl (Windows): unlocked
                pass
            f.seek(0)
            doc = _read_manifest(f.read())
            edit(doc["files"])
            f.seek(0)
            f.truncate()
            f.write(json.dumps(doc, indent=1))
    except OSError:
        pass


def remove_earlier_output(path) -> bool:
    """Delete ``path`` when it is an earlier output of IMAGIO (`earlier_output`: recorded and
    unchanged) and not an input of this command, and drop it from its folder's manifest (a file
    an earlier run wrote that this run replaces under no name, e.g. a proposal's markups named
    after its score). A user's file, or one they changed, is never removed. True when removed."""
    k = _key(path)
    if not k.is_file() or is_protected(k) is not None or not earlier_output(k):
        return False
    k.unlink()
    _edit_manifest(k.parent, lambda files: files.pop(_listed_name(k), None))
    return True


def snapshot(paths) -> dict:
    """{path: modification time (ns)} of those of ``paths`` that exist: before a run, for
    `remove_stale_outputs` after it."""
    out = {}
    for p in paths:
        try:
            out[Path(p)] = Path(p).stat().st_mtime_ns
        except OSError:
            pass
    return out


def remove_stale_outputs(before: dict) -> list[Path]:
    """After a run: delete the files of ``before`` (`snapshot` of the names a command writes,
    taken before it ran) that this run did not write again (same modification time) and that are
    earlier outputs of IMAGIO (`remove_earlier_output`: never a user's file). A --force rerun into
    an earlier run's folder must not leave that run's results beside the new ones (new-user trial
    37 M3: another scan's evaluation.json and froc.png). Returns the removed files."""
    gone = []
    for p, t in before.items():
        try:
            same = p.stat().st_mtime_ns == t
        except OSError:
            continue
        if same and remove_earlier_output(p):
            gone.append(p)
    return gone


def earlier_output(path) -> bool:
    """True when ``path`` is a file an IMAGIO command wrote as a declared output and nobody
    changed since: listed in its folder's `MANIFEST` with its current SHA-256."""
    k = _key(path)
    try:
        doc = _read_manifest((k.parent / MANIFEST).read_text(encoding="utf-8"))
        entry = doc["files"].get(_listed_name(k))
        return isinstance(entry, dict) and entry.get("sha256") == _sha256(k)
    except OSError:
        return False


def write_text(path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def check_outputs(outputs, inputs, force: bool = False, owned_only: bool = True) -> None:
    """Refuse before any work: an output that is one of ``inputs`` (or an input's label sidecar),
    an input that would be written as an output's sidecar, an existing output file (or its label
    sidecar) without ``force``, and with ``force`` or without one that is not an earlier IMAGIO
    output (`earlier_output`; ``owned_only=False``: any file, for commands without a --force
    option). A user's file among any of the outputs is named before --force is offered for the
    others (new-user trial 100 F4: "pass --force", and --force then refused a user's file).
    Folders are not refused for existing (commands write known names inside); a user's file
    inside one is refused when the command comes to write it (`atomic_path`, `refuse_foreign`),
    or before any work by the command (`planning.commands.check_fixed_outputs`).
    Every file written through `atomic_path` is recorded in its folder's manifest."""
    ins = {}
    for p in inputs:
        p = Path(p)
        if p.exists():
            ins[_key(p)] = p
            side = _sidecar(p)
            if side is not None and side.exists():
                ins[_key(side)] = side
    outs = [Path(out) for out in outputs]
    cands = [c for out in outs for c in (out, _sidecar(out)) if c is not None]
    for c in cands:
        hit = ins.get(_key(c)) or next((p for p in ins.values() if _same_file(c, p)), None)
        if hit is not None:
            raise InputError(f"refusing to write {c}: it is an input of this command ({hit}); choose another "
                             "output name (--force only replaces earlier outputs, never an input)")
    there = [c for c in cands if c.is_file()]
    if owned_only:
        for c in there:   # every user's file first: --force replaces only IMAGIO's own earlier outputs
            refuse_foreign(c)
    if there and not force:
        raise InputError(f"{there[0]} exists; choose another output name or pass --force to replace it")
    for out in outs:
        check_writable(out)


def check_writable_folder(folder) -> None:
    """Refuse up front (InputError, one line) an output folder that cannot be made or written:
    an existing file of that name, a file among its parents, or a folder where no file can be
    created (new-user trial 17: `plan --out existing_file/plan` and `detect --out /proc/det`
    failed after the whole run)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"cannot write into {folder}: it is a file, not a folder; choose another output folder")
    _check_creatable(folder, folder if folder.exists() else folder.parent)


def _check_creatable(out: Path, parent: Path) -> None:
    """InputError naming ``out`` unless a file can be created in ``parent`` or, when it does not
    exist yet, in its nearest existing ancestor (which must be a folder)."""
    import tempfile

    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"cannot write {out}: {parent} is a file, not a folder; choose another output name")
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as e:
        raise InputError(f"cannot write {out}: no file can be created in {parent} ({e.strerror}); "
                         "choose an output folder you can write to") from None


def output_folders(args) -> list[Path]:
    """The values of ``OUTPUT_DESTS`` in a parsed command line that name folders (no file suffix)."""
    out = []
    for dest in OUTPUT_DESTS:
        v = getattr(args, dest, None)
        if isinstance(v, (str, os.PathLike)) and str(v) and not _is_file_output(Path(v)):
            out.append(Path(v))
    return out


def check_writable(out) -> None:
    """Refuse up front (InputError, one line) an output file ``out`` that cannot be written: a
    path under an existing file (``x.nii.gz/y.nii.gz``), or a folder where a file cannot be
    created (read-only, a pseudo file system such as /proc). Judged on the nearest existing
    folder by creating and removing a temporary file there (the only test that holds for every
    file system and user, root included); the folders below it are made later by the command
    (new-user trial 16: these failed with a traceback after the whole run)."""
    out = Path(out)
    _check_creatable(out, out.parent)


def _is_file_output(path: Path) -> bool:
    return path.name.lower().endswith(_FILE_SUFFIXES)


def command_paths(args) -> tuple[list[Path], list[Path]]:
    """(inputs, file outputs) of a parsed command line: inputs are the existing paths among its
    values (other than outputs); outputs are the values of ``OUTPUT_DESTS`` that name files."""
    inputs, outputs = [], []
    for dest, value in vars(args).items():
        if dest == "func" or value is None:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if not isinstance(v, (str, os.PathLike)) or not str(v):
                continue
            p = Path(v)
            if dest in OUTPUT_DESTS:
                if _is_file_output(p):
                    outputs.append(p)
            elif p.exists():
                inputs.append(p)
    return inputs, outputs
