"""What the hollow-viscus setting search (`spare.spare_hollow_viscus`) says is true (new-user
trial 101 F3, F5), on the real TotalSegmentator example (example_ct_sm + example_seg, 3 mm) with
a 6 mm liver tumour placed here (label 200, liver_tumor_1: the liver's label voxels whose centres
lie within 6 mm of a voxel centre; 0.89 mL).

F3, the tumour 12.4 mm from the duodenum (trial 101's duo2): the asked Emprint 100 W 10 min zone
takes in gallbladder and duodenum; 45 W 5 min at the same centre and axis keeps every viscus out
but leaves a margin under 5 mm across the probe (its zone 24 mm wide, the tumour's outline 7.5 mm
from its centre there: the outer faces of its outermost 3 mm voxels). The planner kept the asked
zone and said only that the sparing zone broke "a hard constraint of the path or the criteria";
then it named the criterion and its figure (4.5 mm from the interpolated outline); since abl101 the
search aims at the MAM's own outline (the voxel faces + 5 mm), so that zone is no candidate and the
words say no setting covers the tumour with the margin without the viscera.

F5, the tumour on the image's top slice (trial 101's sto2): the chosen smaller zone reaches past
the image. It was said to cover "the tumour with a 5 mm margin and keep every hollow viscus out"
beside NOT VERIFIABLE, IMAGIO's own 'unimaged' volume was called "a name IMAGIO does not know"
and the user asked to rename it, and a zone whose centre lies 4 mm short of the target (the probe
held back at the image's end) was said to be "centred on the target". Now the claim is made on
the imaged part, the volume past the image is named as such, and the centre's real offset is
said, in plan.json's setting_choice, the summary line and the report alike.

Independent checks: my own counts from the label file read with SimpleITK (LPS -> RAS by its
own direction and origin): hollow-viscus voxels in a zone (4 x 4 x 4 sub-samples per voxel), the
zone's volume past the image's array (a 0.5 mm lattice over the ellipsoid), an upper bound of the
minimal ablative margin (the tumour outline's points on the voxel grid lines: midway between a
tumour voxel centre and its non-tumour neighbour; their distance to the ellipsoid's surface), and
the zone centre's offset from the target along the probe.
"""

from __future__ import annotations

import contextlib
import io
import json
import re

import numpy as np
import pytest

from conftest import sitk_kji_to_ras as _ras
from imagio.cli import main

SUB = 4
HOLLOW = ("colon", "small_bowel", "duodenum", "stomach", "gallbladder", "esophagus", "urinary_bladder")
# the tumour's centre: a voxel centre of example_seg, (k, j, i)
DUO_CENTRE = (17, 68, 74)   # RAS (44.0, 215.3, 145.3), 12.4 mm from the duodenum (trial 101 mk_gb.py duodenum 17 6)
STO_CENTRE = (29, 72, 50)   # RAS (-28.0, 227.3, 181.3), the top slice, 15 mm from the stomach (mk_gb.py stomach 19 6)
R_TUMOUR = 6.0


def _kji(img, ras: np.ndarray) -> np.ndarray:
    sp = np.array(img.GetSpacing())
    d = np.array(img.GetDirection()).reshape(3, 3)
    lps = np.asarray(ras, float) * [-1.0, -1.0, 1.0]
    return (np.linalg.solve(d, (lps - np.array(img.GetOrigin())).T).T / sp)[:, ::-1]


def _inside(P, zone) -> np.ndarray:
    c = np.asarray(zone["centre_ras"], float)
    u = np.asarray(zone["axis"], float) / np.linalg.norm(zone["axis"])
    d = P - c
    t = d @ u
    return (t / (zone["length_mm"] / 2)) ** 2 + (np.einsum("pi,pi->p", d, d) - t * t) / (zone["diameter_mm"] / 2) ** 2 <= 1


