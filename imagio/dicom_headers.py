"""DICOM headers (pydicom, no pixels) -> per-series stacks of slices; the choice of a series.

Files are grouped by SeriesInstanceUID, then by orientation, matrix and pixel size; localizers
(ImageType LOCALIZER, or a minority group with another geometry) are dropped with a message;
files without image geometry are counted; copies of one image (same SOPInstanceUID) read once.
Positions are LPS mm (DICOM's patient frame).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError
from .limits import SPACING_TOL


@dataclass
class Slice:
    """Header of one DICOM file (or one frame of a multi-frame file), positions in LPS mm."""

    path: Path
    series: str
    position: np.ndarray  # ImagePositionPatient (LPS mm) of the first pixel
    row: np.ndarray  # unit LPS direction of increasing column index (along a row)
    col: np.ndarray  # unit LPS direction of increasing row index (down a column)
    rows: int
    cols: int
    spacing: tuple[float, float]  # (along row i, along column j) mm
    image_type: str = ""
    modality: str = ""
    description: str = ""
    acquisition: str = ""
    frame: int | None = None  # frame index in a multi-frame file
    slope: float = 1.0
    intercept: float = 0.0
    padding: tuple[float, float] | None = None  # stored padding value range (inclusive)
    tags: dict = field(default_factory=dict)
    gantry_tilt: float = 0.0  # GantryDetectorTilt (0018,1120) as written, degrees
    sop_uid: str = ""  # SOPInstanceUID: one image, however many copies of its file
    time: float | None = None  # AcquisitionTime, else ContentTime, seconds after midnight
    time_text: str = ""  # that time as written (DICOM TM, HHMMSS.FFFFFF)

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.row, self.col)

    def same_geometry(self, other: "Slice") -> bool:
        """Same orientation (direction cosines within 1e-3), matrix and pixel size (1e-3 mm)."""
        return (self.rows, self.cols) == (other.rows, other.cols) and \
            np.allclose(np.r_[self.row, self.col], np.r_[other.row, other.col], atol=1e-3) and \
            np.allclose(self.spacing, other.spacing, atol=1e-3)


META_TAGS = ("PatientName", "PatientID", "StudyDate", "StudyInstanceUID", "SeriesInstanceUID",
             "SeriesDescription", "Modality", "AccessionNumber",
             "PatientPosition")  # (0018,5100): HFS, HFP, HFDL...; the planner's default position


def _pydicom():
    import pydicom  # imported lazily: keeps `import imagio` light

    return pydicom


def _floats(v, n=None):
    a = np.array([float(x) for x in v], float)
    if n is not None and a.size != n:
        raise ValueError
    return a


def _padding(ds) -> tuple[float, float] | None:
    if "PixelPaddingValue" not in ds:
        return None
    p = float(ds.PixelPaddingValue)
    lim = float(ds.PixelPaddingRangeLimit) if "PixelPaddingRangeLimit" in ds else p
    return (min(p, lim), max(p, lim))


def _frame_slices(ds, path: Path, base: dict) -> list[Slice]:
    """Slices of an enhanced multi-frame image from its functional groups."""
    n = int(ds.NumberOfFrames)
    shared = ds.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in ds else None
    per = ds.PerFrameFunctionalGroupsSequence if "PerFrameFunctionalGroupsSequence" in ds else None
    if per is None or len(per) != n:
        raise InputError(f"{path}: multi-frame image without per-frame positions; export it as a classic series")

    def item(k, seq):
        for grp in (per[k], shared):
            if grp is not None and seq in grp:
                return grp[seq][0]
        return None

    out = []
    for k in range(n):
        pos, ori, meas, val = (item(k, "PlanePositionSequence"), item(k, "PlaneOrientationSequence"),
                               item(k, "PixelMeasuresSequence"), item(k, "PixelValueTransformationSequence"))
        if pos is None or ori is None or meas is None:
            raise InputError(f"{path}: frame {k + 1} has no position/orientation/pixel spacing; "
                             "export it as a classic series")
        iop = _floats(ori.ImageOrientationPatient, 6)
        ps = _floats(meas.PixelSpacing, 2)
        out.append(Slice(path, base["series"], _floats(pos.ImagePositionPatient, 3), iop[:3] / np.linalg.norm(iop[:3]),
                         iop[3:] / np.linalg.norm(iop[3:]), int(ds.Rows), int(ds.Columns), (ps[1], ps[0]),
                         base["image_type"], base["modality"], base["description"], base["acquisition"], k,
                         float(getattr(val, "RescaleSlope", 1) or 1) if val is not None else 1.0,
                         float(getattr(val, "RescaleIntercept", 0) or 0) if val is not None else 0.0,
                         _padding(ds), base["tags"]))
    return out


def _acquisition(ds) -> str:
    """Which acquisition of its series an image belongs to: AcquisitionNumber, else the temporal
    position (perfusion, multiphase); '' when the header says neither."""
    for tag in ("AcquisitionNumber", "TemporalPositionIdentifier", "TemporalPositionIndex"):
        v = str(ds.get(tag, "") or "").strip()
        if v:
            return v
    return ""


def _tm_seconds(text: str) -> float | None:
    """Seconds after midnight of a DICOM TM value (HHMMSS.FFFFFF, or the old HH:MM:SS), else None."""
    t = text.strip().replace(":", "")
    try:
        return int(t[0:2]) * 3600 + int(t[2:4] or 0) * 60 + float(t[4:] or 0) if len(t) >= 2 else None
    except ValueError:
        return None


def _image_time(ds) -> tuple[float | None, str]:
    """(seconds after midnight, text) of AcquisitionTime, else ContentTime; (None, '') without."""
    for tag in ("AcquisitionTime", "ContentTime"):
        v = str(ds.get(tag, "") or "").strip()
        if v and _tm_seconds(v) is not None:
            return _tm_seconds(v), v
    return None, ""


def _overlapping(groups: list[list[Slice]], n: np.ndarray) -> bool:
    """True when two groups' slice-position ranges along the normal ``n`` overlap or touch (one
    position imaged twice, or positions interleaved) rather than following one another."""
    d = [np.array([s.position for s in g]) @ n for g in groups]
    lo, hi = np.array([x.min() for x in d]), np.array([x.max() for x in d])
    k = np.argsort(lo, kind="stable")
    # sorted by start, a group overlaps an earlier one when it starts before all earlier ones end
    return bool(np.any(lo[k][1:] <= np.maximum.accumulate(hi[k])[:-1] + 0.01))


def _time_sweeps(slices: list[Slice], n: np.ndarray) -> list[list[Slice]]:
    """The stack cut into sweeps: runs of slices in time order whose positions advance one way.

    One acquisition (helical or step-and-shoot) moves the table one way, so its slices in time
    order advance monotonically along the normal; a second acquisition starts over (its
    position jumps back or turns). Ties in time are taken in position order."""
    timed = sorted(slices, key=lambda s: (s.time, float(s.position @ n)))
    sweeps, sign = [[timed[0]]], 0
    for prev, s in zip(timed, timed[1:]):
        step = float((s.position - prev.position) @ n)
        if abs(step) < 0.01 or (sign and np.sign(step) != sign):
            sweeps.append([s])
            sign = 0
        else:
            sweeps[-1].append(s)
            sign = int(np.sign(step))
    return sweeps


def _regular(g: list[Slice], n: np.ndarray) -> bool:
    """At least 3 slices at one step (within ``SPACING_TOL``): a sweep that is a stack of its own."""
    steps = np.diff(np.sort([float(s.position @ n) for s in g]))
    return len(g) >= 3 and bool(np.all(np.abs(steps - np.median(steps)) <= max(SPACING_TOL * np.median(steps), 0.01)))


def _split_acquisitions(slices: list[Slice]) -> list[tuple[str, list[Slice]]] | None:
    """Acquisitions of one series' stack when it holds more than one, [(label, slices)], else None.

    A DICOM AcquisitionNumber is "a single continuous gathering of data" (PS3.3 C.7.6.1.1.2),
    but scanners also number each rotation or table position of one scan (GE and Siemens
    step-and-shoot; dcm2niix stacks across AcquisitionNumber for that reason,
    rordenlab/dcm2niix#48). So numbers alone do not split a series; numbers plus geometry do:
    groups of one AcquisitionNumber (else TemporalPosition) whose position ranges follow one
    another along the normal are one scan; groups whose ranges overlap (the same position twice,
    interleaved positions) are separate acquisitions of the same anatomy (phases, a repeat).
    Without differing numbers, the image times (AcquisitionTime, else ContentTime) decide: one
    acquisition sweeps the table one way in time order (``_time_sweeps``), so two sweeps that
    are each a regular stack and overlap in position are two acquisitions (e.g. a breath-hold
    repeat written with the same number). Labels: the AcquisitionNumber ('none' where absent),
    or ``t`` + the sweep's first time."""
    n = slices[0].normal
    groups: dict[str, list[Slice]] = {}
    for s in slices:
        groups.setdefault(s.acquisition, []).append(s)
    if len(groups) > 1 and _overlapping(list(groups.values()), n):
        return sorted(((k or "none", g) for k, g in groups.items()),
                      key=lambda kv: (kv[0] != "none", len(kv[0]), kv[0]))
    if len(slices) < 6 or any(s.time is None for s in slices):
        return None
    sweeps = _time_sweeps(slices, n)
    big = [g for g in sweeps if _regular(g, n)]
    if len(sweeps) < 2 or len(big) != len(sweeps) or not _overlapping(big, n):
        return None
    return [(f"t{g[0].time_text}", g) for g in big]


def describe_acquisition(stack: "Stack") -> str:
    """'#N: 60 slices, AcquisitionTime 101530, -120.0..-30.0 mm along the slice normal' (LPS)."""
    n = stack.first.normal
    d = [float(s.position @ n) for s in stack.slices]
    times = sorted(s.time_text for s in stack.slices if s.time_text)
    when = (f", time {times[0]}" + (f"..{times[-1]}" if times[-1] != times[0] else "")) if times else ", no time"
    what = " (no AcquisitionNumber)" if stack.acquisition == "none" else ""
    return (f"#{stack.acquisition}{what}: {len(stack.slices)} slices{when}, "
            f"{min(d):.1f}..{max(d):.1f} mm along the slice normal")


_NOT_DICOM = (".nii", ".gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".raw", ".json", ".txt", ".csv", ".xml", ".html",
              ".pdf", ".png", ".jpg", ".jpeg", ".zip", ".py", ".md", ".mrml", ".vtk", ".stl")


def read_header(path: Path) -> list[Slice] | str:
    """The slice(s) of one file, or a reason why it holds no usable image."""
    pydicom = _pydicom()
    try:
        with open(path, "rb") as f:
            preamble = f.read(132)[128:132] == b"DICM"
    except OSError as e:
        return f"unreadable ({e.strerror})"
    if not preamble and path.suffix.lower() in _NOT_DICOM:
        return "not DICOM"  # no DICM preamble and another format's extension: not parsed (may be large)
    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True, force=True)
    except Exception as e:  # noqa: BLE001  (any unreadable file is skipped and counted)
        return f"not DICOM ({type(e).__name__})"
    if "SeriesInstanceUID" not in ds:
        return "not a DICOM image (no SeriesInstanceUID)"
    base = {"series": str(ds.SeriesInstanceUID), "image_type": "\\".join(map(str, ds.get("ImageType", []) or [])),
            "modality": str(ds.get("Modality", "")), "description": str(ds.get("SeriesDescription", "")),
            "acquisition": _acquisition(ds), "sop_uid": str(ds.get("SOPInstanceUID", "")),
            "tags": {t: str(ds.get(t, "")).strip() for t in META_TAGS + ("SliceThickness",) if t in ds}}
    if "Rows" not in ds or "Columns" not in ds:
        return "no image (Rows/Columns absent: a report, structure set or DICOMDIR)"
    if int(ds.get("SamplesPerPixel", 1) or 1) != 1:
        return "a colour image (a screenshot or secondary capture), not a greyscale CT slice"
    try:
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            return _frame_slices(ds, path, base)
        iop = _floats(ds.ImageOrientationPatient, 6)
        ipp = _floats(ds.ImagePositionPatient, 3)
        ps = _floats(ds.PixelSpacing, 2)
    except (AttributeError, KeyError, ValueError, TypeError):
        return "no image geometry (ImagePositionPatient/ImageOrientationPatient/PixelSpacing missing)"
    row, col = iop[:3], iop[3:]
    if np.linalg.norm(row) < 1e-6 or np.linalg.norm(col) < 1e-6 or abs(np.dot(row, col)) > 1e-3 * np.linalg.norm(row) * np.linalg.norm(col):
        return "invalid ImageOrientationPatient (not two orthogonal directions)"
    if not np.all(np.isfinite(ps)) or np.any(ps <= 0) or not np.all(np.isfinite(ipp)):
        return "invalid PixelSpacing or ImagePositionPatient (zero, negative or not a number)"
    try:
        tag_tilt = float(ds.get("GantryDetectorTilt", 0) or 0)
    except (TypeError, ValueError):
        tag_tilt = 0.0
    when, when_text = _image_time(ds)
    return [Slice(path, base["series"], ipp, row / np.linalg.norm(row), col / np.linalg.norm(col), int(ds.Rows),
                  int(ds.Columns), (float(ps[1]), float(ps[0])), base["image_type"], base["modality"],
                  base["description"], base["acquisition"], None,
                  float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0),
                  _padding(ds), base["tags"], tag_tilt, base["sop_uid"], when, when_text)]


