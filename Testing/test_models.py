"""Model catalogue, cache, downloads (against a real HTTP server on 127.0.0.1), imports and the
CLI, with a tiny random-weight nnU-Net model zip built in the test."""

import json
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from imagio.segmentation import models

FOLDER = "Dataset999_Tiny"


class _Handler(BaseHTTPRequestHandler):
    data = b""
    cut_next = 0        # number of coming responses to cut after half their body
    ranges: list = []   # Range headers seen (None when absent)

    def do_GET(self):  # noqa: N802
        rng = self.headers.get("Range")
        type(self).ranges.append(rng)
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        body = self.data[start:]
        self.send_response(206 if rng else 200)
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{len(self.data) - 1}/{len(self.data)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if type(self).cut_next > 0:
            type(self).cut_next -= 1
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)  # drop the connection mid-body
            return
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.fixture(scope="module")
def model_zip(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("dynamic_network_architectures")
    from imagio.segmentation.engine import synthetic

    root = tmp_path_factory.mktemp("zip")
    synthetic.make_model_folder(root / FOLDER / "nnUNetTrainer__nnUNetPlans__3d_fullres",
                                labels=("background", "liver", "lung_trachea_bronchia"))
    z = root / f"{FOLDER}.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted((root / FOLDER).rglob("*")):
            zf.write(f, f.relative_to(root))
    return z


@pytest.fixture
def server(model_zip):
    _Handler.data = model_zip.read_bytes()
    _Handler.cut_next, _Handler.ranges = 0, []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.timeout = 5
    t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/{FOLDER}.zip"
    httpd.shutdown()
    httpd.server_close()
    t.join(5)


def _catalogue(tmp_path, monkeypatch, url, sha=None):
    doc = {"models": {
        "tiny": {"title": "tiny test model", "licence": "Apache-2.0", "licence_key_required": False, "step": 0.5,
                 "mirror": False, "orientation": "RAS", "size_mb": 1,
                 "parts": [{"task_id": 999, "folder": FOLDER, "url": url, "sha256": sha}],
                 "label_map": {"lung_trachea_bronchia": "airways"}},
        "locked": {"title": "licensed", "licence": "commercial", "licence_key_required": True,
                   "licence_url": "https://example.invalid/licence",
                   "parts": [{"task_id": 1, "folder": "Dataset001_X", "url": None, "sha256": None}]}}}
    p = tmp_path / "catalogue.json"
    p.write_text(json.dumps(doc))
    monkeypatch.setenv("IMAGIO_MODELS_CATALOGUE", str(p))
    monkeypatch.setenv("IMAGIO_MODELS_DIR", str(tmp_path / "cache"))


def test_builtin_catalogue_is_complete():
    from imagio import anatomy

    cat = models.catalogue()
    for name in ("total", "total_fast", "liver_vessels", "lung_vessels", "lung_nodules", "liver_segments", "body"):
        e = cat[name]
        assert e["parts"] and e["licence"] and "source" in e
        for p in e["parts"]:
            assert p["url"].startswith("https://github.com/wasserth/TotalSegmentator/releases/download/")
            assert p["url"].endswith(p["folder"] + ".zip") and f"Dataset{p['task_id']:03d}" in p["folder"]
        for target in e["label_map"].values():
            assert anatomy.get(target).name == target
    assert [p["task_id"] for p in cat["total"]["parts"]] == [291, 292, 293, 294, 295]
    assert cat["total"]["step"] == 0.8 and cat["total"]["orientation"] == "RAS"
    assert cat["lung_vessels"]["label_map"]["lung_trachea_bronchia"] == "airways"
    assert cat["tissue_types"]["licence_key_required"] is True


def test_models_dir_env_override(tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGIO_MODELS_DIR", str(tmp_path / "x"))
    assert models.models_dir() == tmp_path / "x"
    monkeypatch.delenv("IMAGIO_MODELS_DIR")
    assert models.models_dir().parts[-2:] == (".imagio", "models")


def test_fetch_resumes_after_cut_connection_verifies_and_reuses_cache(tmp_path, monkeypatch, server, model_zip):
    _catalogue(tmp_path, monkeypatch, server)
    _Handler.cut_next = 1
    seen = []
    models.fetch("tiny", progress=lambda f, m: seen.append(f))
    assert _Handler.ranges[0] is None and _Handler.ranges[1] is not None  # resumed with Range
    assert int(_Handler.ranges[1].split("=")[1].rstrip("-")) > 0
    assert seen and seen[-1] == pytest.approx(1.0) and max(seen) <= 1.0
    man = json.loads((tmp_path / "cache/tiny/installed.json").read_text())
    rec = man["parts"][FOLDER]
    assert rec["zip_sha256"] == models.sha256_file(model_zip)
    assert rec["sha256_source"].startswith("computed")
    assert models.verify("tiny") == []
    assert not list((tmp_path / "cache/.downloads").glob("*"))  # zip and .part cleaned up
    n = len(_Handler.ranges)
    models.fetch("tiny")  # cached: no request
    assert len(_Handler.ranges) == n


def test_wrong_checksum_refused_and_nothing_installed(tmp_path, monkeypatch, server):
    _catalogue(tmp_path, monkeypatch, server, sha="0" * 64)
    with pytest.raises(models.ModelError, match="checksum"):
        models.fetch("tiny")
    assert models.installed_parts("tiny") == []
    assert not list((tmp_path / "cache").rglob("*.part"))


def test_licensed_model_refused_politely(tmp_path, monkeypatch):
    _catalogue(tmp_path, monkeypatch, "http://127.0.0.1:9/none.zip")
    with pytest.raises(models.ModelError, match="licence key"):
        models.fetch("locked")


def test_import_verify_tamper_and_segment(tmp_path, monkeypatch, model_zip):
    from imagio.segmentation.engine import synthetic

    _catalogue(tmp_path, monkeypatch, None)
    models.import_zip("tiny", model_zip)
    assert models.verify("tiny") == []
    ct = synthetic.synthetic_ct((20, 30, 26), (1.2, 1.4, 2.6), seed=1)
    seg = models.segment(ct, "tiny", device="cpu")
    assert seg.shape == ct.shape and set(seg.labels.values()) <= {"liver", "airways"}
    assert np.allclose(seg.ijk_to_ras, ct.ijk_to_ras)
    ckpt = next((tmp_path / "cache/tiny").rglob("checkpoint_final.pth"))
    ckpt.write_bytes(ckpt.read_bytes()[:-10] + b"0123456789")
    assert any("SHA-256" in p for p in models.verify("tiny"))
    with pytest.raises(models.ModelError, match="not ready"):
        models.segment(ct, "tiny", device="cpu")


def test_zip_slip_and_bad_zip_refused(tmp_path, monkeypatch):
    _catalogue(tmp_path, monkeypatch, None)
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr(f"../{FOLDER}/plans.json", "{}")
    with pytest.raises(models.ModelError, match="unsafe"):
        models.import_zip("tiny", evil)
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(models.ModelError, match="not a zip"):
        models.import_zip("tiny", junk)


def test_cli_import_segment_and_no_overwrite(tmp_path, monkeypatch, model_zip, capsys):
    from imagio import cli, io
    from imagio.segmentation.engine import synthetic

    _catalogue(tmp_path, monkeypatch, None)
    assert cli.main(["models", "import", "tiny", str(model_zip)]) == 0
    assert cli.main(["models", "verify", "tiny"]) == 0
    ct = synthetic.synthetic_ct((20, 30, 26), (1.2, 1.4, 2.6), seed=1)
    io.write_image(ct, tmp_path / "ct.nrrd")
    out = tmp_path / "seg.seg.nrrd"
    args = ["segment", str(tmp_path / "ct.nrrd"), "--model", "tiny", "--out", str(out), "--device", "cpu", "--quiet"]
    assert cli.main(args) == 0
    lab = io.read_labels(out)
    assert lab.shape == ct.shape and set(lab.labels.values()) <= {"liver", "airways"}
    assert cli.main(args) == 2  # refuses to overwrite
    assert "exists" in capsys.readouterr().err
    assert cli.main(["models", "fetch", "locked"]) == 2


def test_slicer_logic_runs_a_catalogue_model_into_segments(tmp_path, monkeypatch, model_zip):
    """IMAGIOSegmentation's 'Deep models' Logic on slicer-core MRML: named, coloured segments on
    an oblique, anisotropic CT; a cancelled run leaves the scene untouched."""
    pytest.importorskip("slicer")
    from imagio import mrml
    from imagio.errors import Cancelled
    from imagio.mrml import logic
    from imagio.segmentation.engine import synthetic
    from imagio.volume import make_ijk_to_ras

    _catalogue(tmp_path, monkeypatch, None)
    models.import_zip("tiny", model_zip)
    assert any(n == "tiny" and "1/1" in d for n, d in logic.model_choices())
    rot = np.array([[0.96, -0.28, 0.0], [0.28, 0.96, 0.0], [0.0, 0.0, 1.0]])
    ct = synthetic.synthetic_ct((20, 30, 26), (1.2, 1.4, 2.6), seed=1,
                                ijk_to_ras=make_ijk_to_ras((1.2, 1.4, 2.6), origin=(10, -20, 5), direction=rot))
    scene = mrml.new_scene()
    node = mrml.volume_to_node(ct, scene, "CT")
    n_before = scene.GetNumberOfNodes()
    with pytest.raises(Cancelled):
        logic.model_segment_volume_node(scene, node, "tiny", device="cpu", progress=lambda f, m: f < 0.3)
    assert scene.GetNumberOfNodes() == n_before
    seg = logic.model_segment_volume_node(scene, node, "tiny", device="cpu")
    ref = models.segment(ct, "tiny", device="cpu")
    names = mrml.segment_names(seg)
    assert names and set(names) <= {"liver", "airways"}
    back = mrml.segmentation_to_labels(seg, reference=ct)
    for n in names:
        assert (back.mask(n) == ref.mask(n)).mean() > 0.999
    with pytest.raises(Exception, match="neither a catalogue model"):
        logic.model_segment_volume_node(scene, node, "no-such-model")
