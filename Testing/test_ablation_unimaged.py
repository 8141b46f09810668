"""An ablation zone that runs past the end of the scan is measured whole and its part there is
said (new-user trial 90, finding 1b): a 10 mm liver tumour 4 mm below the last slice got a
48 x 42 mm zone of which 7.5 mL (17 %) lay above the image; IMAGIO reported the imaged part only
(zone 36.8 mL for the device's 44.3, "healthy tissue: liver 36.3 mL", margin 15 mm) and no word
of the diaphragm, lung base and pericardium the zone burns there.

Synthetic: a label map (liver everywhere, a spherical tumour near the superior end) on a flipped
(k towards inferior), anisotropic (0.8 x 1.3 x 2.5 mm), 10-degree oblique grid; zones (one, and a
union of two) crossing the superior end. Checked independently: the zone's part outside the
array by counting the points of a 0.4 mm RAS lattice inside the analytic ellipsoids whose
continuous index (through the label map's own inverse matrix) lies outside [-0.5, n - 0.5];
the zone's whole volume against the ellipsoid's analytic volume; the distance from the tumour to
the array's superior face analytically.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import rotation

from imagio.planning.ablation import AblationContext
from imagio.planning.ablation.commands import zone_doubts
from imagio.planning.ablation.zones import Ellipsoid
from imagio.volume import Volume

SPACING = np.array([0.8, 1.3, 2.5])                 # i, j, k mm
SHAPE = (24, 70, 90)                                # k, j, i
TUMOUR_R = 5.0
GAP_MM = 2.0                                        # tumour sphere to the array's superior face


def _labels():
    """(labels, tumour centre RAS, the array's superior face: a point on it and its unit normal)."""
    rot = rotation((1, 0, 0), 10.0)
    direction = rot @ np.diag([1.0, -1.0, -1.0])      # j towards posterior, k towards inferior (flipped)
    m = np.eye(4)
    m[:3, :3] = direction * SPACING[None, :]
    m[:3, 3] = [-35.0, 45.0, 20.0]
    lab = Volume(np.ones(SHAPE, np.uint8), m, labels={1: "liver", 2: "liver_tumor_1"})
    # tumour: centre GAP_MM + its radius below the superior face (k = -0.5), mid-slab in i and j
    face_pt = lab.kji_to_world(np.array([[-0.5, 35.0, 45.0]]))[0]
    normal = -direction[:, 2]                          # superior-ish: towards k < 0
    centre = face_pt - (TUMOUR_R + GAP_MM) * normal
    kji = np.argwhere(np.ones(SHAPE, bool))
    d = np.linalg.norm(lab.kji_to_world(kji.astype(float)) - centre, axis=1)
    arr = lab.array.copy()
    arr[tuple(kji[d <= TUMOUR_R].T)] = 2
    return lab.with_array(arr, labels=lab.labels), centre, face_pt, normal


def _outside_ml(lab: Volume, ells, step=0.4):
    """mL of the union of ``ells`` outside the array, and of the whole union, by a RAS lattice."""
    lo = np.min([e.bounds()[0] for e in ells], axis=0)
    hi = np.max([e.bounds()[1] for e in ells], axis=0)
    axes = [np.arange(a, b + step, step) for a, b in zip(lo, hi)]
    P = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    inz = np.zeros(len(P), bool)
    for e in ells:
        d = P - e.centre
        t = d @ e.axis
        r2 = np.einsum("ni,ni->n", d, d) - t * t
        inz |= t * t / e.a_mm ** 2 + r2 / e.b_mm ** 2 <= 1.0
    kji = lab.world_to_kji(P[inz])
    out = np.any((kji < -0.5) | (kji > np.asarray(lab.shape) - 0.5), axis=1)
    v = step ** 3 / 1000.0
    return float(out.sum()) * v, float(inz.sum()) * v


@pytest.fixture(scope="module")
def scene():
    lab, centre, face_pt, normal = _labels()
    return lab, centre, face_pt, normal, AblationContext(lab, "liver_tumor_1")


@pytest.mark.parametrize("n_zones", [1, 2])
def test_zone_past_the_superior_end_is_measured(scene, n_zones):
    lab, centre, face_pt, normal, ctx = scene
    # a 48 x 42 mm zone (emprint 100 W 10 min) along an oblique axis, centred on the tumour; the
    # second zone (a multi-probe union) shifted along the face
    ax = rotation((0, 0, 1), 30.0) @ np.array([0.0, 0.6, 0.8])
    ells = [Ellipsoid(centre, ax / np.linalg.norm(ax), 24.0, 21.0)]
    if n_zones == 2:
        ells.append(Ellipsoid(centre + np.array([12.0, 0.0, 0.0]), np.array([1.0, 0.0, 0.0]), 15.0, 12.0))
    want_out, want_all = _outside_ml(lab, ells)
    assert want_out > 3.0                                 # the scene does what it says
    cov = ctx.evaluate(ells)
    u = cov.unimaged
    assert u, "the zone's part past the image is not reported"
    assert u["zone_ml"] == pytest.approx(want_out, rel=0.04)
    assert list(u["sides"]) == ["superior"]
    assert u["sides"]["superior"] == pytest.approx(want_out, rel=0.04)
    # the zone volume counts it: the whole zone, not the imaged part
    assert cov.zone_volume_ml == pytest.approx(want_all, rel=0.02)
    if n_zones == 1:
        assert cov.zone_volume_ml == pytest.approx(ells[0].volume_ml, rel=0.02)
    # healthy tissue: liver is the imaged part only, the rest is named unimaged
    assert cov.healthy_ml["unimaged"] == pytest.approx(want_out, rel=0.04)
    assert cov.healthy_ml["liver"] + cov.healthy_ml["unimaged"] + cov.tumour_volume_ml == pytest.approx(
        cov.zone_volume_ml, abs=0.1)   # the tumour label vs its interpolated outline
    # how far past the face: the ellipsoid's farthest point beyond the superior face plane
    far = max(float(e.centre @ normal - face_pt @ normal + np.sqrt(
        (e.a_mm * (e.axis @ normal)) ** 2 + e.b_mm ** 2 * (1 - (e.axis @ normal) ** 2))) for e in ells)
    assert u["extent_mm"]["superior"] == pytest.approx(far, abs=1.5)
    # tumour + 5 mm reaches past the face (the tumour lies GAP_MM below it): the margin is not
    # verifiable, never "met"; the verifiable margin is the tumour's distance to the face: from
    # its label's voxel nearest to the face (centre, less half a voxel diagonal for its outline)
    assert u["tumour_margin_ml"][5.0] > 0.0
    crit = cov.criteria["minimal_ablative_margin"]
    assert cov.mam_mm >= 5.0 and crit["met"] is None and "past the image" in crit["not_verifiable"]
    tv = lab.kji_to_world(np.argwhere(lab.array == 2).astype(float))
    d_centre = float(np.min(face_pt @ normal - tv @ normal))
    assert d_centre - 0.5 * np.linalg.norm(SPACING) - 0.5 <= u["verifiable_margin_mm"] <= d_centre + 0.5
    text = " ".join(zone_doubts("proposal 1 ablation", cov.to_dict(), "fix", "liver_tumor_1", "liver"))
    assert "past the image" in text and "superior end" in text and "not verifiable" in text
    assert f"{u['zone_ml']:.1f} mL" in text
    assert "below the required" not in text


def test_zone_in_padding_is_unimaged():
    """The CT's padding inside the array (outside the reconstruction circle, a reformat's fill)
    holds no measurement either: a zone there is counted as unimaged, side "padding"."""
    lab, centre, face_pt, normal = _labels()
    pad = np.zeros(lab.shape, bool)
    pad[:, :, 70:] = True                              # the voxels of i >= 70: 'fill'
    ctx = AblationContext(lab, "liver_tumor_1", unimaged=pad)
    inner = centre - 12.0 * normal                     # well inside the slab: no part past the face
    e = Ellipsoid(inner + np.array([8.0, 0.0, 0.0]), np.array([1.0, 0.0, 0.0]), 20.0, 10.0)
    cov = ctx.evaluate([e])
    # independently: lattice points inside the ellipsoid whose nearest voxel has i >= 70
    step = 0.4
    lo, hi = e.bounds()
    P = np.stack(np.meshgrid(*[np.arange(a, b + step, step) for a, b in zip(lo, hi)], indexing="ij"), -1).reshape(-1, 3)
    P = P[e.contains(P)]
    kji = np.rint(lab.world_to_kji(P)).astype(int)
    ok = np.all((kji >= 0) & (kji < np.asarray(lab.shape)), axis=1)
    assert ok.all()
    want = float(pad[tuple(kji.T)].sum()) * step ** 3 / 1000.0
    assert want > 0.5
    assert cov.unimaged["sides"] == {"padding": pytest.approx(want, rel=0.05)}
    # new-user trial 91 L1: the padding part has a side and an extent. Independently: the fill
    # lies towards +i, whose RAS direction is the first column of the matrix (here right); the
    # farthest lattice point in it lies (i - 69.5) voxels of 0.8 mm past the imaged tissue
    from imagio.directions import side_of

    assert cov.unimaged["padding_side"] == side_of(lab.ijk_to_ras[:3, 0]) == "right"
    cont_i = lab.world_to_kji(P)[:, 2]
    far = float(np.max(cont_i[pad[tuple(kji.T)]]) - 69.5) * SPACING[0]
    assert cov.unimaged["extent_mm"]["padding"] == pytest.approx(far, abs=1.0)
    text = " ".join(zone_doubts("proposal 1 ablation", cov.to_dict(), "fix", "liver_tumor_1", "liver"))
    assert "padding" in text and "on its right side" in text and "mm past the imaged tissue" in text, text


@pytest.mark.parametrize("sides, named, not_named, fix", [
    ({"superior": 7.5}, "liver dome", "bowel", "a longer scan"),
    ({"inferior": 8.8}, "bowel", "liver dome", "a longer scan"),
    ({"right": 5.0}, None, "liver dome", "a wider field of view"),
    ({"padding": 6.7, "superior": 1.0}, "liver dome", "bowel", "a reconstruction of a larger field of view"),
    # new-user trial 92 L2: a sliver (said 0.0 mL) past another end names neither that end nor its anatomy
    ({"anterior": 13.6, "inferior": 0.1, "superior": 0.01}, "bowel", "liver dome", "a wider field of view"),
])
def test_the_zone_past_the_image_names_what_lies_beyond_that_end(sides, named, not_named, fix):
    """New-user trial 91 M1: a zone past the inferior end (bowel, gallbladder, kidney below the
    liver) or past a side of a crop was told "above a liver dome lie the diaphragm ..." and "a
    longer scan"; the words follow the side the zone leaves the image at."""
    from imagio.planning.ablation.commands import unimaged_doubt

    cov = {"unimaged": {"zone_ml": sum(sides.values()), "zone_pct": 17.0, "sides": sides,
                        "extent_mm": {k: 0.5 for k in sides if k != "padding"}}}
    text = unimaged_doubt("proposal 1 ablation", cov, "liver_tumor_1", 5.0)
    if named:
        assert named in text
    assert not_named not in text and fix in text and "up to 0.5 mm past it" in text, text
    assert "0.0 mL" not in text, text


def test_slivers_within_half_a_voxel_of_an_end_bring_no_notes():
    """New-user trial 93 F6: on 2 mm slices (outline tolerance 1.0 mm, half a CT voxel) a zone
    4.5 mL past the posterior end of a crop also reached 0.5 mm past the inferior and superior ends
    (0.1 mL each), and the warning named both ends with the liver-dome and the bowel notes. Past an
    end by no more than half a voxel the image does not resolve the zone's edge from its own end:
    those slivers are said together, without their ends' notes; the total keeps them."""
    from imagio.planning.ablation.commands import unimaged_doubt

    sides = {"posterior": 4.5, "inferior": 0.1, "superior": 0.1}
    cov = {"outline_tolerance_mm": 1.0,
           "unimaged": {"zone_ml": 4.7, "zone_pct": 10.0, "sides": sides,
                        "extent_mm": {"posterior": 8.3, "inferior": 0.5, "superior": 0.5}}}
    text = unimaged_doubt("proposal 5 ablation", cov, "liver_tumor_1", 5.0)
    assert "4.5 mL beyond its posterior end, up to 8.3 mm past it" in text, text
    assert "liver dome" not in text and "bowel" not in text and "a longer scan" not in text, text
    assert "0.2 mL within 1 mm (half a CT voxel) past its other ends" in text and "4.7 mL" in text, text
    # a reach past the tolerance is named with its note
    cov["unimaged"]["extent_mm"]["inferior"] = 2.5
    text = unimaged_doubt("proposal 5 ablation", cov, "liver_tumor_1", 5.0)
    assert "beyond its inferior end, up to 2.5 mm past it" in text and "bowel" in text and "liver dome" not in text