@dataclass
class Stack:
    """The slices of one series with one geometry (orientation, matrix, pixel size)."""

    series: str
    slices: list[Slice]
    acquisition: str = ""  # set when one series holds several acquisitions at the same or interleaved positions

    @property
    def key(self) -> str:
        """What ``--series`` takes: the SeriesInstanceUID, plus ``#ACQUISITION`` when split."""
        return f"{self.series}#{self.acquisition}" if self.acquisition else self.series

    @property
    def first(self) -> Slice:
        return self.slices[0]

    @property
    def is_axial(self) -> bool:
        return abs(self.first.normal[2]) > np.cos(np.radians(45))

    @property
    def image_type(self) -> list[str]:
        """ImageType (0008,0008) values, upper case (value 1 ORIGINAL/DERIVED, PS3.3 C.7.6.1.1.2)."""
        return [v.strip().upper() for v in self.first.image_type.split("\\") if v.strip()]

    @property
    def derived(self) -> bool:
        """ImageType value 1 DERIVED: pixels derived from other images (a reformat, a projection)."""
        return bool(self.image_type) and self.image_type[0] == "DERIVED"

    @property
    def projection(self) -> str:
        """The projection an ImageType names (MIP, MINIP, ...; PS3.3 C.8.16.1.x Derived Pixel
        Contrast), '' for none: each voxel of a projection is the brightest (darkest) of a slab,
        not the anatomy at that point."""
        return next((v for v in self.image_type if v in PROJECTION_TYPES), "")

    @property
    def thickness_mm(self) -> float | None:
        """SliceThickness (0018,0050) of the first slice in mm, None when absent or not positive."""
        try:
            t = float(self.first.tags.get("SliceThickness", ""))
        except ValueError:
            return None
        return t if np.isfinite(t) and t > 0 else None

    def depths(self) -> np.ndarray:
        """The distinct slice positions along the slice normal (mm, to 0.01 mm), ascending."""
        n = self.first.normal
        return np.unique(np.round([float(s.position @ n) for s in self.slices], 2))

    @property
    def positions(self) -> int:
        """Distinct slice positions along the slice normal (0.01 mm): the stack's extent as a volume
        (a bolus-tracking or perfusion series repeats few positions many times)."""
        return int(self.depths().size)

    def label(self) -> str:
        s = self.first
        # the slice normal's angle to the scanner's S axis: an oblique reformat is not called
        # plain "axial" (new-user trial 77 L5: a 25 degree oblique series was listed as axial)
        deg = float(np.degrees(np.arccos(min(1.0, abs(float(s.normal[2]))))))
        kind = (("axial" if deg < 0.5 else f"axial, oblique: tilted {deg:.0f} deg") if self.is_axial
                else "oblique/sagittal/coronal")
        return (f"{self.key} ({s.modality or '?'}, {s.description or 'no description'}, "
                f"{len(self.slices)} {'frames' if s.frame is not None else 'slices'}, {kind}, {s.cols}x{s.rows})")


