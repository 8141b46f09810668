"""Shared fixtures: oblique, anisotropic geometries and the path to ../shared/data."""

import json
from pathlib import Path

import numpy as np
import pytest

from imagio.volume import Volume, make_ijk_to_ras

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def rotation(axis, degrees):
    a = np.radians(degrees)
    c, s = np.cos(a), np.sin(a)
    x, y, z = np.asarray(axis, float) / np.linalg.norm(axis)
    return np.array([
        [c + x * x * (1 - c), x * y * (1 - c) - z * s, x * z * (1 - c) + y * s],
        [y * x * (1 - c) + z * s, c + y * y * (1 - c), y * z * (1 - c) - x * s],
        [z * x * (1 - c) - y * s, z * y * (1 - c) + x * s, c + z * z * (1 - c)],
    ])


def block_in_air(spacing, shape_ijk, direction, half_mm):
    """A synthetic scene's grid and body, defined in RAS so that any grid holds the same scene:
    (reference Volume (int16 zeros) of ``shape_ijk`` (i, j, k) voxels of ``spacing`` (mm) along
    ``direction`` (3 x 3, columns: the i, j, k axes in RAS), centred on the RAS origin; (x, y, z)
    RAS mm of its voxel centres, each [k, j, i]; the body, bool [k, j, i]: the block
    |x| < half_mm[0], |y| < half_mm[1], |z| < half_mm[2], air around it)."""
    from imagio.segmentation.common import ras_coordinate

    d = np.asarray(direction, float)
    org = -d @ (0.5 * (np.asarray(shape_ijk) - 1) * np.asarray(spacing, float))
    ref = Volume(np.zeros(tuple(shape_ijk)[::-1], np.int16), make_ijk_to_ras(spacing, org, d))
    x, y, z = (ras_coordinate(ref, a) for a in range(3))
    body = (np.abs(x) < half_mm[0]) & (np.abs(y) < half_mm[1]) & (np.abs(z) < half_mm[2])
    return ref, (x, y, z), body


def ellipsoid_share(ref, xyz, centre, semi, rot=None, n=4):
    """Share (0-1) of each voxel of ``ref`` inside an ellipsoid, float [k, j, i], from n^3
    sub-samples per voxel (partial volume as a CT reconstructs it): ``xyz`` the voxel centres'
    RAS mm (`block_in_air`), ``centre`` RAS mm, ``semi`` semi-axes (mm) along the columns of
    ``rot`` (3 x 3, RAS; identity when None)."""
    x, y, z = xyz
    rot = np.eye(3) if rot is None else np.asarray(rot, float)
    steps = ref.ijk_to_ras[:3, :3]
    sub = (np.arange(n) + 0.5) / n - 0.5
    frac = np.zeros(ref.shape)
    for a in sub:
        for b in sub:
            for c in sub:
                d = steps @ np.array([a, b, c])
                p = np.stack([x + d[0] - centre[0], y + d[1] - centre[1], z + d[2] - centre[2]], -1) @ rot
                frac += ((p / np.asarray(semi, float)) ** 2).sum(-1) < 1.0
    return frac / sub.size ** 3


@pytest.fixture(scope="session")
def lesion_scenes():
    """Small synthetic one-click lesion scenes and their `segment_lesion` results that tests of
    several files assert on, made once per session (dict: name -> value; the tests only read
    them). Real cases are not kept here (their CTs are large): those are per module."""
    return {}


@pytest.fixture(scope="session", autouse=True)
def _user_cache_in_a_temporary_folder(tmp_path_factory):
    """The tests (and the commands they start) keep IMAGIO's user cache (the generated phantom:
    `imagio.phantom.cache`) in a folder of this session, never in the user's home; a cache
    folder given by the caller's ``IMAGIO_CACHE_DIR`` is kept."""
    import os

    mp = pytest.MonkeyPatch()
    if "IMAGIO_CACHE_DIR" not in os.environ:
        mp.setenv("IMAGIO_CACHE_DIR", str(tmp_path_factory.mktemp("imagio_cache")))
    yield
    mp.undo()


@pytest.fixture
def oblique_affine():
    """IJK->RAS with an oblique direction (rotated 20 deg about a skew axis, i flipped) and
    anisotropic spacing 0.7 x 1.1 x 2.5 mm."""
    d = rotation((1, 2, 3), 20.0) @ np.diag([-1.0, 1.0, 1.0])
    return make_ijk_to_ras((0.7, 1.1, 2.5), (-12.5, 30.25, -101.0), d)


@pytest.fixture
def oblique_volume(oblique_affine):
    rng = np.random.default_rng(1)
    arr = rng.integers(-1000, 1500, size=(9, 13, 17)).astype(np.int16)
    return Volume(arr, oblique_affine, "oblique")


@pytest.fixture
def shared_data():
    if not SHARED_DATA.exists():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


