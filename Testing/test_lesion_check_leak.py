"""One-click lesion: the outlines the click checks grow are judged as their clicks run alone
would be (issue 14, new-user trial on Lung_Dx-A0001): an outline that leaked never bounds the
range, a range whose end cannot be trusted is not given, and the flag agrees with the words.

Trial findings: clicked at LPS 41.8, 191.5, -229, the JSON said "treat the volume as
162.1-1051.0 mL" with ``leaked`` false: the 1051 mL outline (a probe of ``_click_agreement``,
3 % inside the reader boxes) passed ``_leaked`` (closed, regular, bordered by lung), yet run alone
that click is reported leaked (a click inside its outline grows 1204 mL to the size limit).
A core-only outline of a mass got the range "0.1-7.5 mL"; notes said the volume "depends on
where the click lies" while ``click_dependent`` was false."""

import csv

import numpy as np
import pytest

from conftest import rotation, shared_case
from imagio.segmentation.lesion import DEPENDS, segment_lesion
from imagio.segmentation.measurements import LesionMeasurements
from imagio.volume import Volume, make_ijk_to_ras


def _bar_and_ball(spacing=(0.9, 1.1, 2.0)):
    """Soft tissue (40 HU) in fat (-100 HU) on an oblique, flipped, anisotropic grid (i, j, k mm):
    in a body in air, a bar 12 mm in radius and 170 mm long along R (a muscle, a vessel, the mediastinum: tissue of
    a lesion's density that runs on) and, apart from it, a 15 mm radius ball (a lesion); noise
    SD 8 HU. Returns (ct, bar, ball) with the masks [k, j, i]."""
    sp = np.asarray(spacing, float)
    n = np.round(np.array([230.0, 150.0, 90.0]) / sp).astype(int)
    d = rotation((0.3, 0.2, 1.0), 25.0) @ np.diag([1.0, -1.0, 1.0])
    ct = Volume(np.zeros(tuple(n[::-1]), np.float32), make_ijk_to_ras(sp, -(d * sp) @ ((n - 1) / 2), d))
    ras = ct.kji_to_world(np.stack(np.indices(ct.shape), -1).reshape(-1, 3)).reshape(ct.shape + (3,))
    x, y, z = ras[..., 0], ras[..., 1], ras[..., 2]
    bar = (np.abs(x) <= 85.0) & ((y - 30.0) ** 2 + z ** 2 <= 12.0 ** 2)
    ball = x ** 2 + (y + 35.0) ** 2 + z ** 2 <= 15.0 ** 2
    a = np.where((x / 110.0) ** 2 + (y / 70.0) ** 2 <= 1.0, -100.0, -1000.0)   # a body in air
    a[bar | ball] = 40.0
    ct.array = (a + np.random.default_rng(4).normal(0, 8.0, a.shape)).astype(np.float32)
    return ct, bar, ball, (x, y, z)


def test_a_check_outline_is_judged_as_its_click_run_alone():
    """The mechanism of the trial's 1051 mL, on a phantom: a check outline that is closed,
    regular and within the size limit (a 40 mm piece of a long bar of soft tissue, as a probe
    grown in a smaller box gives) passes ``_leaked``; run alone, a click inside it follows the
    bar to the size limit, so it is a leak and no bound (``_check_outline_leak`` gives the
    reason). A real closed lesion (the ball) checked the same way is not a leak. Independent
    check: the painted bar runs 170 mm, beyond the 40 mm size limit."""
    from imagio.segmentation.lesion import _check_outline_leak, _leaked, _plausibility, measure

    ct, bar, ball, (x, y, z) = _bar_and_ball()
    kw = dict(organ=None, max_radius_mm=40.0, open_mm=1.0, _data=None)
    piece = bar & (np.abs(x) <= 20.0)
    meas = measure(piece, ct, ct.array, kind="soft_tissue")
    _plausibility(piece, ct, meas)
    assert not _leaked(meas, piece, ct)                     # the per-outline criteria pass it
    at = tuple(int(v) for v in np.argwhere(piece & (np.abs(x + 15.0) < 1.0) & (np.abs(y - 30.0) < 1.0))[0])
    why = _check_outline_leak(ct, at, piece, None, "soft_tissue", 40.0, kw, v0=2.0)
    assert why and "leaked" in why, why
    # the ball, a closed lesion: its own interior click grows it again
    at = tuple(int(v) for v in np.argwhere(ball & (np.abs(x + 8.0) < 1.0) & (np.abs(y + 35.0) < 1.0))[0])
    assert _check_outline_leak(ct, at, ball, None, "soft_tissue", 40.0, kw, v0=2.0) is None