PROJECTION_TYPES = {"MIP", "MINIP", "MAXIP", "MAX_IP", "MIN_IP", "MAXIMUM", "MINIMUM", "PROJECTION IMAGE"}


@dataclass
class FolderScan:
    stacks: list[Stack]
    dropped: list[str]  # messages about images left out (localizers, other geometry)
    ignored: dict[str, int]  # reason -> number of files


def _plane(s: Slice) -> str:
    """'axial', 'coronal' or 'sagittal': the patient axis nearest the slice normal (LPS)."""
    return ("sagittal", "coronal", "axial")[int(np.argmax(np.abs(s.normal)))]


def scan_folder(folder: Path) -> FolderScan:
    """Headers of every file under ``folder`` grouped into per-series stacks."""
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file() and not p.name.startswith("."))
    by_series: dict[str, list[Slice]] = {}
    ignored: dict[str, int] = {}
    for f in files:
        r = read_header(f)
        if isinstance(r, str):
            ignored[r] = ignored.get(r, 0) + 1
            continue
        for s in r:
            by_series.setdefault(s.series, []).append(s)
    stacks, dropped = [], []
    for uid, slices in by_series.items():
        unique = {(s.sop_uid, s.frame): s for s in slices if s.sop_uid}
        copies = len([s for s in slices if s.sop_uid]) - len(unique)
        if copies:
            slices = list(unique.values()) + [s for s in slices if not s.sop_uid]
            dropped.append(f"series {uid}: {copies} duplicate file(s) of the same image (same SOPInstanceUID) "
                           "read once")
        loc = [s for s in slices if "LOCALIZER" in s.image_type.upper()]
        if loc:
            dropped.append(f"series {uid}: {len(loc)} localizer/scout {'image' if len(loc) == 1 else 'images'} "
                           "(ImageType LOCALIZER) dropped")
            slices = [s for s in slices if "LOCALIZER" not in s.image_type.upper()]
        groups: list[list[Slice]] = []
        for s in slices:
            g = next((g for g in groups if g[0].same_geometry(s)), None)
            if g is None:
                groups.append([s])
            else:
                g.append(s)
        if not groups:
            continue
        ordered = sorted(groups, key=len, reverse=True)
        main = ordered[0]
        # one line per reason, counting every image of every group it drops (trial 95 F11: a
        # coronal and a sagittal scout gave the same "1 image(s)" line twice, shown once)
        by_why: dict[str, list[list[Slice]]] = {}
        for g in ordered[1:]:
            g0 = g[0]
            same_ori = np.allclose(np.r_[g0.row, g0.col], np.r_[main[0].row, main[0].col], atol=1e-3)
            by_why.setdefault("another matrix size/pixel size" if same_ori else "another orientation", []).append(g)
        for why, gs in by_why.items():
            n = sum(len(g) for g in gs)
            kinds = ", ".join(f"{len(g)} {_plane(g[0])} {g[0].cols}x{g[0].rows}" for g in gs)
            dropped.append(f"series {uid}: {n} {'image' if n == 1 else 'images'} with {why} than its "
                           f"{len(main)} main slices ({kinds}; localizer, scout or reformat) dropped")
        parts = _split_acquisitions(main)
        if parts is None:
            stacks.append(Stack(uid, main))
        else:
            stacks += [Stack(uid, sl, acq) for acq, sl in parts]
    return FolderScan(stacks, dropped, ignored)


