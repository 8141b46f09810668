"""New-user trial 68 on the one-click lesion tool.

M5: a doubtful result gave firm sizes: STS_022's leaked outline (3351 mL against a mask of
818 mL) had its volume withheld but still gave a 185.8 mm mean diameter and a 262 mm long axis.
The diameters are now withheld with the volume (None), with the reason in one place
(``size_withheld``); the outline's volume stays as the outline's (``outline_volume_ml``). The
detector's characterisation reads no Lung-RADS category, not even a floor, from such an outline.
L6: warnings said one fact twice (the click-dependence on STS_008 and Lung_Dx-A0001, STS_022's
leak four times) and called a union "this click's".
Trial 88 M2: an outline leaked at the image's edge (STS_010) gave its volume beside leaked true;
its size is withheld too.
(L7, STS_010 "reads as lung" from the outside air round the limb, is left: the rule tried took a lung
cut by the field of view for outside air.)"""

import numpy as np
import pytest

from imagio.segmentation.lesion import DEPENDS, EDGE_UNBOUNDED, OWN_LEAK, SIZE_LIMIT, segment_lesion
from imagio.segmentation.measurements import SIZE_KEYS, LesionMeasurements
from synthetic_ct import make_ct


def _meas(**flags):
    m = LesionMeasurements("lung_nodule", 9.83, 40.0, 30.0, 38.0, 28.0, 40.0, mean_diameter_mm=33.0,
                           volume_pv_ml=9.5)
    for k, v in flags.items():
        setattr(m, k, v)
    return m


def test_withheld_volume_withholds_every_diameter():
    """click_dependent (leaked, a check's leak, a range, or none): volume and every diameter None,
    one reason (a range names its field, not its volumes again: trial 70 D2); a firm result keeps its sizes and has no reason."""
    for flags, word in (({"leaked": True}, "leaked"), ({"check_leaked": True}, "check click's outline leaked"),
                        ({"volume_range_ml": [7.0, 9.83]}, "volume_range_ml"), ({}, "click-dependent")):
        d = _meas(click_dependent=True, **flags).to_dict()
        assert d["volume_ml"] is None and all(d[k] is None for k in SIZE_KEYS), d
        assert word in d["size_withheld"] and d["outline_volume_ml"] == pytest.approx(9.83), d
    # leaked at the image's edge (trial 88 M2): withheld too, the edge named
    d = _meas(leaked=True, touches_image_edge=True, no_intensity_edge=True, volume_range_ml=[229.0, 266.0]).to_dict()
    assert d["volume_range_ml"] is None, d   # no range from a leaked outline (trial 89 M3)
    assert d["volume_ml"] is None and all(d[k] is None for k in SIZE_KEYS) and d["centroid_ras"] is None, d
    assert "image's edge" in d["size_withheld"] and d["outline_volume_ml"] == pytest.approx(9.83), d
    d = _meas(leaked=True, irregular=True).to_dict()   # leaked by its shape alone (an --add's union): sizes given
    assert d["size_withheld"] is None and d["volume_ml"] == pytest.approx(9.83)
    assert d["long_axis_mm"] == 40.0 and d["mean_diameter_mm"] == 33.0 and d["volume_pv_ml"] == 9.5


def test_characterisation_reads_no_category_from_a_withheld_size():
    """`detection.characterise.not_assessable` on a soft-tissue outline whose size the one-click
    tool withheld: not assessable ("size_withheld"), and Lung-RADS then gives no category and no
    floor; the same outline with its size given is assessable."""
    from imagio.detection import Candidate
    from imagio.detection.characterise import not_assessable
    from imagio.stratification.screening import lung_rads, not_assessable_words

    ct, t = make_ct(spacing=(4.0, 4.0, 4.0), noise=5.0)
    mask = t["liver"]
    cand = Candidate(np.zeros(3), 20.0, 4.0, "solid", 0.5)
    assert not_assessable(ct, cand, mask, _meas(), False) is None
    why = not_assessable(ct, cand, mask, _meas(click_dependent=True, check_leaked=True), False)
    assert why and why[0] == "size_withheld" and "leaked" in why[1], why
    assert not_assessable_words("size_withheld")
    lr = lung_rads({"type": "solid", "mean_diameter_mm": 33.0, "not_assessable": why[1]})
    assert "category" not in lr and lr["category_at_least"] is None and lr["no_category"] == "not_assessable"


def _shared_ct(shared_data, *parts):
    from imagio import io

    return io.read_image(shared_data.joinpath(*parts))


def test_sts_022_leak_gives_no_size_and_is_said_once(shared_data):
    """STS_022 clicked at its deepest point (trial 68): no volume, no diameter, the reason said;
    the outline's own leak in one warning (no separate size-limit or image-edge warning)."""
    ct = _shared_ct(shared_data, "sts-sarcoma", "STS_022", "CT_image.nii.gz")
    m, meas = segment_lesion(ct, [-121.1, 33.2, 923.9])
    d = meas.to_dict()
    assert d["volume_ml"] is None and all(d[k] is None for k in SIZE_KEYS) and d["size_withheld"], d
    assert d["outline_volume_ml"] == pytest.approx(float(m.sum()) * ct.voxel_volume_ml, rel=1e-3)
    if meas.leaked and meas.hit_size_limit:
        assert sum(w.startswith(OWN_LEAK) for w in meas.warnings) == 1, meas.warnings
        assert not any(w.startswith((SIZE_LIMIT, EDGE_UNBOUNDED)) for w in meas.warnings), meas.warnings


@pytest.mark.parametrize("case,point", [
    (("sts-sarcoma", "STS_008", "CT_image.nii.gz"), [-176.8, -8.8, -194.5]),
    (("lung-pet-ct-dx", "Lung_Dx-A0001_ct.nii.gz"), [-41.8, -206.6, -209.0])])
def test_click_dependence_is_said_once(shared_data, case, point):
    """STS_008 and Lung_Dx-A0001 (trial 68 L6): the click-dependence and its range in one warning;
    no warning calls the outline "this click's" when another says it is a union."""
    ct = _shared_ct(shared_data, *case)
    m, meas = segment_lesion(ct, point)
    said = [w for w in meas.warnings if DEPENDS in w or w.startswith("click-dependent")]
    assert meas.click_dependent and len(said) == 1, meas.warnings
    if meas.volume_range_ml:
        lo, hi = meas.volume_range_ml
        # the range, or (trial 70 D2) both ends as the volumes of the note that names them, once
        assert f"{lo:.1f}-{hi:.1f} mL" in said[0] or all(said[0].count(f"{x:.1f} mL") == 1 for x in (lo, hi)), said
    if any("union of the two" in w for w in meas.warnings):
        assert not any("this click's" in w for w in meas.warnings), meas.warnings
    assert meas.to_dict()["long_axis_mm"] is None