def test_the_range_is_not_given_when_an_end_cannot_be_trusted():
    """``_click_range``: a check outline that leaked never bounds the range and no range is given
    (leaked, click_dependent, a 'leaked' warning naming its mL, no 'treat the volume as');
    a check click that grew no lesion (0 mL) gives no bottom: no range, click_dependent, the
    warning says the volume is not found from a click and names no 0.0 mL bound; a note that
    says the volume depends on the click sets click_dependent (the words and the flag agree)."""
    from imagio.segmentation.lesion import _click_range

    def fresh():
        return LesionMeasurements("lung_nodule", 162.1, 100.0, 90.0, 100.0, 90.0, 30.0), []

    meas, notes = fresh()
    _click_range(meas, [162.1, 150.0], notes, leaks=[1051.0])
    # trial 64: the leak is the check outline's (check_leaked), not this outline's (leaked)
    assert meas.check_leaked and not meas.leaked and meas.click_dependent and meas.volume_range_ml is None
    assert meas.to_dict()["volume_ml"] is None
    assert any(n.startswith("click-dependent outline: a check click's outline leaked") and "1051.0 mL" in n
               for n in notes), notes
    assert not any("treat the volume as" in n for n in notes), notes
    meas, notes = fresh()
    _click_range(meas, [7.5, 0.0], notes)
    assert meas.click_dependent and meas.volume_range_ml is None and not meas.leaked and not meas.check_leaked
    assert any("not found from a click" in n for n in notes) and not any("0.0-" in n for n in notes), notes
    meas, notes = fresh()
    notes.append(f"the volume {DEPENDS}: a click elsewhere gives 200.0 mL against 162.1 mL")
    _click_range(meas, [162.1, 200.0], notes)
    assert meas.click_dependent and meas.volume_range_ml == [162.1, 200.0], notes
    assert any("more than 15 % apart" in n for n in notes), notes
    # trial 75: a note says the volume depends on the click (an outside check click) while the
    # volumes are 2.7 % apart: the range is given, and no spread that is not there is claimed
    meas, notes = LesionMeasurements("soft_tissue", 21.9, 40.0, 30.0, 40.0, 30.0, 35.0), []
    notes.append(f"the volume {DEPENDS}: a check click outside the outline grew the same mass")
    _click_range(meas, [21.33, 21.9], notes)
    assert meas.click_dependent and meas.volume_range_ml == [21.33, 21.9], notes
    assert any("21.3-21.9 mL" in n for n in notes) and not any("apart" in n for n in notes), notes
    meas, notes = fresh()   # within 15 %: one volume, no flag
    _click_range(meas, [162.1, 170.0], notes)
    assert not meas.click_dependent and meas.volume_summary_ml == pytest.approx(162.1)


def _dx():
    from imagio import io
    from test_lesion import _dx_boxes

    ct = io.read_image(shared_case("lung-pet-ct-dx", "Lung_Dx-A0001_ct.nii.gz"))
    rows = list(csv.DictReader(open(shared_case("lung-pet-ct-dx", "Lung_Dx-A0001_boxes.csv"))))
    return ct, _dx_boxes(ct, rows)