def choose_stack(scan: FolderScan, folder: Path, series: str | None) -> tuple[Stack, list[str]]:
    """The stack to read and warnings: ``series`` (a SeriesInstanceUID, ``UID#ACQUISITION`` for one
    acquisition of a series that holds several) or the largest axial CT. A series holding several
    acquisitions at the same or interleaved positions (phases, a repeat) is never guessed: the choice is asked for."""
    if not scan.stacks:
        why = "; ".join(f"{n} file(s): {r}" for r, n in scan.ignored.items()) or "the folder is empty"
        raise InputError(f"{folder}: no DICOM image series found ({why})")
    listing = "; ".join(s.label() for s in sorted(scan.stacks, key=lambda s: -len(s.slices)))
    patients = _by_patient(scan.stacks)
    if series:
        hits = [s for s in scan.stacks if s.key == series] or [s for s in scan.stacks if s.series == series]
        if not hits:
            raise InputError(f"{folder}: no series {series}; the folder holds: {listing}")
        best = hits[0]
        _refuse_projection(folder, best, scan)
        if len(hits) > 1:
            _refuse_phases(folder, hits)
        notes = [_derived_note(best)] if best.derived else []
        others = sorted({_patient(s) for s in scan.stacks if _differ(_identity(s), _identity(best))})
        if others:
            notes.append(f"the folder also holds images of another patient ({'; '.join(others)}): series "
                         f"{best.key} of {_patient(best)} is read as asked")
        return best, notes + _unnamed_notes(best, scan.stacks)
    if len(patients) > 1:
        # a PACS export or CD folder with another patient's images (new-user trial 102 F1: a
        # thin slab of another patient was read over the whole chest, said only as "2 series")
        who = "; ".join(f"{p}: {_listing(ss)}" for p, ss in patients.items())
        raise InputError(f"{folder}: holds images of {len(patients)} patients ({who}); IMAGIO does not guess "
                         "which patient to read: pass --series UID of the series you mean, or give a folder with "
                         "one patient's images")

    # the scanner's own reconstruction before a derived image (a MIP or reformat of it), then a
    # volume's extent (distinct positions: a bolus-tracking series of 200 images at one position
    # is not the largest volume; new-user trial 98 F1/F3)
    # then the thinnest sections (a thick slab or MIP reconstructed on the scanner is often typed
    # ORIGINAL, or loses its ImageType on export: trial 99 F2, 10.5 mm sections every 0.75 mm read
    # over the 1.5 mm original); a series without SliceThickness ranks as its own slice step
    def rank(s: Stack):
        return (s.first.modality.upper() == "CT", not s.projection, not s.derived, s.is_axial,
                -round(s.thickness_mm or _step_mm(s), 1), s.positions, len(s.slices))

    best = max(scan.stacks, key=rank)
    _refuse_projection(folder, best, scan)
    siblings = [s for s in scan.stacks if s.series == best.series]
    if len(siblings) > 1:
        _refuse_phases(folder, siblings)
    notes = [_derived_note(best)] if best.derived else []
    if len(scan.stacks) == 1:
        return best, notes
    return best, [f"the folder holds {len({s.series for s in scan.stacks})} series; read "
                  f"{'the original' if not best.derived else 'the'} axial CT with the thinnest sections and the most "
                  f"slice positions "
                  f"{best.label()}; others: {_listing([s for s in scan.stacks if s is not best])}. "
                  "Pass --series UID to read another"] + _coverage_notes(best, scan.stacks) + \
        _study_notes(best, scan.stacks) + _unnamed_notes(best, scan.stacks) + notes


