"""New-user trial 92 (L-M1): a liver tumour 6 mm from where the image was cut (the body goes on
beyond it): the probe advanced past the target for its zone ran into the image's edge, which the
planner takes as outside the body, and the plan said "further violates leaves_body" and advised
"use --multi-probe, a larger setting or another path". The image's edge is not air: the probe
status now says where the track leaves the image (the side by the face's outward normal) and the
advice is to image the tissue beyond.

Independent checks: the face a segment crosses, from the volume's matrix (which index leaves
[-0.5, n - 0.5] first, and the sign of that matrix column's dominant RAS component), on an
oblique, flipped, anisotropic grid; on the cropped phantom, the device's full advance (tip-to-zone
centre offset past the target) lies outside the array by its continuous index."""

import numpy as np
import pytest

from imagio import phantom
from imagio.planning import PlanningProblem, plan
from imagio.planning.ablation import AblationContext, get_device
from imagio.planning.ablation.commands import ablation_warnings
from imagio.planning.ablation.multiprobe import image_exit, place_on_path

SIDES = (("left", "right"), ("posterior", "anterior"), ("inferior", "superior"))


def _side(column, sign):
    v = np.asarray(column, float) * sign
    ax = int(np.argmax(np.abs(v)))
    return SIDES[ax][int(v[ax] > 0)]


@pytest.mark.parametrize("ax_kji, sign", [(0, -1), (0, 1), (1, 1), (2, -1)])
def test_image_exit_on_an_oblique_flipped_grid(oblique_volume, ax_kji, sign):
    vol = oblique_volume
    shp = np.asarray(vol.shape, float)
    centre = (shp - 1) / 2.0
    col = vol.ijk_to_ras[:3, 2 - ax_kji]               # the RAS step of one index along that axis
    a = vol.kji_to_world(centre[None])[0]
    b = a + sign * col / np.linalg.norm(col) * 2.0 * float(np.linalg.norm(shp * vol.spacing_kji))
    side, mm = image_exit(vol, a, b, step_mm=0.1)
    face = -0.5 if sign < 0 else shp[ax_kji] - 0.5
    want = abs(face - centre[ax_kji]) * float(vol.spacing_kji[ax_kji])
    assert side == _side(col, sign)
    assert mm == pytest.approx(want, abs=0.2)
    assert image_exit(vol, a, a + (b - a) / np.linalg.norm(b - a) * 0.5 * want) is None   # halfway: inside


def test_a_probe_held_back_by_the_image_edge_is_told_so():
    ph = phantom.generate(spacing=3.0)
    p = plan(PlanningProblem.build(ph.ct, ph.labels, "liver_tumor_1"), k=3)
    t = np.asarray(p.problem.target.point_ras, float)
    u = t - np.asarray(p.proposals[0].entry_ras, float)
    u /= np.linalg.norm(u)
    tk = ph.ct.world_to_kji(t[None])[0]
    uk = ph.ct.world_to_kji((t + u)[None])[0] - tk
    ax = int(np.argmax(np.abs(uk)))                      # cut 6 mm past the target along the advance
    lo, hi = np.zeros(3, int), np.array(ph.ct.shape)
    cut = int(np.floor(tk[ax] + np.sign(uk[ax]) * 6.0 / ph.ct.spacing_kji[ax]))
    if uk[ax] > 0:
        hi[ax] = cut + 1
    else:
        lo[ax] = cut
    ct, lab = ph.ct.crop(lo, hi), ph.labels.crop(lo, hi)
    p2 = plan(PlanningProblem.build(ct, lab, "liver_tumor_1"), k=3)
    dev = get_device("emprint")
    s = dev.setting("100W_10min")
    ctx = AblationContext(lab, "liver_tumor_1")
    told = 0
    for i, m in enumerate(p2.proposals):
        pp = place_on_path(p2, ctx, dev, s, m.entry_ras)
        t2 = np.asarray(p2.problem.target.point_ras, float)
        u2 = (t2 - np.asarray(m.entry_ras, float)) / np.linalg.norm(t2 - np.asarray(m.entry_ras, float))
        full = ct.world_to_kji((t2 + s.centre_offset_mm * u2)[None])[0]
        past = bool(np.any((full < -0.5) | (full > np.asarray(ct.shape) - 0.5)))
        if pp.status_kind == "advanced_short_image":
            told += 1
            assert past, (pp.status, full)
            assert "runs past the image's" in pp.status and "leaves_body" not in pp.status, pp.status
            abl = {"device": "emprint", "setting": "100W_10min", "tumour": "liver_tumor_1",
                   "single_probe": [{"proposal": i + 1, **pp.to_dict()}]}
            w = " | ".join(ablation_warnings(abl))
            assert "runs past the image's" in w and "image the tissue beyond" in w, w
        elif pp.status_kind == "advanced_short":
            assert "leaves_body" not in pp.status or not past, pp.status
    assert told >= 1


def test_a_probe_held_back_by_the_needle_length_is_told_so():
    """New-user trial 112 (LOW): "single probe advanced 15 of 19 mm past the target: further
    violates reach" did not say that reach is the needle's length. The needle is set 1 mm longer
    than the best path, so the device's advance past the target (its zone-centre offset) outruns it:
    the status names the track's length and the needle's."""
    from imagio.planning.problem import Needle

    ph = phantom.generate(spacing=3.0)
    p = plan(PlanningProblem.build(ph.ct, ph.labels, "liver_tumor_1"), k=3)
    length = float(p.proposals[0].length_mm) + 1.0
    p2 = plan(PlanningProblem.build(ph.ct, ph.labels, "liver_tumor_1", needle=Needle(length_mm=length)), k=3)
    dev = get_device("emprint")
    s = dev.setting("100W_10min")
    assert s.centre_offset_mm > 1.0
    ctx = AblationContext(ph.labels, "liver_tumor_1")
    said = [pp.status for pp in (place_on_path(p2, ctx, dev, s, m.entry_ras) for m in p2.proposals)
            if pp.status_kind == "advanced_short" and "reach" in pp.status]
    assert said, [m.length_mm for m in p2.proposals]
    # old code: "further violates reach", nothing more
    assert all(f"longer than the {length:g} mm needle" in w for w in said), said
