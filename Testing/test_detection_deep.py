"""The deep detection path: a random-weight nnU-Net model folder -> nodule probability map on the
CT's (oblique, flipped, anisotropic) grid -> candidates; the engine's labels do not change when
probabilities are asked for; a missing catalogue model is one line (exit 2 in the CLI)."""

import json

import numpy as np
import pytest
from scipy import ndimage

torch = pytest.importorskip("torch")
pytest.importorskip("dynamic_network_architectures")

from imagio import cli  # noqa: E402
from imagio.detection import detect  # noqa: E402
from imagio.detection.deep import candidates_from_probability, nodule_probability  # noqa: E402
from imagio.errors import ImagioError, InputError  # noqa: E402
from imagio.segmentation.engine import synthetic  # noqa: E402
from imagio.segmentation.engine.predictor import Engine, EngineOptions  # noqa: E402

LABELS = ("background", "lung", "lung_nodules")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Random weights, the nodule logit raised by 0.5 so that several components of >= 3 mm
    pass the 0.5 threshold on the CT below (without it all are < 3 mm and the detector's output
    would be trivially empty)."""
    f = synthetic.make_model_folder(tmp_path_factory.mktemp("m") / "nod", labels=LABELS, patch_size=(16, 16, 16),
                                    spacing=(2.0, 1.5, 1.5), features=(4, 8, 16), seed=1)
    ck = f / "fold_0" / "checkpoint_final.pth"
    sd = torch.load(ck, weights_only=False)
    for k, v in sd["network_weights"].items():
        if "seg_layers" in k and k.endswith("bias"):
            v[LABELS.index("lung_nodules")] += 0.5
    torch.save(sd, ck)
    return f


@pytest.fixture
def ct(oblique_affine):
    # oblique, i flipped, 0.7 x 1.1 x 2.5 mm (conftest); 2.5 mm slices vs the model's 2 mm
    return synthetic.synthetic_ct((14, 22, 26), seed=4, ijk_to_ras=oblique_affine)


@pytest.mark.parametrize("orientation", [None, "RAS"])
def test_probabilities_on_ct_grid_and_labels_unchanged(folder, ct, orientation):
    eng = Engine(folder, EngineOptions(device="cpu", orientation=orientation, export_chunk=2))
    plain = eng.segment(ct)
    labels, probs = eng.segment(ct, return_probabilities=LABELS)
    np.testing.assert_array_equal(labels.array, plain.array)
    p = np.stack([probs[n].array for n in LABELS])
    for n in LABELS:
        assert probs[n].shape == ct.shape and probs[n].array.dtype == np.float32
        np.testing.assert_array_equal(probs[n].ijk_to_ras, ct.ijk_to_ras)
    assert p.min() >= 0 and p.max() <= 1
    np.testing.assert_allclose(p.sum(axis=0), 1.0, atol=1e-5)  # a softmax over all classes
    # the argmax of the probabilities is the label wherever the float16 label export cannot flip it
    top2 = np.sort(p, axis=0)[-2:]
    clear = top2[1] - top2[0] > 0.02
    assert clear.mean() > 0.5
    np.testing.assert_array_equal(p.argmax(axis=0)[clear], labels.array[clear])
    # the class chunks (2 classes of 3) give the same softmax as one chunk with all classes
    one = Engine(folder, EngineOptions(device="cpu", orientation=orientation, export_chunk=8))
    _, probs1 = one.segment(ct, return_probabilities=("lung_nodules",))
    np.testing.assert_allclose(probs1["lung_nodules"].array, probs["lung_nodules"].array, atol=1e-6)
    # the slow (per-axis resample) export path gives the same labels and probabilities
    slow = Engine(folder, EngineOptions(device="cpu", orientation=orientation, fast_export=False))
    labels_s, probs_s = slow.segment(ct, return_probabilities=("lung_nodules",))
    assert (labels_s.array == labels.array).mean() > 0.999
    np.testing.assert_allclose(probs_s["lung_nodules"].array, probs["lung_nodules"].array, atol=2e-3)


def test_unknown_class_is_one_line(folder, ct):
    eng = Engine(folder, EngineOptions(device="cpu"))
    with pytest.raises(InputError, match="no class 'liver'.*lung_nodules"):
        eng.segment(ct, return_probabilities=("liver",))
    _, one = eng.segment(ct, return_probabilities="lung_nodules")  # a single name, not its letters
    assert list(one) == ["lung_nodules"]


def _components(prob, threshold=0.5):
    """Independent reference: scipy 26-connected components, centroid through the affine."""
    lab, n = ndimage.label(prob.array > threshold, structure=np.ones((3, 3, 3)))
    out = []
    for c in range(1, n + 1):
        kji = np.argwhere(lab == c).mean(axis=0)
        ras = prob.ijk_to_ras @ np.r_[kji[::-1], 1.0]
        out.append((ras[:3], int((lab == c).sum()), float(prob.array[lab == c].max())))
    return sorted(out, key=lambda t: -t[2])


def test_deep_detect_candidates_equal_components(folder, ct):
    labels, prob = nodule_probability(ct, str(folder), device="cpu")
    np.testing.assert_array_equal(prob.ijk_to_ras, ct.ijk_to_ras)
    assert prob.shape == ct.shape
    ref = _components(prob)
    assert len(ref) >= 1, "the random model must give at least one component above 0.5"
    cands = candidates_from_probability(prob, threshold=0.5, min_diameter_mm=0)
    assert len(cands) == len(ref)
    for c, (ras, n, pmax) in zip(cands, ref):
        np.testing.assert_allclose(c.center_ras, ras, atol=1e-6)
        assert c.features["voxels"] == n and c.probability == pytest.approx(pmax)
    # detect(detector="deep") = the model's probability through candidates_from_probability
    lungs = np.ones(ct.shape, bool)
    got = detect(ct, lung_mask=lungs, detector="deep", model=str(folder), device="cpu")
    want = candidates_from_probability(prob, lung_mask=lungs)
    assert len(want) >= 2  # the size filter (3 mm) leaves a non-trivial list
    assert [tuple(np.round(c.center_ras, 6)) for c in got] == [tuple(np.round(c.center_ras, 6)) for c in want]
    assert all(c.detector == "deep" for c in got)
    # without a lung mask: the model's own lung class is the mask
    assert (labels.array == LABELS.index("lung")).any()
    own = detect(ct, detector="deep", model=str(folder), device="cpu")
    ref_own = candidates_from_probability(prob, lung_mask=labels.array == LABELS.index("lung"))
    assert [tuple(np.round(c.center_ras, 6)) for c in own] == [tuple(np.round(c.center_ras, 6)) for c in ref_own]


def test_missing_catalogue_model_is_one_line(tmp_path, monkeypatch, ct):
    from imagio import io

    monkeypatch.setenv("IMAGIO_MODELS_DIR", str(tmp_path / "empty"))
    with pytest.raises(ImagioError, match="imagio models fetch lung_nodules"):
        detect(ct, detector="deep")
    ctp = io.write_image(ct, tmp_path / "ct.nii.gz")
    assert cli.main(["detect", str(ctp), "--out", str(tmp_path / "o"), "--detector", "deep", "--quiet"]) == 2
    assert not (tmp_path / "o" / "candidates.json").exists()


def test_cli_deep_with_model_folder(tmp_path, folder, ct, capsys):
    from imagio import io

    ctp = io.write_image(ct, tmp_path / "ct.nii.gz")
    out = tmp_path / "o"
    assert cli.main(["detect", str(ctp), "--out", str(out), "--detector", "deep", "--model-folder", str(folder),
                     "--device", "cpu", "--quiet"]) == 0
    doc = json.loads((out / "candidates.json").read_text())
    assert doc["detector"] == "deep" and doc["model"] == str(folder)
    assert all(c["detector"] == "deep" for c in doc["candidates"])
    assert cli.main(["detect", str(ctp), "--out", str(tmp_path / "o2"), "--model-folder", str(folder), "--quiet"]) == 2


def test_probabilities_match_nnunet(folder, ct):
    """nnU-Net's own predictor (its probability export: resampled logits, softmax, background 1
    outside the crop) against ours, on the same array and spacing."""
    nn = pytest.importorskip("nnunetv2.inference.predict_from_raw_data")
    p = nn.nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False,
                           perform_everything_on_device=False, device=torch.device("cpu"),
                           verbose=False, allow_tqdm=False)
    p.initialize_from_trained_model_folder(str(folder), use_folds=(0,), checkpoint_name="checkpoint_final.pth")
    ref_seg, ref_p = p.predict_single_npy_array(ct.array[None].astype(np.float32),
                                                {"spacing": [float(s) for s in ct.spacing_kji]}, None, None, True)
    eng = Engine(folder, EngineOptions(device="cpu"))
    seg, probs = eng.predict_array(ct.array, ct.spacing_kji, return_probabilities=range(len(LABELS)))
    assert ref_p.shape == (len(LABELS), *ct.shape)
    assert (seg == ref_seg).mean() >= 0.999
    for c in range(len(LABELS)):
        d = np.abs(probs[c] - ref_p[c])
        assert d.max() < 2e-3 and d.mean() < 2e-4, (c, d.max(), d.mean())  # measured 2e-4, 3e-5
