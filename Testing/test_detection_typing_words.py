"""Type words of characterised candidates (new-user trial 96 F7):

* lung1 #2, a paravertebral structure against the vertebral body (centre 379 HU, 40 % of its
  outline above 200 HU), was typed "perifissural": a juxtapleural / perifissural nodule of
  Lung-RADS 2 is a solid, non-calcified one (an intrapulmonary lymph node); an outline holding a
  resolved part of calcium or bone density is not typed so.
* lung1 #4, an outline of fat's mean density (-71 HU, "not assessable"), was typed "solid": a
  fat-attenuation outline gets no solid type; its type says "fat attenuation"."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import block_in_air, ellipsoid_share, rotation, shared_case


def _scene(dense: bool):
    """A lentiform solid nodule (semi-axes 4, 4, 1.8 mm; 40 HU in -850 HU lung) on a 0.8 mm grid
    (oblique, flipped), with or without a 2.5 mm-radius ball of 450 HU (bone or calcium) at its
    edge; its outline and measurements."""
    from imagio.segmentation.measurements import measure

    rot = rotation((0, 0, 1), 30) @ np.diag([-1, 1, 1])
    ref, xyz, _ = block_in_air((0.8, 0.8, 0.8), (40, 40, 30), rot, (1, 1, 1))
    lens = ellipsoid_share(ref, xyz, (0.0, 0.0, 0.0), (4.0, 4.0, 1.8), n=3)
    hu = -850.0 + 890.0 * lens
    mask = lens >= 0.5
    if dense:
        ball = ellipsoid_share(ref, xyz, (3.0, 0.0, 0.0), (2.5, 2.5, 2.5), n=3)
        hu = hu + (450.0 - hu) * ball
        mask |= ball >= 0.5
    ref.array = hu.astype(np.int16)
    return ref, mask, measure(mask, ref, ref.array, kind="lung_nodule")


def test_a_calcium_or_bone_dense_part_is_never_typed_perifissural():
    from imagio.detection.characterise import nodule_type

    ct, mask, meas = _scene(dense=False)
    assert meas.mean_diameter_mm < 10.0
    typ, _, warn, _ = nodule_type(ct, mask, meas, {"_fissure_or_pleura_mm": 0.0})
    assert typ == "perifissural", (typ, warn)
    ct, mask, meas = _scene(dense=True)
    assert meas.mean_diameter_mm < 10.0
    typ, _, warn, _ = nodule_type(ct, mask, meas, {"_fissure_or_pleura_mm": 0.0})
    assert typ == "solid", (typ, warn)
    said = [w for w in warn if "calcium or bone" in w]
    assert len(said) == 1 and "not typed perifissural" in said[0] and "200 HU" in said[0], warn
    # away from the pleura and fissures it is solid either way, and says nothing of perifissural
    typ, _, warn, _ = nodule_type(ct, mask, meas, {"_fissure_or_pleura_mm": 30.0})
    assert typ == "solid" and not any("perifissural" in w for w in warn), warn


def test_fat_attenuation_gets_no_solid_type():
    from imagio.stratification.screening import type_words

    assert type_words("fat") == "fat attenuation"


def test_lung1_paravertebral_and_fat_candidates_are_typed_by_what_they_are():
    """On lung1 (5 mm sections) the detector's candidates at the vertebral body (RAS 6.5, 104.5,
    -652.5) and at the heart/diaphragm's fat (73.5, 145.7, -772.5), found by their centres (their
    ranks depend on the ranking step), characterised as `imagio detect` does."""
    from imagio import io
    from imagio.detection import detect
    from imagio.detection.characterise import characterise_candidates
    from imagio.detection.pipeline import lung_volume

    ct = io.read_image(shared_case("pyradiomics-lung", "lung1_image.nrrd"))
    cands = detect(ct)
    want = {"paravertebral": (6.54, 104.54, -652.5), "fat": (73.5, 145.72, -772.5)}
    picked = {}
    for name, p in want.items():
        d = [np.linalg.norm(np.asarray(c.center_ras) - p) for c in cands]
        assert min(d) < 3.0, (name, min(d))
        picked[name] = cands[int(np.argmin(d))]
    lungs = lung_volume(ct, None)[0]
    nods, _, _ = characterise_candidates(ct, [picked["paravertebral"], picked["fat"]], lungs)
    para, fat = nods
    assert para["segmented"] and para["type"] != "perifissural", para["type"]
    # 5 mm sections: the volume's partial-volume range is given for Lung-RADS's volumetric cuts
    lo, hi = para["volume_border_range_ml"]
    assert lo < para["volume_ml"] < hi
    assert any("calcium or bone" in w for w in para["warnings"]), para["warnings"]
    assert fat.get("not_assessable_kind") == "fat_density" and fat["type"] == "fat", fat["type"]
    assert fat["type_alternative"] is None
