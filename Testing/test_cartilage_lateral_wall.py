"""The costal-cartilage region is the anterior chest wall medial to the ribs' anterior ends, not the
lateral (axillary) chest wall (new-user trial 101 F4).

The costal cartilages join the anterior ends of ribs 1-10 to the sternum (or to the cartilage
above; Gray's Anatomy, 42nd ed., 'Thoracic wall'), so in an axial plane they lie between the
sternum and the most medial rib section of the anterior half on their side. On Lung-PET-CT-Dx
A0001 (left apex target, rule-based labels whose costal_cartilages label ``imagio segment`` flags
partly missed) every proposal was warned of "69 / 47 / 51 / 66 / 61 mm ... in the anterior chest
wall between the ribs and the sternum", though its entry lay lateral of every rib of its plane:
the rib was looked for in a box reaching 100 mm below the sample, where the chest is wider.

Own geometry (the reference, from the native axial labels, plane by plane): the midline is the
vertebrae's median R, the anterior half of a plane is in front of its body's middle A, and a
side's rib end is the smallest |R - midline| of that half's rib voxels on that side. A track whose
chest-wall samples (entry up to the first lung voxel) all lie 10 mm or more lateral of the rib end
of their plane crosses no cartilage and must not be warned; a track straight back through a point
10 mm or more medial of the rib ends of its plane and of the planes one slice above and below,
lateral of the sternum, at the sternum's levels, must be. Native grid and a grid rotated 20 degrees about
L-R and 25 about S, its first axis flipped, 1.5 x 1.7 x 3 mm.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import resample_rotated, shared_case

from imagio import io
from imagio.planning import PlanningProblem
from imagio.planning.cartilage import costal_warnings

pytestmark = [pytest.mark.data, pytest.mark.slow]
MARGIN_MM = 10.0


@pytest.fixture(scope="module")
def dx():
    from imagio.segmentation.rules import segment

    ct = io.read_image(shared_case("lung-pet-ct-dx", "Lung_Dx-A0001_ct.nii.gz"))
    lab = segment(ct)
    assert lab.outline_doubts["costal_cartilages"]["flags"]["partly_missed"]   # the trial's case
    return ct, lab


def _planes(lab):
    """My reference, per native axial slice k: S (mm), midline R, body middle A, rib end |R - mid|
    per side (0: R < mid, 1: R > mid; inf without one), the sternum's half-width about the midline
    and its back (least A) (nan where no bone lies within 25 mm of the midline in the anterior
    half), the largest |R - mid| of any rib voxel and the slice's labels."""
    inv = {n: v for v, n in lab.labels.items()}
    m = lab.ijk_to_ras
    assert np.allclose(m[2, :2], 0) and np.allclose(m[:2, 2], 0)   # axial native slices
    out = []
    for k in range(lab.shape[0]):
        a = lab.array[k:k + 1]
        W = lambda msk: lab.kji_to_world((np.argwhere(msk) + [k, 0, 0]).astype(float))   # noqa: E731
        vert, ribs, body = W(a == inv["vertebrae"]), W(a == inv["ribs"]), W(a > 0)
        if not len(vert) or not len(ribs):
            out.append(None)
            continue
        mid = float(np.median(vert[:, 0]))
        mid_a = 0.5 * (body[:, 1].min() + body[:, 1].max())
        front = ribs[ribs[:, 1] > mid_a]
        end = [np.inf, np.inf]
        for s, sel in enumerate((front[:, 0] < mid, front[:, 0] > mid)):
            if sel.any():
                end[s] = float(np.abs(front[sel, 0] - mid).min())
        bone = W(a == inv["bone"])
        bone = bone[(bone[:, 1] > mid_a) & (np.abs(bone[:, 0] - mid) < 25.0)]
        half = float(np.abs(bone[:, 0] - mid).max()) if len(bone) else np.nan
        back = float(bone[:, 1].min()) if len(bone) else np.nan
        out.append(dict(S=float(ribs[0, 2]), mid=mid, mid_a=mid_a, end=end, sternum=half, sternum_back=back,
                        max_rib=float(np.abs(ribs[:, 0] - mid).max()), lab=a[0]))
    return out


def _k_of(lab, P):
    return np.rint(lab.world_to_kji(np.atleast_2d(P))[:, 0]).astype(int)


def _wall(lab, e, t, lung_values):
    """The track's samples every 1 mm from ``e`` up to its first lung voxel (native labels)."""
    L = float(np.linalg.norm(np.subtract(t, e)))
    P = np.asarray(e, float) + np.arange(0.0, L, 1.0)[:, None] * (np.subtract(t, e) / L)
    v = lab.sample(P, order=0, fill=0)
    stop = np.isin(v, lung_values)
    return P[:int(np.argmax(stop))] if stop.any() else P


def _end_near(planes, k, side):
    """The smallest rib end of slices k-1..k+1 (a resampled grid's plane may read a neighbour)."""
    return min(planes[j]["end"][side] for j in (k - 1, k, k + 1) if 0 <= j < len(planes) and planes[j])


