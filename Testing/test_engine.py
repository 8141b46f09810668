"""The nnU-Net v2 compatible engine against nnunetv2's own predictor (random-weight model folders
built on disk), plus its building blocks (Gaussian map, tiling, resampling, checkpoint safety,
geometry, cancel)."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("dynamic_network_architectures")

from imagio.errors import Cancelled, InputError  # noqa: E402
from imagio.segmentation.engine import model_folder, resample, sliding_window, synthetic  # noqa: E402
from imagio.segmentation.engine.predictor import Engine, EngineOptions, ras_canonical_plan  # noqa: E402
from imagio.volume import Volume, make_ijk_to_ras  # noqa: E402

CT_SHAPE, CT_SPACING = (24, 40, 36), (1.5, 1.5, 2.5)  # kji voxels; (i, j, k) mm


def _nnunet_predict(folder, ct, mirror, folds=(0,), step=0.5):
    nn = pytest.importorskip("nnunetv2.inference.predict_from_raw_data")
    p = nn.nnUNetPredictor(tile_step_size=step, use_gaussian=True, use_mirroring=mirror,
                           perform_everything_on_device=False, device=torch.device("cpu"),
                           verbose=False, allow_tqdm=False)
    p.initialize_from_trained_model_folder(str(folder), use_folds=folds, checkpoint_name="checkpoint_final.pth")
    props = {"spacing": [float(s) for s in ct.spacing_kji]}
    return p, p.predict_single_npy_array(ct.array[None].astype(np.float32), props, None, None, False)


@pytest.fixture(scope="module")
def plain_folder(tmp_path_factory):
    return synthetic.make_model_folder(tmp_path_factory.mktemp("m") / "plain", patch_size=(32, 32, 32),
                                       spacing=(2.0, 1.5, 1.5), features=(8, 16, 32))


@pytest.fixture(scope="module")
def ct():
    return synthetic.synthetic_ct(CT_SHAPE, CT_SPACING, seed=3)


@pytest.mark.parametrize("mirror", [False, True])
def test_parity_with_nnunet_plain_unet(plain_folder, ct, mirror):
    eng = Engine(plain_folder, EngineOptions(device="cpu", mirror=mirror))
    ours = eng.predict_array(ct.array, ct.spacing_kji)
    _, ref = _nnunet_predict(plain_folder, ct, mirror)
    assert ours.shape == ref.shape == ct.shape
    assert len(np.unique(ref)) >= 3  # a non-trivial answer
    assert (ours == ref).mean() >= 0.999


def test_parity_resenc_anisotropic_transposed_two_folds(tmp_path):
    # target spacing ratio 4.0 / 1.2 > 3: nnU-Net resamples the low-res axis separately (order 0)
    folder = synthetic.make_model_folder(tmp_path / "resenc", resenc=True, patch_size=(24, 40, 32),
                                         spacing=(4.0, 1.2, 1.2), transpose_forward=(0, 2, 1),
                                         labels=("background", "liver", "liver_tumor"), folds=(0, 1))
    ct = synthetic.synthetic_ct((14, 36, 30), (1.3, 1.1, 4.5), seed=5)
    ours = Engine(folder, EngineOptions(device="cpu", folds=[0, 1])).predict_array(ct.array, ct.spacing_kji)
    _, ref = _nnunet_predict(folder, ct, False, folds=(0, 1))
    assert len(np.unique(ref)) == 3
    assert (ours == ref).mean() >= 0.999


def test_sliding_window_logits_close_to_nnunet(plain_folder, ct):
    p, _ = _nnunet_predict(plain_folder, ct, False)
    data = torch.from_numpy(np.random.default_rng(0).normal(size=(1, 40, 44, 36)).astype(np.float32))
    ref = p.predict_sliding_window_return_logits(data).float()
    eng = Engine(plain_folder, EngineOptions(device="cpu"))
    with torch.inference_mode():
        ours = sliding_window.predict_logits(eng.network, data, (32, 32, 32), step=0.5, batch_size=3).float()
    assert ours.shape == ref.shape
    assert torch.allclose(ours, ref, atol=2e-2, rtol=1e-2)


def test_old_plans_format_gives_same_result(tmp_path, ct):
    new = synthetic.make_model_folder(tmp_path / "new", seed=7)
    old = synthetic.make_model_folder(tmp_path / "old", seed=7, old_format=True)
    assert "architecture" not in json.loads((old / "plans.json").read_text())["configurations"]["3d_fullres"]
    a = Engine(new, EngineOptions(device="cpu")).predict_array(ct.array, ct.spacing_kji)
    b = Engine(old, EngineOptions(device="cpu")).predict_array(ct.array, ct.spacing_kji)
    assert np.array_equal(a, b)


def test_gaussian_matches_nnunet_and_formula():
    from nnunetv2.inference.sliding_window_prediction import compute_gaussian
    from scipy.ndimage import gaussian_filter

    for patch in [(32, 32, 32), (24, 40, 32), (7, 9, 12)]:
        ours = sliding_window.gaussian_map_np(patch)
        ref = compute_gaussian(patch, 1 / 8, 10, torch.float16, torch.device("cpu")).numpy()
        assert ours.dtype == np.float16 and np.array_equal(ours, ref)
        # the formula, written out: delta at patch//2, sigma patch/8, max 10, no zeros
        d = np.zeros(patch)
        d[tuple(p // 2 for p in patch)] = 1
        g = gaussian_filter(d, [p / 8 for p in patch], mode="constant")
        assert ours.max() == np.float16(10) and ours.min() > 0
        assert np.allclose(ours.astype(float), g / g.max() * 10, atol=1e-2)


def test_steps_per_axis():
    from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window

    for size, patch, step in [((32, 40, 97), (32, 32, 32), 0.5), ((200, 300, 129), (64, 128, 128), 0.8),
                              ((128, 128, 128), (128, 112, 96), 0.5)]:
        ours = sliding_window.compute_steps(size, patch, step)
        assert ours == compute_steps_for_sliding_window(size, patch, step)
        for s, p, st in zip(size, patch, ours):
            assert len(st) == int(np.ceil((s - p) / (p * step))) + 1 and st[0] == 0 and st[-1] == s - p


@pytest.mark.parametrize("order,spacings", [(3, ((2.5, 0.9, 1.1), (2.0, 1.5, 1.5))),
                                            (3, ((5.0, 1.0, 1.0), (3.0, 1.5, 1.5))),
                                            (1, ((2.0, 1.5, 1.5), (2.5, 0.9, 1.1))),
                                            (1, ((4.0, 1.2, 1.2), (4.5, 1.1, 1.3)))])
def test_resampling_matches_nnunet(order, spacings):
    from nnunetv2.preprocessing.resampling.default_resampling import compute_new_shape, resample_data_or_seg_to_shape

    cur, new = spacings
    x = np.random.default_rng(1).normal(size=(2, 13, 21, 17)).astype(np.float32)
    shape = compute_new_shape(x.shape[1:], cur, new)
    ref = resample_data_or_seg_to_shape(x, shape, cur, new, is_seg=False, order=order, order_z=0,
                                        force_separate_z=None)
    ours = resample.resample_to_shape(torch.from_numpy(x), shape, cur, new, order=order, order_z=0).numpy()
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() < 1e-4


def test_checkpoint_needing_pickle_is_refused(plain_folder, tmp_path):
    import argparse
    import shutil

    folder = tmp_path / "evil"
    shutil.copytree(plain_folder, folder)
    ckpt = torch.load(folder / "fold_0/checkpoint_final.pth", weights_only=False)
    ckpt["init_args"]["namespace"] = argparse.Namespace(x=1)  # an arbitrary class: needs pickle
    torch.save(ckpt, folder / "fold_0/checkpoint_final.pth")
    with pytest.raises(InputError, match="pickle"):
        Engine(folder, EngineOptions(device="cpu"))


def test_real_style_checkpoint_with_numpy_scalars_loads(plain_folder):
    ckpt = model_folder.load_checkpoint(plain_folder / "fold_0/checkpoint_final.pth")
    assert isinstance(ckpt["logging"]["mean_fg_dice"][0], np.float64)
    assert any(k.startswith("decoder.encoder.") for k in ckpt["network_weights"])


def test_corrupt_or_truncated_checkpoint(plain_folder, tmp_path):
    import shutil

    folder = tmp_path / "bad"
    shutil.copytree(plain_folder, folder)
    p = folder / "fold_0/checkpoint_final.pth"
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    with pytest.raises(InputError, match="corrupt"):
        Engine(folder, EngineOptions(device="cpu"))
    p.write_bytes(b"not a checkpoint at all")
    with pytest.raises(InputError, match="corrupt"):
        Engine(folder, EngineOptions(device="cpu"))


def test_missing_duplicate_decoder_encoder_keys_are_filled(plain_folder, tmp_path, ct):
    import shutil

    folder = tmp_path / "dedup"
    shutil.copytree(plain_folder, folder)
    p = folder / "fold_0/checkpoint_final.pth"
    ckpt = torch.load(p, weights_only=False)
    ckpt["network_weights"] = {("_orig_mod." + k): v for k, v in ckpt["network_weights"].items()
                               if not k.startswith("decoder.encoder.")}
    torch.save(ckpt, p)
    a = Engine(plain_folder, EngineOptions(device="cpu")).predict_array(ct.array, ct.spacing_kji)
    b = Engine(folder, EngineOptions(device="cpu")).predict_array(ct.array, ct.spacing_kji)
    assert np.array_equal(a, b)


def test_oblique_geometry_and_ras_reorientation(plain_folder, oblique_affine):
    """Labels come back on the input grid; with orientation RAS the answer does not depend on
    how the same image is stored (axis order and flips)."""
    base = synthetic.synthetic_ct((20, 30, 26), (1.2, 1.4, 2.6), seed=2, ijk_to_ras=oblique_affine)
    eng = Engine(plain_folder, EngineOptions(device="cpu", orientation="RAS"))
    seg = eng.segment(base)
    assert seg.shape == base.shape and np.allclose(seg.ijk_to_ras, base.ijk_to_ras)
    assert seg.labels == {1: "liver", 2: "lung_vessels", 3: "airways"}
    # the same image stored with k reversed and i <-> j swapped
    arr = base.array[::-1].transpose(0, 2, 1)
    m = base.ijk_to_ras.copy()
    flip_k = np.eye(4)
    flip_k[2, 2], flip_k[2, 3] = -1, base.shape[0] - 1
    swap = np.eye(4)[[1, 0, 2, 3]]
    other = Volume(arr.copy(), m @ flip_k @ swap, "restored")
    assert np.allclose(other.kji_to_world([[0, 0, 0]]), base.kji_to_world([[base.shape[0] - 1, 0, 0]]))
    seg2 = eng.segment(other)
    assert np.array_equal(seg2.array, seg.array[::-1].transpose(0, 2, 1))
    perm, flip = ras_canonical_plan(make_ijk_to_ras((1, 1, 1)))
    assert perm == [0, 1, 2] and flip == [False, False, False]


def test_cancel_mid_run(plain_folder, ct):
    calls = []

    def cb(fraction, message):
        calls.append((fraction, message))
        return not message.startswith("fold 0: tile")  # cancel at the first tile batch

    eng = Engine(plain_folder, EngineOptions(device="cpu", batch_size=1))
    with pytest.raises(Cancelled):
        eng.segment(ct, progress=cb)
    assert calls and all(0 <= f <= 1 for f, _ in calls)


def test_progress_reaches_one_and_cuda_request_without_gpu(plain_folder, ct):
    seen = []
    Engine(plain_folder, EngineOptions(device="cpu")).segment(ct, progress=lambda f, m: seen.append(f))
    assert seen[-1] == 1.0 and seen == sorted(seen)
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA"):
            Engine(plain_folder, EngineOptions(device="cuda"))


@pytest.mark.parametrize("shape_in,shape_out,cur,new", [
    ((20, 17, 23), (41, 30, 47), (3.0, 3.0, 3.0), (1.5, 1.7, 1.46)),   # upsampling, order 1 all axes
    ((9, 30, 28), (40, 61, 50), (5.0, 1.0, 1.0), (1.1, 0.49, 0.56)),   # anisotropic: nearest along z
    ((30, 9, 26), (17, 41, 13), (1.0, 5.0, 1.0), (1.76, 1.1, 2.0)),    # separate axis 1, downsampling
    ((30, 25, 26), (17, 25, 13), (1.0, 1.0, 1.0), (1.76, 1.0, 2.0)),   # downsampling + identity axis
])
def test_fast_export_equals_per_axis_resample_argmax(shape_in, shape_out, cur, new):
    """The interpolate-based export gives the labels of nnU-Net-style per-axis resampling of
    every class followed by argmax."""
    from imagio.segmentation.engine import export

    g = torch.Generator().manual_seed(7)
    n_cls = 13
    coarse = torch.randn((n_cls, 4, 4, 4), generator=g)
    logits = torch.nn.functional.interpolate(coarse[None], size=shape_in, mode="trilinear")[0]
    logits = (4 * logits + 0.3 * torch.randn((n_cls,) + shape_in, generator=g)).to(torch.float16)
    plan = export.linear_plan(shape_in, shape_out, new, cur, 1, 0)
    assert plan is not None
    fast = export.argmax_linear_export(logits, shape_out, plan, chunk=5)
    full = resample.resample_to_shape(logits, shape_out, new, cur, order=1, order_z=0).to(torch.float16)
    ref = full.float().argmax(dim=0).numpy()
    assert fast.shape == tuple(shape_out)
    assert len(np.unique(ref)) >= 5
    assert (fast == ref).mean() >= 0.9999
    assert export.linear_plan(shape_in, shape_out, new, cur, 3, 0) is None  # order 3: per-axis path


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")
@pytest.mark.parametrize("autocast", ["fp16", "none"])
def test_cuda_labels_match_nnunet(plain_folder, ct, autocast):
    """On the GPU (fp16 autocast, logits kept on the device) the labels still match nnU-Net's."""
    eng = Engine(plain_folder, EngineOptions(device="cuda", autocast=autocast))
    ours = eng.predict_array(ct.array, ct.spacing_kji)
    _, ref = _nnunet_predict(plain_folder, ct, False)
    assert (ours == ref).mean() >= 0.999