def shared_case(*parts):
    """The path of a file or folder under ../shared/data (``parts`` joined), or skip the test
    when it is not present (the real cases are beside the repo, never copied into it)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"../shared/data/{'/'.join(parts)} is not present")
    return path


def run_imagio(*args):
    """Run ``python -m imagio.cli ARGS`` in a subprocess (the real entry point, stderr and exit
    code as a user sees them) and check, as `inputs_are_never_modified` does in-process, that
    every input on the command line is byte-identical afterwards. Returns the CompletedProcess."""
    import subprocess
    import sys

    from imagio.cli import build_parser
    from imagio.outputs import command_paths

    args = [str(a) for a in args]
    try:
        inputs, _ = command_paths(build_parser().parse_args(args))
    except SystemExit:   # --help or a usage error: argparse exits before any file is touched
        inputs = []
    before = {str(q): _digest(q) for q in inputs}
    r = subprocess.run([sys.executable, "-m", "imagio.cli", *args], capture_output=True, text=True)
    changed = [q for q in before if not Path(q).exists() or _digest(q) != before[q]]
    assert not changed, f"`imagio {' '.join(args)}` modified or removed its input(s): {changed}"
    return r


def _digest(path):
    """SHA-256 of a file, or of every file under a folder (name + content)."""
    import hashlib

    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


@pytest.fixture(autouse=True)
def inputs_are_never_modified(monkeypatch):
    """Every CLI command run in-process by any test (``imagio.cli.main``) must leave each of its
    inputs byte-identical: every existing path on its command line that is not an output is
    hashed before and after the command, whatever the command returns or raises."""
    from imagio import cli
    from imagio.outputs import command_paths

    run = cli._run

    def checked(args):
        inputs, _ = command_paths(args)
        before = {str(p): _digest(p) for p in inputs}
        try:
            return run(args)
        finally:
            after = {p: _digest(p) for p in before if Path(p).exists()}
            changed = [p for p in before if after.get(p) != before[p]]
            assert not changed, f"`imagio {args.command}` modified or removed its input(s): {changed}"

    monkeypatch.setattr(cli, "_run", checked)


_EXIT = {}


def pytest_sessionfinish(session, exitstatus):
    """Leave the test process without Python's interpreter finalization. Once in about six full
    runs, after every test had passed and the summary was printed, a VTK/MRML object destroyed
    during finalization aborted the process (``vtkGenericDataArray: Unable to allocate ...``,
    std::bad_alloc, exit 134): a teardown-order problem between slicer-core's and VTK's wrapped
    objects, not a test result. The session's own exit status is kept."""
    import atexit
    import os
    import sys

    _EXIT["status"] = int(exitstatus)

    def _leave():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT["status"])

    atexit.register(_leave)


def screening_nodule(i, size, p, typ="solid", why=None, unsure=None):
    """A characterised candidate as `imagio detect` writes it (id, type, sizes, detector
    probability ``p``, optional not-assessable reason ``why`` and size floor flag ``unsure``),
    stratified by the real `stratification.screening.stratify`: the input of the scan-level
    Lung-RADS rules (`detection.pipeline.highest_lung_rads`, `detection.report`)."""
    from imagio.stratification.screening import stratify

    d = {"id": i, "type": typ, "mean_diameter_mm": size, "long_axis_mm": size, "size_uncertain": unsure,
         "candidate": {"probability": p}}
    if why:
        d["not_assessable"] = why
    d["stratification"] = stratify(d)
    return d


# --- memoisation of deterministic expensive calls, within one pytest process -------------------
# Several files segment the same real CT with the same arguments (the uncropped reference of
# each crop) or paint the same phantom in several tests. These helpers compute each once per
# process (per xdist worker) and hand every caller its own deep copy, so a test can never alter
# another's input or result. Keys are the exact inputs (the volume's whole content, pickled).
_MEMO = {}


@pytest.fixture(scope="module", autouse=True)
def _memo_per_module():
    """The memo below holds one test file's results: emptied after each file (a worker runs
    many files; their memory is not kept for files that do not share them)."""
    yield
    _MEMO.clear()


def _memoised(key, make):
    import copy

    if key not in _MEMO:
        _MEMO[key] = make()
    return copy.deepcopy(_MEMO[key])


def _content_key(obj):
    import hashlib
    import pickle

    return hashlib.blake2b(pickle.dumps(obj, protocol=5), digest_size=32).hexdigest()


def segment_masks_once(ct, structures, **kwargs):
    """`imagio.segmentation.rules.segment_masks(ct, structures, **kwargs)` computed once per
    process for the same inputs (``ct``'s array, geometry and every other field, the structures
    in their order, the keyword arguments; ``progress`` is not accepted): a deep copy of
    (masks, meta) each call."""
    from imagio.segmentation import rules

    structures = tuple(structures)
    key = ("segment_masks", _content_key(ct), structures, _content_key(sorted(kwargs.items())))
    return _memoised(key, lambda: rules.segment_masks(ct, list(structures), **kwargs))