def _case(tmp, centre):
    import SimpleITK as sitk

    from conftest import shared_case, ts_example_tumour

    d = shared_case("totalsegmentator-example")
    o, names = ts_example_tumour(centre, R_TUMOUR)
    s = sitk.GetArrayFromImage(o)
    names = {k: v for k, v in names.items() if k != "200"}
    sitk.WriteImage(o, str(tmp / "lab.nii.gz"))
    (tmp / "names.json").write_text(json.dumps({**names, "200": "liver_tumor_1"}))
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["plan", str(d / "example_ct_sm.nii.gz"), "--labels", str(tmp / "lab.nii.gz"), "--label-names",
                   str(tmp / "names.json"), "--target", "liver_tumor_1", "--device", "emprint", "--setting",
                   "100W_10min", "--out", str(tmp / "plan"), "--no-png", "--no-scene"])
    assert rc == 0
    return o, s, {v: int(k) for k, v in names.items()}, json.loads((tmp / "plan" / "plan.json").read_text()), \
        buf.getvalue()


def _ml(img, arr, values, zone) -> dict:
    """{name: mL of that label inside ``zone``}, SUB^3 sub-samples per voxel."""
    vml = float(np.prod(img.GetSpacing())) / 1000.0
    c = np.asarray(zone["centre_ras"], float)
    near = np.argwhere(np.isin(arr, list(values.values()))).astype(float)
    near = near[np.linalg.norm(_ras(img, near) - c, axis=1) < max(zone["length_mm"], zone["diameter_mm"]) / 2 + 5]
    lab = arr[tuple(near.astype(int).T)]
    offs = (np.arange(SUB) + 0.5) / SUB - 0.5
    n = {}
    for o in np.stack(np.meshgrid(offs, offs, offs, indexing="ij"), -1).reshape(-1, 3):
        m = _inside(_ras(img, near + o), zone)
        for name, v in values.items():
            n[name] = n.get(name, 0) + int(np.count_nonzero(m & (lab == v)))
    return {k: v * vml / SUB ** 3 for k, v in n.items() if v}


def _outline_points(img, arr) -> np.ndarray:
    """Points of the tumour's outline (the 0.5 level of its linearly interpolated mask): midway
    between a tumour voxel centre and each 6-neighbour outside it, RAS mm."""
    t = np.pad(arr == 200, 1)
    pts = []
    for ax in range(3):
        for sgn in (-1, 1):
            nb = np.roll(t, -sgn, axis=ax)
            kji = np.argwhere(t & ~nb).astype(float) - 1.0
            kji[:, ax] += 0.5 * sgn
            pts.append(kji)
    return _ras(img, np.concatenate(pts))


def _margin_bound(P, zone) -> float:
    """The smallest distance (mm) from the points ``P`` inside ``zone`` to its surface (densely
    sampled): the minimal ablative margin of a tumour whose outline holds ``P`` is at most this."""
    from scipy.spatial import cKDTree

    c = np.asarray(zone["centre_ras"], float)
    u = np.asarray(zone["axis"], float) / np.linalg.norm(zone["axis"])
    v1 = np.cross(u, [1.0, 0.0, 0.0] if abs(u[0]) < 0.9 else [0.0, 1.0, 0.0])
    v1 /= np.linalg.norm(v1)
    v2 = np.cross(u, v1)
    th, ph = np.meshgrid(np.linspace(0, np.pi, 900), np.linspace(0, 2 * np.pi, 1800), indexing="ij")
    a, b = zone["length_mm"] / 2, zone["diameter_mm"] / 2
    S = (c + (a * np.cos(th))[..., None] * u + (b * np.sin(th) * np.cos(ph))[..., None] * v1
         + (b * np.sin(th) * np.sin(ph))[..., None] * v2).reshape(-1, 3)
    assert _inside(P, zone).all()
    return float(cKDTree(S).query(P)[0].min())


@pytest.fixture(scope="module")
def duo(tmp_path_factory):
    return _case(tmp_path_factory.mktemp("duo"), DUO_CENTRE)


@pytest.fixture(scope="module")
def sto(tmp_path_factory):
    return _case(tmp_path_factory.mktemp("sto"), STO_CENTRE)