def _lateral_tracks(lab, planes):
    """Tracks from entries 15 mm lateral of every rib of their slice, level with the lung's centre
    or 30 mm in front, to the lung's centre of that side two slices lower (tilted as the trial's),
    kept when all their wall samples lie MARGIN_MM lateral of the rib end of their (nearest) slice."""
    inv = {n: v for v, n in lab.labels.items()}
    lungs = [inv["lung_left"], inv["lung_right"]]
    tracks = []
    for k, pl in enumerate(planes):
        if pl is None or k < 2 or planes[k - 2] is None:
            continue
        for side, sgn in ((0, -1.0), (1, 1.0)):
            low = planes[k - 2]
            jj = np.argwhere(np.isin(low["lab"], lungs))
            lung = lab.kji_to_world(np.c_[np.full(len(jj), k - 2), jj].astype(float))
            lung = lung[(lung[:, 0] - low["mid"]) * sgn > 20.0]
            if len(lung) < 200:
                continue
            c = lung.mean(axis=0)
            c[2] = low["S"]
            for da in (0.0, 30.0):
                e = np.array([pl["mid"] + sgn * (pl["max_rib"] + 15.0), c[1] + da, pl["S"]])
                P = _wall(lab, e, c, lungs)
                if len(P) < 10:
                    continue
                ks = _k_of(lab, P)
                lat = np.array([abs(p[0] - planes[q]["mid"]) - planes[q]["end"][side] if planes[q] else -1
                                for p, q in zip(P, ks)])
                if (lat >= MARGIN_MM).all():
                    tracks.append((e, c))
    return tracks


def _parasternal_points(lab, planes):
    """Chest-wall points at the sternum's levels, not behind its back, 5 mm or more lateral of its
    half-width and MARGIN_MM medial of the rib ends of their plane and its neighbours: where the
    cartilages lie (soft tissue or the segmenter's cartilage, no bone)."""
    inv = {n: v for v, n in lab.labels.items()}
    pts = []
    for k, pl in enumerate(planes):
        if pl is None or not np.isfinite(pl["sternum"]):
            continue
        ok = np.isin(pl["lab"], [inv["body"], inv["costal_cartilages"]])
        P = lab.kji_to_world(np.c_[np.full(ok.sum(), k), np.argwhere(ok)].astype(float))
        d = np.abs(P[:, 0] - pl["mid"])
        side = (P[:, 0] > pl["mid"]).astype(int)
        ends = np.array([_end_near(planes, k, 0), _end_near(planes, k, 1)])[side]
        keep = (d >= pl["sternum"] + 5.0) & (d <= ends - MARGIN_MM) & (P[:, 1] >= pl["sternum_back"])
        pts += list(P[keep])
    return np.array(pts)


def _grids(ct, lab):
    yield "native", ct, lab
    c, m = resample_rotated(io.volume_to_sitk(ct), io.volume_to_sitk(lab), 20.0, 25.0, (1.5, 1.7, 3.0), -1024,
                            flip_first=True)
    ct_o, lab_o = io.volume_from_sitk(c, "ct"), io.volume_from_sitk(m, "labels")
    lab_o.labels, lab_o.outline_doubts = dict(lab.labels), dict(lab.outline_doubts)
    assert abs(lab_o.ijk_to_ras[2, 1]) > 0.1 and np.linalg.det(lab_o.ijk_to_ras[:3, :3]) * np.linalg.det(
        lab.ijk_to_ras[:3, :3]) < 0   # oblique, one axis flipped
    yield "oblique", ct_o, lab_o


def test_lateral_chest_wall_is_not_warned_and_parasternal_wall_is(dx):
    ct, lab = dx
    planes = _planes(lab)
    lateral = _lateral_tracks(lab, planes)
    para = _parasternal_points(lab, planes)
    assert len(lateral) >= 20 and len(para) >= 200, (len(lateral), len(para))
    sel = para[np.random.default_rng(0).choice(len(para), 30, replace=False)]
    target = lab.kji_to_world(np.argwhere(lab.array == {n: v for v, n in lab.labels.items()}["lung_left"])[:1]
                              .astype(float))[0]
    cc = {n: v for v, n in lab.labels.items()}["costal_cartilages"]
    for name, ct_g, lab_g in _grids(ct, lab):
        erased = lab_g.array.copy()
        erased[erased == cc] = 0
        probs = {"flagged": PlanningProblem.build(ct_g, lab_g, target),   # the trial's map
                 "absent": PlanningProblem.build(ct_g, lab_g.with_array(erased, labels={
                     v: n for v, n in lab_g.labels.items() if v != cc}), target)}
        for how, prob in probs.items():
            said = [w[0] for e, t in lateral for w in [costal_warnings(prob, 1, e, t)] if w]
            assert not said, (name, how, len(said), len(lateral), said[0])
            hits = sum(bool(costal_warnings(prob, 1, p + [0.0, 60.0, 0.0], p - [0.0, 30.0, 0.0])) for p in sel)
            assert hits == len(sel), (name, how, hits)