def _identity(s: Stack) -> tuple[str, str]:
    """(PatientID (0010,0020), PatientName (0010,0010) in capitals with its '^' and blanks as one
    blank) of a stack's first image; '' for an absent or empty one."""
    t = s.first.tags
    name = " ".join(t.get("PatientName", "").replace("^", " ").upper().split())
    return t.get("PatientID", "").strip(), name


def _differ(a: tuple[str, str], b: tuple[str, str]) -> bool:
    """Two `_identity`s that name different patients: both IDs given and unequal, or (an ID
    missing on one side) both names given and unequal ('DOE^JOHN' = 'Doe^John'). Nothing to
    compare (an anonymised series) is not a difference (`_unnamed_notes` says it)."""
    if a[0] and b[0]:
        return a[0] != b[0]
    return bool(a[1] and b[1] and a[1] != b[1])


def _patient(s: Stack) -> str:
    """Who a stack's images are of, in words: 'PatientID X' (0010,0020), else 'PatientName Y'
    (0010,0010), else 'a patient its header does not name'."""
    t = s.first.tags
    if t.get("PatientID", "").strip():
        return f"PatientID {t['PatientID'].strip()}"
    if t.get("PatientName", "").strip():
        return f"PatientName {t['PatientName'].strip()}"
    return "a patient its header does not name"