@pytest.mark.data
@pytest.mark.slow
def test_a_zone_short_of_the_faces_margin_is_not_offered_as_sparing(duo):
    from imagio.planning.ablation.devices import get_device

    img, arr, inv, doc, out = duo
    hv_values = {n: inv[n] for n in HOLLOW if n in inv}
    small = get_device("emprint").setting("45W_5min")
    sp = doc["ablation"]["single_probe"][0]
    z = sp["zones"][0]
    kept = _ml(img, arr, hv_values, z)
    assert sp["setting"] == "100W_10min" and sum(kept.values()) > 1.0, kept   # the asked zone kept, viscera in it
    # mine: 45W_5min at the same centre and axis keeps every viscus out, but its margin is under 5 mm
    z45 = {**z, "length_mm": small.zone_length_mm, "diameter_mm": small.zone_diameter_mm}
    assert _ml(img, arr, hv_values, z45) == {}
    bound = _margin_bound(_outline_points(img, arr), z45)
    assert bound < 5.0, bound
    note = sp["hollow_viscus"]
    assert note["found"] is False
    txt = note["text"]
    assert "each breaking a hard constraint" not in txt, txt
    # abl101: the search aims at the MAM's outline (the label's voxel faces + 5 mm), so the 45W_5min zone,
    # whose faces' margin is under 5 mm (mine above), is not a candidate at all: no zone is named as
    # sparing, the words say that no setting covers the tumour with the margin without the viscera
    assert "would keep them out" not in txt, txt
    assert re.search(r"no setting of emprint \(.*\) at any zone position along this path .* covers the tumour "
                     r"with a 5 mm margin without taking in", txt), txt
    # the same words in the criterion, the warnings and the summary line
    assert sp["coverage"]["criteria"]["no_hollow_viscus"]["unavoidable"] == txt
    line = [ln for ln in out.splitlines() if ln.startswith("ablation emprint")][-1]
    assert txt in line, line


def _past_image_ml(img, zone, step=0.5) -> float:
    """mL of ``zone`` outside the image's array (its voxels' extent), on a ``step`` mm lattice."""
    c = np.asarray(zone["centre_ras"], float)
    r = max(zone["length_mm"], zone["diameter_mm"]) / 2
    g = np.arange(-r, r + step / 2, step)
    P = c + np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    P = P[_inside(P, zone)]
    k = _kji(img, P)
    size = np.array(img.GetSize())[::-1]
    off = np.any((k < -0.5) | (k > size - 0.5), axis=1)
    return float(np.count_nonzero(off)) * step ** 3 / 1000.0


@pytest.mark.data
@pytest.mark.slow
def test_a_chosen_zone_past_the_image_is_claimed_on_the_imaged_part_with_its_real_centre(sto, tmp_path):
    from imagio.report import ablation_rows

    img, arr, inv, doc, out = sto
    t = np.asarray(doc["target"]["ras"], float)
    chosen, short = 0, 0
    for sp in doc["ablation"]["single_probe"]:
        crit = sp["coverage"]["criteria"]["no_hollow_viscus"]
        assert "IMAGIO does not know" not in json.dumps(sp), sp["proposal"]
        choice = sp["setting_choice"]
        if not choice:
            continue
        chosen += 1
        z = sp["zones"][0]
        past = _past_image_ml(img, z)
        assert past > 1.0, past   # the case: the chosen zone reaches past the image's top
        assert crit["met"] is None
        m = re.search(r"(\d+\.\d\d) mL of the zone lies past the image: a hollow viscus there cannot be excluded",
                      crit["not_verifiable"])
        assert m and float(m.group(1)) == pytest.approx(past, rel=0.1), (crit, past)
        assert "keeps every hollow viscus out on the imaged part" in choice, choice
        assert m.group(0) in choice, choice
        # the zone centre's offset from the target along the probe, mine
        e, tip = (np.asarray(sp["probes"][0][k], float) for k in ("entry_ras", "tip_ras"))
        u = (tip - e) / np.linalg.norm(tip - e)
        off = float((np.asarray(z["centre_ras"], float) - t) @ u)
        said = choice.split(": ", 1)[1].split("; ", 1)[1]   # the chosen zone's words (after the asked one's)
        if abs(off) < 0.05:
            assert "with the zone centred on the target" in said, said
        else:
            short += 1
            assert "centred on the target" not in said, said
            assert (f"with the zone centred {round(abs(off), 1):g} mm {'deeper than' if off > 0 else 'short of'} the target"
                    in said), (off, said)
    assert chosen >= 2 and short >= 1, (chosen, short)
    # the summary line and the report say the best path's choice in the same words
    best = doc["ablation"]["single_probe"][0]
    line = [ln for ln in out.splitlines() if ln.startswith("ablation emprint")][-1]
    assert line.endswith(f"; {best['setting_choice']}"), line
    assert "a hollow viscus there cannot be excluded" in line.split("; IMAGIO chose")[0], line
    assert dict(ablation_rows(best))["setting chosen by IMAGIO"] == best["setting_choice"]


