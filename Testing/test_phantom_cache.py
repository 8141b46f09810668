"""The generated phantom kept in the user's cache (`imagio.phantom.cache`, issue 20): a cached
patient equals a freshly generated one bit for bit, the key follows the generator's code, and a
damaged or foreign file is never used."""

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from imagio import phantom
from imagio.caching import source_digest, source_files
from imagio.outputs import MANIFEST
from imagio.phantom.cache import _file_for, cache_key, load_or_generate

IMAGIO = Path(phantom.__file__).resolve().parents[1]
PARAMS = dict(spacing=4.0, seed=3)


def assert_same_phantom(a, b):
    """Every part of two phantoms equal: arrays bit for bit (dtype included), geometry, lesions,
    airway tree and the JSON document, checked independently of the cache's own key."""
    for va, vb in ((a.ct, b.ct), (a.labels, b.labels)):
        assert va.array.dtype == vb.array.dtype and va.array.shape == vb.array.shape
        assert np.array_equal(va.array, vb.array)
        assert np.array_equal(va.ijk_to_ras, vb.ijk_to_ras)
        assert va.labels == vb.labels and va.name == vb.name
    assert a.to_json() == b.to_json()
    assert [les.name for les in a.lesions] == [les.name for les in b.lesions]
    for la, lb in zip(a.lesions, b.lesions):
        assert np.array_equal(la.center_ras, lb.center_ras) and la.radius_mm == lb.radius_mm
    assert len(a.airway_tree) == len(b.airway_tree)
    for ba, bb in zip(a.airway_tree, b.airway_tree):
        assert np.array_equal(ba.start_ras, bb.start_ras) and np.array_equal(ba.end_ras, bb.end_ras)
    # the generating geometry, compared as pickles (holds arrays and nested dicts)
    assert pickle.dumps(a.geometry) == pickle.dumps(b.geometry)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("IMAGIO_CACHE_DIR", str(d))
    return d


def test_cached_phantom_equals_a_freshly_generated_one(cache_dir, tmp_path):
    fresh = phantom.generate(**PARAMS)
    first, s1, f1 = load_or_generate(**PARAMS)
    again, s2, f2 = load_or_generate(spacing=4.0, seed=3, n_liver_tumors=2)   # a default given: same key
    assert (s1, s2, f1, f2) == ("miss", "hit", [], [])
    files = list((cache_dir / "phantom").glob("*.pkl"))
    assert len(files) == 1
    assert_same_phantom(fresh, first)
    assert_same_phantom(fresh, again)
    # another seed is another patient: another file, and not the first one's arrays
    other, s3, _ = load_or_generate(spacing=4.0, seed=4)
    assert s3 == "miss" and len(list((cache_dir / "phantom").glob("*.pkl"))) == 2
    assert not np.array_equal(other.ct.array, fresh.ct.array)
    # the files of phantom.save: written by save on the first call (the entry had none), copied
    # from the cache on the next; the same bytes and the same returned paths as save's own
    ref = phantom.save(fresh, tmp_path / "ref")
    for n, status in ((1, "hit"), (2, "hit")):
        ph, s, files = load_or_generate(save_to=tmp_path / f"out{n}", **PARAMS)
        assert s == status
        assert [f.relative_to(tmp_path / f"out{n}") for f in files] == [f.relative_to(tmp_path / "ref") for f in ref]
        names = sorted(p.name for p in (tmp_path / "ref").iterdir())
        assert sorted(p.name for p in (tmp_path / f"out{n}").iterdir()) == names and len(names) >= 5
        for name in names:
            a, b = (tmp_path / f"out{n}" / name).read_bytes(), (tmp_path / "ref" / name).read_bytes()
            if name == MANIFEST:   # IMAGIO's list of what it wrote there: the same files and hashes
                a, b = json.loads(a)["files"], json.loads(b)["files"]
            assert a == b, name
        assert_same_phantom(fresh, ph)


def test_an_edit_of_the_generator_or_of_what_it_imports_changes_the_key(tmp_path):
    """The key's code digest over a copy of the package: an edit of a phantom module, of a
    module it imports at module level (volume) or inside a function (io, imported by
    ``phantom.save``), or of a data file (anatomy.json: the saved labels' colours) changes it;
    an edit of a module the generator never imports does not."""
    root = tmp_path / "imagio"
    shutil.copytree(IMAGIO, root, ignore=shutil.ignore_patterns("__pycache__", "web"))

    def digest():
        return source_digest(sorted((root / "phantom").glob("*.py")), root, sorted((root / "data").glob("*.json")))

    base = digest()
    names = {str(f.relative_to(root)) for f in source_files(sorted((root / "phantom").glob("*.py")), root)}
    assert {"phantom/organs.py", "volume.py", "io.py", "__init__.py"} <= names
    assert "report.py" not in names and not any(n.startswith("planning/") for n in names)
    for rel, changes in (("phantom/organs.py", True), ("volume.py", True), ("io.py", True),
                         ("data/anatomy.json", True), ("report.py", False), ("planning/planner.py", False)):
        f = root / rel
        text = f.read_bytes()
        f.write_bytes(text + b"\n# an edit\n")
        assert (digest() != base) == changes, rel
        f.write_bytes(text)
        assert digest() == base


def test_a_damaged_or_foreign_cache_file_is_generated_again(cache_dir):
    fresh, s, _ = load_or_generate(**PARAMS)
    assert s == "miss"
    (path,) = (cache_dir / "phantom").glob("*.pkl")
    path.write_bytes(path.read_bytes()[:1000])          # truncated (a full disk, a killed run)
    ph, s, _ = load_or_generate(**PARAMS)
    assert s == "miss"
    assert_same_phantom(fresh, ph)
    # a whole file with another key at this key's name (renamed by hand): not used
    key = cache_key({**PARAMS, "seed": 4})
    assert _file_for(key, cache_dir) != path
    other = pickle.loads(pickle.dumps(fresh))
    other.ct.array[:] = 0
    path.write_bytes(pickle.dumps((key, other, None)))
    ph, s, _ = load_or_generate(**PARAMS)
    assert s == "miss"
    assert_same_phantom(fresh, ph)
    assert load_or_generate(**PARAMS)[1] == "hit"


def test_cache_off_or_unwritable(tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGIO_CACHE_DIR", "off")
    ph, s, files = load_or_generate(save_to=tmp_path / "o", **PARAMS)
    assert s == "off" and len(files) == 4 and all(f.is_file() for f in files)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("IMAGIO_CACHE_DIR", str(blocker))
    ph2, s, _ = load_or_generate(**PARAMS)
    assert s.startswith("unwritable: ")
    assert_same_phantom(ph, ph2)
    with pytest.raises(TypeError):
        load_or_generate(spacing=4.0, colour="blue")