def _by_patient(stacks: list[Stack]) -> dict[str, list[Stack]]:
    """The stacks of each patient, by `_patient`'s words, when the folder holds stacks of more
    than one patient (`_differ`); {} otherwise. A stack that names no one joins no group."""
    ids = [_identity(s) for s in stacks]
    if not any(_differ(a, b) for i, a in enumerate(ids) for b in ids[i + 1:]):
        return {}
    # `_differ` is not transitive (a stack naming a patient without an ID matches two IDs of that
    # name): the stacks with an ID found the groups first, and a stack joins a group only when it
    # differs from none of its members, so the grouping does not depend on the stacks' order
    groups: list[tuple[list[tuple[str, str]], list[Stack]]] = []
    for s, who in sorted(zip(stacks, ids), key=lambda sw: not sw[1][0]):
        if not (who[0] or who[1]):
            continue
        g = next((g for g in groups if not any(_differ(m, who) for m in g[0])), None)
        if g is None:
            groups.append(([who], [s]))
        else:
            g[0].append(who)
            g[1].append(s)
    return {_patient(ss[0]): ss for _, ss in groups}


def _unnamed_notes(best: Stack, stacks: list[Stack]) -> list[str]:
    """A note when, of the stack read and the others, one side names a patient and the other names
    no one (an anonymised series beside a named one; new-user trial 103 F1.1): IMAGIO cannot tell
    whether they are one patient."""
    unnamed = [s for s in stacks if not any(_identity(s))]
    named = [s for s in stacks if any(_identity(s))]
    if not unnamed or not named:
        return []
    if best in unnamed:
        return [f"series {best.key} names no patient (no PatientID or PatientName: anonymised?) beside the series "
                f"of {_patient(named[0])}: check it is the patient you mean"]
    return [f"{len(unnamed)} other series name no patient (anonymised?) beside the series read, of {_patient(best)}: "
            "IMAGIO cannot tell whether they are of the same patient"]