def read_image_once(path, **kwargs):
    """`imagio.io.read_image(path, **kwargs)` read once per process: a deep copy of the Volume
    each call (for files that do not change during the session: the real cases)."""
    from imagio import io

    key = ("read_image", str(Path(path).resolve()), tuple(sorted(kwargs.items())))
    return _memoised(key, lambda: io.read_image(path, **kwargs))


def phantom_once(**kwargs):
    """`imagio.phantom.generate(**kwargs)` (deterministic for its parameters) painted once per
    process: a deep copy of the Phantom each call."""
    from imagio import phantom

    return _memoised(("phantom", tuple(sorted(kwargs.items()))), lambda: phantom.generate(**kwargs))


def screening_scan_once(**kwargs):
    """`imagio.phantom.screening.screening_scan(**kwargs)` made once per process: a deep copy
    each call."""
    from imagio.phantom.screening import screening_scan

    return _memoised(("screening_scan", tuple(sorted(kwargs.items()))), lambda: screening_scan(**kwargs))


def resample_rotated(img, lab, rx_deg, rz_deg, spacing, fill, flip_first=False):
    """(CT, label) SimpleITK images resampled onto a grid rotated ``rx_deg`` about L-R then
    ``rz_deg`` about S (its first axis reversed with ``flip_first``), ``spacing`` mm, covering
    the CT's corners (world points unchanged): linear for the CT (``fill`` outside), nearest
    for the label."""
    import SimpleITK as sitk

    rx, rz = np.radians(rx_deg), np.radians(rz_deg)
    Rx = np.array([[1, 0, 0], [0, np.cos(rx), -np.sin(rx)], [0, np.sin(rx), np.cos(rx)]])
    Rz = np.array([[np.cos(rz), -np.sin(rz), 0], [np.sin(rz), np.cos(rz), 0], [0, 0, 1]])
    D = Rz @ Rx @ np.array(img.GetDirection()).reshape(3, 3) @ np.diag([-1.0 if flip_first else 1.0, 1.0, 1.0])
    sz = np.array(img.GetSize())
    corners = np.array([img.TransformIndexToPhysicalPoint([int(a), int(b), int(c)])
                        for a in (0, sz[0] - 1) for b in (0, sz[1] - 1) for c in (0, sz[2] - 1)])
    loc = corners @ D
    size = np.ceil((loc.max(0) - loc.min(0)) / spacing).astype(int) + 1
    ref = sitk.Image([int(s) for s in size], sitk.sitkInt16)
    ref.SetSpacing([float(s) for s in spacing])
    ref.SetOrigin((D @ loc.min(0)).tolist())
    ref.SetDirection(D.ravel().tolist())
    return (sitk.Resample(img, ref, sitk.Transform(), sitk.sitkLinear, fill, sitk.sitkInt16),
            sitk.Resample(lab, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0, lab.GetPixelID()))


def sitk_kji_to_ras(img, kji):
    """RAS mm of (n, 3) [k, j, i] (fractional) indices of a SimpleITK image, by its own spacing,
    direction and origin (LPS -> RAS): an independent reading of a file's geometry for the tests."""
    import numpy as np

    sp = np.array(img.GetSpacing())
    d = np.array(img.GetDirection()).reshape(3, 3)
    return (np.array(img.GetOrigin()) + (np.asarray(kji, float)[:, ::-1] * sp) @ d.T) * [-1.0, -1.0, 1.0]


def ts_example_tumour(centre_kji, radius_mm, value=200):
    """The TotalSegmentator example's label map (SimpleITK image) with a liver tumour ``value``:
    the liver voxels whose centres lie within ``radius_mm`` of voxel ``centre_kji``'s centre, and
    the names {value: name} with it as liver_tumor_1 (skips when the data is not present)."""
    import numpy as np
    import SimpleITK as sitk

    d = shared_case("totalsegmentator-example")
    seg = sitk.ReadImage(str(d / "example_seg.nii.gz"))
    names = json.loads((d / "labels_total_v2.json").read_text())
    s = sitk.GetArrayFromImage(seg).astype(np.uint8)
    liver = int([k for k, v in names.items() if v == "liver"][0])
    c = sitk_kji_to_ras(seg, np.array([centre_kji], float))[0]
    r = np.linalg.norm(sitk_kji_to_ras(seg, np.argwhere(np.ones(s.shape, bool))) - c, axis=1).reshape(s.shape)
    s[(r <= radius_mm + 1e-3) & (s == liver)] = value
    o = sitk.GetImageFromArray(s)
    o.CopyInformation(seg)
    return o, {**names, str(value): "liver_tumor_1"}