def test_names_imagio_gives_itself_are_never_asked_to_be_renamed():
    """The criterion's reasons for IMAGIO's own volumes: the zone's part past the image is said as
    such (trial 101 F5: "unimaged 5.85 mL: a name IMAGIO does not know ... name it as
    TotalSegmentator does"), and the mediastinum's unlabelled soft tissue that IMAGIO names
    (`mediastinum_near.MEDIASTINUM_NAME`) counts as unlabelled tissue: a doubt only where the label
    map names no hollow viscus; a user's unknown name is still asked to be renamed."""
    from imagio.planning.ablation.coverage import UNIMAGED
    from imagio.planning.ablation.criteria import hollow_viscus_criterion
    from imagio.planning.ablation.mediastinum_near import MEDIASTINUM_NAME

    c = hollow_viscus_criterion({"liver": 9.0, UNIMAGED: 5.853}, ["liver", "colon"], 5.853, exclude=(UNIMAGED,))
    assert c["met"] is None and c["not_verifiable"] == ("5.85 mL of the zone lies past the image: a hollow viscus "
                                                        "there cannot be excluded"), c
    own = {"lung_upper_lobe_left": 9.0, MEDIASTINUM_NAME: 1.2}
    c = hollow_viscus_criterion(own, ["lung_upper_lobe_left", "esophagus"], unlabelled=(MEDIASTINUM_NAME,))
    assert c["met"] is True, c   # the oesophagus is labelled: the unlabelled soft tissue is not it
    c = hollow_viscus_criterion(own, ["lung_upper_lobe_left"], unlabelled=(MEDIASTINUM_NAME,))
    assert c["met"] is None and "1.20 mL of unlabelled tissue" in c["not_verifiable"], c
    assert "IMAGIO does not know" not in c["not_verifiable"]
    c = hollow_viscus_criterion({"liver": 9.0, "Gut loop": 2.0, UNIMAGED: 1.0}, ["liver", "Gut loop"], 1.0,
                                exclude=(UNIMAGED,))
    assert c["met"] is None and c["not_verifiable"].startswith("the zone takes in Gut loop 2.00 mL: a name IMAGIO "
                                                               "does not know"), c
    assert c["not_verifiable"].endswith("; 1.00 mL of the zone lies past the image: a hollow viscus there cannot be "
                                        "excluded"), c
    assert UNIMAGED not in c["not_verifiable"]


def test_a_lung_zone_reaching_the_unlabelled_mediastinum_is_not_asked_to_rename_it():
    """Through `coverage.AblationContext.evaluate`: the mediastinum region IMAGIO adds (here a box
    of the label map's unlabelled voxels beside the tumour) in the zone, with the oesophagus
    labelled elsewhere: the criterion is met, not "a name IMAGIO does not know"."""
    from imagio.planning.ablation.coverage import AblationContext
    from imagio.planning.ablation.mediastinum_near import MEDIASTINUM_NAME
    from imagio.planning.ablation.zones import Ellipsoid
    from imagio.volume import Volume

    a = np.ones((40, 40, 40), np.uint8)                                # lung
    a[18:22, 18:22, 18:22] = 2                                         # tumour
    a[:, :, 30:] = 0                                                   # unlabelled soft tissue
    a[:, :4, 30:] = 3                                                  # the oesophagus, far from the zone
    A = np.eye(4)
    A[:3, :3] = np.array([[0.0, 1.0, 0.0], [0.8, 0.0, 0.6], [0.6, 0.0, -0.8]]) @ np.diag([1.25, 1.5, 2.0])
    A[:3, 3] = (3.0, -5.0, 7.0)                                        # oblique, flipped, anisotropic (i, j, k)
    lab = Volume(a, A, labels={1: "lung_upper_lobe_left", 2: "lung_tumor", 3: "esophagus"})
    ctx = AblationContext(lab, "lung_tumor")
    ctx.add_region(MEDIASTINUM_NAME, lambda lo, hi: a[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] == 0)
    c = lab.kji_to_world(np.array([[19.5, 19.5, 25.0]]))[0]
    cov = ctx.evaluate([Ellipsoid(c, np.array([0.0, 0.0, 1.0]), 15.0, 15.0)])
    assert cov.healthy_ml.get(MEDIASTINUM_NAME, 0.0) > 0.5, cov.healthy_ml
    crit = cov.criteria["no_hollow_viscus"]
    assert crit["met"] is True, crit