def _extent_mm(s: Stack) -> float:
    """The length a stack covers along its slice normal (mm): its first to last slice position
    plus one slice step."""
    d = s.depths()
    return float(d[-1] - d[0]) + (_step_mm(s) if d.size > 1 else (s.thickness_mm or 0.0))


def _coverage_notes(best: Stack, stacks: list[Stack]) -> list[str]:
    """A note when an original axial CT in the folder covers more than twice the length of the
    one read (a thin-section slab or targeted reconstruction read over the whole scan)."""
    wider = [s for s in stacks if s is not best and s.is_axial and not s.derived and not s.projection
             and s.first.modality.upper() == "CT" and _extent_mm(s) > 2.0 * _extent_mm(best)]
    if not wider:
        return []
    w = max(wider, key=_extent_mm)
    return [f"the series read covers {_extent_mm(best):.0f} mm along its slice normal; series {w.key} covers "
            f"{_extent_mm(w):.0f} mm (the whole scan beside a thinner slab?): pass --series {w.key} to read it"]


def _study_notes(best: Stack, stacks: list[Stack]) -> list[str]:
    """A note when the folder's series come from more than one study (StudyInstanceUID): a prior
    examination beside the current one."""
    studies = {s.first.tags.get("StudyInstanceUID", "") for s in stacks} - {""}
    if len(studies) < 2:
        return []
    t = best.first.tags
    dates = sorted({s.first.tags.get("StudyDate", "") or "no date" for s in stacks})
    return [f"the folder's series come from {len(studies)} studies (StudyDate {', '.join(dates)}): the series read "
            f"is of study {t.get('StudyInstanceUID', '?')} (StudyDate {t.get('StudyDate') or 'not given'}); check it "
            "is the examination you mean"]