def test_lung_dx_leaked_probe_outline_does_not_bound_the_range():
    """The trial's click (LPS 41.8, 191.5, -229; the first box's centre): on main its JSON gave
    162.1-1051.0 mL, leaked false. The probe click named in the warning, run alone, reports its
    result leaked; so the combined result is leaked and click-dependent, with no range and no
    volume presented. Independent check: the reader boxes; an outline presented as a volume or
    a range's end must lie mostly (>= 50 %) inside them."""
    import re

    ct, boxes = _dx()
    m, meas = segment_lesion(ct, [-41.8, -191.5, -229.0])
    inside = float((m & boxes).sum()) / float(m.sum())
    probe = [w for w in meas.warnings if "a click elsewhere inside this outline" in w]
    assert probe, meas.warnings
    at = [float(v) for v in re.search(r"R,A,S = \[([^\]]+)\]", probe[0]).group(1).split(",")]
    m2, meas2 = segment_lesion(ct, at, kind=meas.kind)
    inside2 = float((m2 & boxes).sum()) / float(m2.sum())
    if meas2.leaked or inside2 < 0.5:
        # the probe's click alone is leaked (or mostly outside the boxes): its volume bounds nothing
        rng = meas.volume_range_ml
        assert rng is None or max(rng) < 0.9 * float(m2.sum()) * ct.voxel_volume_ml, (rng, meas.warnings)
    assert meas.volume_summary_ml is None or inside >= 0.5, (inside, meas.to_dict())
    assert meas.check_leaked and meas.click_dependent and meas.volume_range_ml is None, meas.warnings
    # said once: the summary, or the check's own warning with the outcome in front (trial 66 L4)
    assert any(w.startswith(("click-dependent outline: a check click's outline leaked",
                             "click-dependent outline (no volume or range is given)")) for w in meas.warnings), \
        meas.warnings


def test_lung_dx_depends_note_sets_the_flag():
    """On main the click at RAS -42.2, -201.6, -214.0 (benchmarks.lesion_clicks dx) gave a note that
    the volume depends on the click (57.5 against 33.1 mL) with click_dependent false and a
    single volume presented. Whenever a note says the volume depends on the click, the flag is
    set and no single volume is presented."""
    ct, boxes = _dx()
    m, meas = segment_lesion(ct, [-42.2, -201.6, -214.0])
    if any(DEPENDS in w for w in meas.warnings):
        assert meas.click_dependent and meas.volume_summary_ml is None, meas.warnings
    inside = float((m & boxes).sum()) / float(m.sum())
    assert inside >= 0.8 or meas.click_dependent or meas.leaked or meas.check_leaked or meas.part_of_mass, (inside, meas.warnings)


def test_a_check_click_that_grows_a_speck_is_no_bottom_of_a_range():
    """The trial's '0.1-7.5 mL' (a core-only outline of a mass whose check click grew a speck),
    on a phantom: an outline (an ellipsoid, 6.7 mL, given as the first outline) whose interior
    check click, the deepest-enough voxel farthest from the click, lies on a 3 mm radius bead of
    soft tissue in fat. The check grows the bead (0.13 mL painted), less than the 5 mm ball the
    click's statistics come from: no lesion is found there, so its volume is recorded as no
    outline (0 mL), not as the bottom of a range, and the note says so. On main the volumes were
    [6.7, 0.12] and the range 0.1-6.7 mL. Independent check: the painted bead's volume."""
    import edt

    from imagio.segmentation.lesion import _click_agreement

    ct, bar, ball, (x, y, z) = _bar_and_ball()
    outline = ((x + 45.0) / 20.0) ** 2 + ((y + 35.0) / 9.0) ** 2 + (z / 9.0) ** 2 <= 1.0
    sk = np.asarray(ct.spacing_kji)
    depth = edt.edt(np.ascontiguousarray(outline), anisotropy=tuple(sk), black_border=True)
    seed = tuple(int(v) for v in np.argwhere(outline & (np.abs(x + 60.0) < 1.0) & (np.abs(y + 35) < 1.2)
                                             & (np.abs(z) < 1.5))[0])
    inside = np.argwhere(depth >= min(5.0, 0.6 * depth.max()))
    far = ct.kji_to_world(inside[np.argmax((((inside - np.array(seed)) * sk) ** 2).sum(1))][None].astype(float))[0]
    bead = (x - far[0]) ** 2 + (y - far[1]) ** 2 + (z - far[2]) ** 2 <= 3.0 ** 2
    a = ct.array.copy()
    a[bead] = 40.0 + np.random.default_rng(5).normal(0, 8.0, int(bead.sum()))
    ct.array = a.astype(np.float32)
    assert float(bead.sum()) * ct.voxel_volume_ml < 0.2
    vols, leaks = [], []
    notes = _click_agreement(ct, seed, outline, [], 40.0, dict(organ=None, max_radius_mm=150.0, open_mm=1.0,
                                                                _data=None), volumes=vols, leaks=leaks)
    assert len(vols) == 2 and vols[1] == 0.0 and not leaks, (vols, notes)
    assert any("no lesion is found there" in n for n in notes), notes
