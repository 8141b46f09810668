"""Noise in a soft-tissue organ is not a vessel, on any grid; contrast vessels are (vesselnoise115).

New-user trials 112/113: `imagio vessels` in the liver seeds on bright tubes (Hessian) 40 HU over
the liver and fills their lumen at half maximum. On a CT without contrast the liver's vessels are
no brighter than the liver, so every bright tube is noise; on the TotalSegmentator example at 3 mm,
clusters of 5-10 voxels passed the fixed piece filter (10 mm, 3 mm tube) and were written as 3 mm
vessels. Now the organ shows contrast vessels only when a piece's evidence (summed excess over the
liver in noise SDs) beats what the organ's noise gives to the same procedure on the mirrored CT
(2 x median - CT); where none does, no vessel is labelled and one warning says no contrast-enhanced
vessel is seen (not their absence). Where one does, every piece passing the shape rule is kept
(new-user trial 116 H1: a per-piece threshold dropped real 4.6-6.2 mm vessels on a portal-venous
liver, whose null holds the capsule's partial volume), and noise pieces among them are said.

Phantom: a liver ellipsoid (60 HU) in fat (-100 HU), CT noise (white noise blurred by a 0.6 mm
Gaussian point spread, scaled to the SD) at 0.75 x 0.75 x 1.5 mm, 1.5 mm and 3 mm voxels; with
contrast, three tubes of 4, 6 and 8 mm across it, 40-60 HU over the liver, profiles blurred by the
same point spread."""

from __future__ import annotations

import numpy as np
import pytest

from imagio.segmentation.vessels import vessels_and_blobs
from imagio.volume import Volume

GRIDS = {"0.75": (1.5, 0.75, 0.75), "1.5": (1.5, 1.5, 1.5), "3": (3.0, 3.0, 3.0)}
LIVER, EXTENT_MM, SEMI_MM = 60.0, 72.0, (30.0, 33.0, 33.0)
TUBES = ((4.0, -16.0), (6.0, 0.0), (8.0, 16.0))   # diameter mm, offset along j (mm) from the centre


def _phantom(grid, noise_sd, contrast, seed):
    sk = np.asarray(GRIDS[grid])
    shape = tuple(int(EXTENT_MM / s) for s in sk)
    pts = (np.stack(np.indices(shape), -1) + 0.5) * sk - 0.5 * EXTENT_MM   # mm from the centre
    liver = (np.square(pts / np.asarray(SEMI_MM)).sum(-1) <= 1.0)
    hu = np.where(liver, LIVER, -100.0)
    truth = np.zeros(shape, bool)
    if contrast:
        for d, off in TUBES:   # tubes along i (left-right), at k = 0, j = off
            r = np.hypot(pts[..., 0], pts[..., 1] - off)
            hu = hu + liver * contrast * 0.5 * (1 - np.tanh((r - d / 2) / 0.6))
            truth |= liver & (r <= d / 2)
    from scipy import ndimage
    w = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal(shape), 0.6 / sk)
    hu = hu + w * (noise_sd / w.std())
    return Volume(hu.astype(np.float32), np.diag([*sk[::-1], 1.0])), liver, truth, sk


@pytest.mark.parametrize("grid", list(GRIDS))
def test_noise_alone_is_no_vessel(grid):
    """A liver of noise alone (SD 20 HU): no vessel, and the one warning (old code: 0.75 mm 0
    voxels but no warning beyond 'no vessel brighter'; 1.5 mm and 3 mm: noise pieces kept)."""
    ct, liver, _, _ = _phantom(grid, 20.0, 0.0, seed=11)
    notes = []
    m, diam, _ = vessels_and_blobs(ct, liver, hu_checked=True, notes=notes)
    assert not m.any(), (grid, int(m.sum()))
    assert len(notes) == 1 and "no contrast-enhanced vessel is seen" in notes[0] and "NOT their absence" in notes[0], notes


CASES = [("0.75", 25.0, 50.0), ("1.5", 20.0, 40.0), ("3", 15.0, 60.0), ("3", 20.0, 50.0)]


