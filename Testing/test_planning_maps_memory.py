"""Issue 20: what the planning maps hold. ``code`` is uint16 (label | flags << 8) and the
crop's labels uint8 when every label value is < 256, uint32 (label | flags << 16) and uint16
otherwise; the smoothed body of the skin normals is not stored but computed on the box a call
reads (`PlanningMaps.body_smooth_box`), bit-identical to the whole crop's filter. The plans are the same either way."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from conftest import rotation
from imagio.planning import PlanningProblem, plan
from imagio.planning import distance_maps as dm
from imagio.planning.candidates import _gradient_at, normals_at
from imagio.planning.synthetic import synthetic_torso


def _case(shift=0):
    """The synthetic torso on an oblique, flipped, anisotropic grid; ``shift`` added to every
    non-zero label value (>= 256: labels that do not fit in 8 bits)."""
    ct, lab = synthetic_torso(spacing=(2.5, 3.0, 3.5),
                              direction=rotation((0, 0, 1), 20.0) @ rotation((1, 0, 0), 10.0) @ np.diag([1.0, -1.0, 1.0]))
    if shift:
        a = lab.array.astype(np.uint16)
        a[a > 0] += shift
        lab = lab.with_array(a, labels={v + shift: n for v, n in lab.labels.items() if v})
    return ct, lab


def _crop_voxel_bytes(maps) -> float:
    """Bytes per crop voxel of the arrays of the crop's shape the maps hold."""
    held = [a for a in maps.__dict__.values() if isinstance(a, np.ndarray) and a.shape == maps.code.shape]
    held.append(maps.label)
    return sum({id(a): a.nbytes for a in held}.values()) / maps.code.size


def test_code_is_uint16_when_the_labels_fit_and_the_plan_equals_the_wide_codes():
    dm.forget_cached_maps()
    ct, lab = _case()
    narrow = plan(PlanningProblem.build(ct, lab, "liver_tumor"), k=3)
    m = narrow.maps
    assert m.code.dtype == np.uint16 and m.code_shift == 8
    assert m.label.dtype == np.uint8   # the crop's labels: uint8 when they fit (main: uint16)
    lab_c, flg = m.split_code(m.code)
    assert np.array_equal(lab_c, m.label)
    assert (flg & dm.BODY).any() and (flg & dm.SKIN).any() and (flg & dm.LIVER).any()
    # hard, avoid float16, code uint16, the crop's labels uint8; no float32 field (speed20: 8)
    assert _crop_voxel_bytes(m) <= 7.0, _crop_voxel_bytes(m)
    assert m.nbytes - (0 if m._bnd is None else m._bnd.nbytes) <= 7 * m.code.size + 2**16

    dm.forget_cached_maps()
    ct2, lab2 = _case(shift=300)
    wide = plan(PlanningProblem.build(ct2, lab2, "liver_tumor"), k=3)
    w = wide.maps
    assert w.code.dtype == np.uint32 and w.code_shift == 16 and w.label.dtype == np.uint16
    lab_w, flg_w = w.split_code(w.code)
    assert np.array_equal(flg_w, flg)
    assert np.array_equal(lab_w, np.where(m.label > 0, m.label.astype(np.int64) + 300, 0))
    assert np.array_equal(w.hard, m.hard) and np.array_equal(w.avoid, m.avoid)
    assert np.array_equal(wide.table.score, narrow.table.score)
    assert [list(p.entry_ras) for p in wide.proposals] == [list(p.entry_ras) for p in narrow.proposals]
    assert wide.warnings == narrow.warnings


def test_body_smooth_on_a_box_equals_the_whole_crop_filter_and_the_normals_are_unchanged():
    dm.forget_cached_maps()
    ct, lab = _case()
    p = plan(PlanningProblem.build(ct, lab, "liver_tumor"), k=3)
    m = p.maps
    body = (m.flags & dm.BODY) > 0
    whole = ndimage.gaussian_filter(body, sigma=m.body_sigma, output=np.float32)
    assert np.array_equal(m.body_smooth, whole)
    shape = np.array(m.code.shape)
    rng = np.random.default_rng(0)
    boxes = [((0, 0, 0), shape), ((0, 0, 0), (1, 2, 3)), (shape - 1, shape), (shape // 3, shape // 3 + 4)]
    for _ in range(20):
        a = rng.integers(0, shape)
        boxes.append((a, a + rng.integers(1, shape)))   # clipped to the crop
    for lo, hi in boxes:
        got = m.body_smooth_box(lo, hi)
        lo_c = np.clip(lo, 0, shape)
        hi_c = np.clip(hi, lo_c, shape)
        assert np.array_equal(got, whole[tuple(slice(x, y) for x, y in zip(lo_c, hi_c))]), (lo, hi)
    # normals: the candidates', points off the voxel centres, points beyond the crop's faces
    pts = np.concatenate([p.candidates.entry_ras,
                          m.grid.kji_to_world(rng.uniform(-2.0, shape + 1.0, (200, 3))),
                          m.grid.kji_to_world(np.array([[0.3, 1.7, 2.2]]))])
    for sub in (pts, pts[:1], pts[-1:], pts[-201:-1]):
        kji = m.world_to_kji(sub)
        g = _gradient_at(whole, kji)
        n = -(g @ m._r2k[0])
        nn = np.linalg.norm(n, axis=1, keepdims=True)
        assert np.array_equal(normals_at(m, sub), n / np.where(nn > 0, nn, 1.0))