def _step_mm(s: Stack) -> float:
    """The median distance between a stack's distinct slice positions along its normal (mm)."""
    d = s.depths()
    return float(np.median(np.diff(d))) if d.size > 1 else 0.0


def _listing(stacks: list[Stack]) -> str:
    """One entry per stack, a series split into more than 3 acquisitions in one entry (trial 98
    F2: 200 one-image bolus-tracking acquisitions were listed one by one)."""
    by: dict[str, list[Stack]] = {}
    for s in stacks:
        by.setdefault(s.series, []).append(s)
    out = []
    for uid, ss in by.items():
        if len(ss) > 3:
            n = sorted({len(s.slices) for s in ss})
            out.append(f"{uid} ({len(ss)} acquisitions of {'-'.join(map(str, (n[0], n[-1]) if len(n) > 1 else n))} "
                       f"images each, e.g. --series {ss[0].key})")
        else:
            out += [s.label() for s in ss]
    return "; ".join(out)


def _derived_note(s: Stack) -> str:
    return (f"series {s.key} is DERIVED (ImageType {'/'.join(s.image_type)}): a reformat or post-processed image, "
            "not the scanner's own reconstruction; IMAGIO reads it as given: plan on the original series when the "
            "folder or the archive has it")


def _refuse_projection(folder: Path, s: Stack, scan: FolderScan) -> None:
    """A maximum/minimum intensity projection shows each voxel as the extreme of a slab: vessels
    and nodules larger and merged, distances and clearances wrong (new-user trial 98 F3: a plan
    on a 10.5 mm MIP beside the original series found a path the original refuses)."""
    if not s.projection:
        return
    originals = [o for o in scan.stacks if not o.projection and not o.derived]
    hint = (f"the folder holds the original series {originals[0].label()}: pass --series {originals[0].key}"
            if originals else "give the original series (ImageType ORIGINAL) it was made from")
    raise InputError(f"{folder}: series {s.key} is a {s.projection} projection (ImageType {'/'.join(s.image_type)}): "
                     f"each voxel is the {'brightest' if 'MIN' not in s.projection else 'darkest'} of a slab, "
                     f"not the anatomy at that point; {hint}")


def _refuse_phases(folder: Path, stacks: list[Stack]) -> None:
    raise InputError(
        f"{folder}: series {stacks[0].series} holds {len(stacks)} acquisitions at the same or interleaved positions "
        f"(contrast phases, time points or a repeated scan; IMAGIO does not blend them into one volume): "
        f"{'; '.join(describe_acquisition(s) for s in stacks)}; pass --series with the one to read, e.g. "
        f"--series {stacks[-1].key}")