@pytest.mark.parametrize("grid,noise_sd,contrast", CASES)
def test_contrast_vessels_are_found(grid, noise_sd, contrast):
    ct, liver, truth, sk = _phantom(grid, noise_sd, contrast, seed=5)
    notes = []
    m, diam, _ = vessels_and_blobs(ct, liver, hu_checked=True, notes=notes)
    dice = 2 * (m & truth).sum() / max(m.sum() + truth.sum(), 1)
    assert not any("no contrast-enhanced vessel" in n for n in notes), notes
    # the 6 and 8 mm tubes are found: at least half of their core (CNR 2-4: the half-maximum edge is noisy)
    pts = (np.stack(np.indices(m.shape), -1) + 0.5) * sk - 0.5 * EXTENT_MM
    for d, off in TUBES[1:]:
        core = liver & (np.hypot(pts[..., 0], pts[..., 1] - off) <= d / 2 - 0.5)
        assert m[core].mean() >= 0.5, (grid, d, float(m[core].mean()), dice)
    # the noise test decides whether the organ shows contrast at all, not which pieces are kept (on a real
    # liver its null holds the capsule's partial volume: trial 116 H1, real 4.6-6.2 mm vessels dropped):
    # noise pieces that pass the shape rule may stay, but most of the label lies on the tubes
    from scipy import ndimage
    near = ndimage.binary_dilation(truth, np.ones((3, 3, 3), bool))
    if (m & ~near).any():   # said: the low-contrast note names noise peaks among the pieces
        assert any("noise peaks" in n for n in notes), (grid, int((m & ~near).sum()), notes)
    # a tube whose core is mostly missed (the 4 mm one at 0.75 mm and SD 25 HU) is said: a vessel beside a
    # target may be missing from the label
    cores = [liver & (np.hypot(pts[..., 0], pts[..., 1] - off) <= d / 2 - 0.5) for d, off in TUBES]
    missed = [d for (d, _), c in zip(TUBES, cores) if c.any() and m[c].mean() < 0.5]
    if missed:
        assert any("may be missing" in n for n in notes), (grid, missed, notes)
    print(grid, noise_sd, contrast, "Dice", round(float(dice), 2), "6/8 mm core", [round(float(m[liver & (np.hypot(pts[..., 0], pts[..., 1] - o) <= d / 2 - 0.5)].mean()), 2) for d, o in TUBES if (liver & (np.hypot(pts[..., 0], pts[..., 1] - o) <= d / 2 - 0.5)).any()])


def test_eligibility_does_not_read_an_empty_vessel_label_as_absent():
    """`imagio vessels` on a CT without contrast writes an empty liver_vessels label: eligibility's
    perivascular criterion is then not checked (favourable None), not favourable (old code: True)."""
    from imagio.stratification.ablation_eligibility import assess

    sk = np.array([2.0, 2.0, 2.0])
    shape = (30, 40, 40)
    pts = np.stack(np.indices(shape), -1) * sk
    tumour = np.linalg.norm(pts - np.array([30.0, 40.0, 40.0]), axis=-1) <= 8.0
    lab = np.ones(shape, np.uint8)
    lab[tumour] = 2
    labels = Volume(lab, np.diag([*sk[::-1], 1.0]), labels={1: "liver", 2: "liver_tumor_1", 3: "liver_vessels"})
    ct = labels.with_array(np.where(tumour, 40, 60).astype(np.int16), labels={})
    pv = next(r for r in assess(ct, labels, "liver_tumor_1")["reasons"] if r["criterion"] == "perivascular")
    assert pv["favourable"] is None and "not checked" in pv["detail"], pv


def test_an_organ_label_on_the_skeleton_is_refused(tmp_path, capsys):
    """New-user trial 116 H3: an unnamed label map of another CT, its 'liver' lying on the ribs, gave
    4.26 mL of 'vessels', 84 % of them rib, with no word. An organ more than 2 % of which reads as
    cortical bone (>= 700 HU) is refused in one line; the liver itself is not."""
    from synthetic_ct import make_ct

    ct, t = make_ct(spacing=(4.0, 4.0, 4.0), noise=12.0)
    bone = t["spine"] | t["ribs"]
    ct = ct.with_array(np.where(bone, 1000, ct.array).astype(np.int16))   # cortical bone (the phantom's is 200-650)
    from imagio import cli, io

    src = tmp_path / "ct.nrrd"
    io.write_image(ct, src)
    for organ, code in ((t["liver"] | bone, 2), (t["liver"], 0)):
        path = tmp_path / f"organ{code}.nii.gz"
        io.write_labels(ct.with_array(organ.astype(np.uint8), labels={1: "liver"}), path)
        assert cli.main(["vessels", str(src), "--organ", str(path), "--organ-labels", "liver", "--out",
                         str(tmp_path / f"v{code}.nii.gz"), "--quiet"]) == code
        err = capsys.readouterr().err
        assert ("lies on bone" in err) == bool(code), err