def test_each_reason_a_sparing_zone_fails_is_said_with_its_figure():
    """`spare.rejection_words` on real evaluations (`AblationContext.evaluate`) of zones on an
    oblique, flipped, anisotropic grid (a 4-voxel tumour, a small_bowel slab beside it): a zone too
    narrow for the margin (its figure: my own distance from the tumour's outline to the zone), a
    zone taking in bowel on evaluation (its mL), a probe whose track breaks a hard constraint (the
    constraint named), and a zone centred off the target (its real offset)."""
    from imagio.planning.ablation.coverage import AblationContext
    from imagio.planning.ablation.devices import get_device
    from imagio.planning.ablation.multiprobe import ProbePlacement, ProbePlan
    from imagio.planning.ablation.spare import rejection_words
    from imagio.planning.ablation.zones import Ellipsoid
    from imagio.volume import Volume

    a = np.ones((40, 40, 40), np.uint8)                                # liver
    a[18:22, 18:22, 18:22] = 2                                         # tumour
    a[:, :, 30:33] = 3                                                 # small_bowel slab
    A = np.eye(4)
    A[:3, :3] = np.array([[0.0, 1.0, 0.0], [0.8, 0.0, 0.6], [0.6, 0.0, -0.8]]) @ np.diag([1.25, 1.5, 2.0])
    A[:3, 3] = (3.0, -5.0, 7.0)
    lab = Volume(a, A, labels={1: "liver", 2: "liver_tumor", 3: "small_bowel"})
    ctx = AblationContext(lab, "liver_tumor")
    c = lab.kji_to_world(np.array([[19.5, 19.5, 19.5]]))[0]            # the tumour's centre
    u = np.array([0.0, 0.0, 1.0])
    s = get_device("emprint").setting("45W_5min")

    def plan(centre, a_mm, b_mm, feasible=True):
        e = Ellipsoid(np.asarray(centre, float), u, a_mm, b_mm)
        pr = ProbePlacement(list(centre - 60 * u), list(centre + 10 * u), feasible, [] if feasible else ["vessel"], 70.0)
        pp = ProbePlan("emprint", s.id, "microwave", [pr], ctx.evaluate([e]),
                       status_kind="centred" if feasible else "infeasible")
        pp._zones = [e]
        return pp

    # points of the tumour's outline (the 0.5 level of its interpolated mask): midway between its outer voxel
    # centres and their outside neighbours along the grid lines, mine
    r, f = np.arange(18, 22), (17.5, 21.5)
    pts = np.array([p for x in f for y in r for z in r for p in ((x, y, z), (y, x, z), (y, z, x))], float)
    narrow = plan(c, 9.0, 9.0)                                          # a ball of 9 mm
    mine = 9.0 - float(np.linalg.norm(lab.kji_to_world(pts) - c, axis=1).max())   # its margin is at most this
    assert mine < 5.0
    txt = rejection_words(s, narrow, c, u)
    m = re.fullmatch(r"45W_5min with the zone centred on the target would keep them out but its minimal ablative "
                     r"margin is (-?\d+\.\d) mm \(needs 5 mm\)", txt)
    assert m, txt
    assert float(m.group(1)) <= mine + 0.5, (txt, mine)   # + half the analysis grid's 1 mm voxel
    big = plan(c, 30.0, 30.0)
    assert big.coverage.criteria["no_hollow_viscus"]["met"] is False
    txt = rejection_words(s, big, c, u, them="it")
    got = big.coverage.criteria["no_hollow_viscus"]["structures"]["small_bowel"]
    assert txt == f"45W_5min with the zone centred on the target: on evaluation it takes in small_bowel {got:.2f} mL", txt
    shifted = plan(c - 4.0 * u, 20.0, 20.0, feasible=False)
    txt = rejection_words(s, shifted, c, u, them="it")
    assert txt.startswith("45W_5min with the zone centred 4 mm short of the target along the path"), txt
    assert "its probe cannot be placed (the track violates vessel)" in txt, txt
