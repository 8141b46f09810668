"""Trial 56 L3: the advice for a target whose centre reads fluid said "aim at the solid
(enhancing) part" on a non-contrast CT, where no part can be seen to enhance. The part to aim at
is now worded by the CT's phase as its labelled vessels tell it (`problem.contrast_phase`):
enhancing on a contrast CT, the solid part denser than fluid on a non-contrast one or when no
vessel is labelled. Oblique flipped anisotropic grid."""

import numpy as np

from conftest import rotation
from imagio.planning.problem import contrast_phase, outline_tissue
from imagio.volume import Volume, make_ijk_to_ras


def _case(blood_hu):
    shape = (30, 40, 40)
    d = rotation((1, 2, 3), 25.0) @ np.diag([1.0, -1.0, 1.0])
    aff = make_ijk_to_ras((1.0, 1.2, 2.5), (-20.0, 15.0, -40.0), d)
    ras = Volume(np.zeros(shape, np.int16), aff).kji_to_world(
        np.indices(shape).reshape(3, -1).T.astype(float)).reshape(shape + (3,))
    c = ras[15, 20, 20]
    r = np.linalg.norm(ras - c, axis=-1)
    hu = np.full(shape, 50, np.int16)                  # muscle
    hu[r <= 14.0] = 110                                # the tumour's solid part
    hu[r <= 8.0] = 8                                   # its fluid centre (Bosniak: -9..20 HU)
    arr = np.zeros(shape, np.uint8)
    arr[r <= 14.0] = 1
    vessel = np.abs(ras[..., 0] - ras[..., 0].min()) < 4.0   # a vessel along one face
    hu[vessel & (r > 14.0)] = blood_hu
    arr[vessel & (r > 14.0)] = 2
    ct = Volume(hu, aff)
    return ct, Volume(arr, aff, labels={1: "liver_tumor_1", 2: "inferior_vena_cava"}), c


def _advice(ct, lab, c):
    w, moved = outline_tissue(ct, lab.array == 1, "liver_tumor_1", c, contrast=contrast_phase(ct, lab))
    assert moved is None and len(w) == 1 and "reads fluid" in w[0], w
    return w[0]


def test_the_fluid_advice_follows_the_contrast_phase():
    ct, lab, c = _case(200)                          # enhanced blood
    assert contrast_phase(ct, lab) is True
    assert "enhancing part" in _advice(ct, lab, c)
    ct, lab, c = _case(40)                           # unenhanced blood: a non-contrast CT
    assert contrast_phase(ct, lab) is False
    said = _advice(ct, lab, c)
    assert "enhancing" not in said and "non-contrast CT" in said
    names = {1: "liver_tumor_1", 2: "muscle"}        # no vessel labelled: the phase is not known
    lab = lab.with_array(lab.array, labels=names)
    assert contrast_phase(ct, lab) is None
    said = _advice(ct, lab, c)
    assert "enhancing" not in said and "not known" in said
