"""A lung lesion whose end along the head-foot axis is not bounded by lung says so (issue 14,
new-user trial 91 L3: lung2's mass, 40.0 mL of the 48.4 mL label, stops one to two 5 mm
sections short of the label's caudal end, where the mass lies on the diaphragm and against
the chest wall, and nothing flagged its craniocaudal extent)."""

import numpy as np
import pytest

from imagio.segmentation.lesion import _open_ends, segment_lesion
from imagio.volume import Volume, make_ijk_to_ras

THR = (-400.0, 600.0)   # a solid lung lesion's thresholds (half maximum over lung, calcium)


def _scene(dense_below: bool, direction):
    """(CT Volume, lesion mask) on a 2.5 x 0.8 x 0.8 mm grid of direction ``direction`` (3 x 3,
    columns: RAS of i, j, k): lung (-850 HU) with a 20 x 24 x 24 mm block of 40 HU (the lesion,
    its mask) in its middle; ``dense_below``: the sections caudal to it are 40 HU tissue (a
    diaphragm under the lesion), else lung."""
    a = np.full((20, 60, 60), -850.0, np.float32)
    m = np.zeros(a.shape, bool)
    m[6:14, 15:45, 15:45] = True
    a[m] = 40.0
    vol = Volume(a, make_ijk_to_ras((0.8, 0.8, 2.5), np.zeros(3), np.asarray(direction, float)))
    # the caudal side of the lesion: the sections whose S is below the mask's lowest one
    s = vol.kji_to_world(np.argwhere(np.ones(a.shape, bool)).astype(float))[:, 2].reshape(a.shape)
    s_min = s[m].min()
    if dense_below:
        a[s < s_min - 1e-6] = 40.0
    return vol.with_array(a), m


DIRECTIONS = {
    "axial": np.eye(3),
    "flipped S": np.diag([-1.0, -1.0, -1.0]),   # k runs towards the feet, LPS-like in-plane
    "S along i": np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]),   # a permuted grid
}


@pytest.mark.parametrize("name", list(DIRECTIONS))
def test_a_lesion_on_tissue_of_its_density_has_an_open_caudal_end(name):
    """The lesion's caudal end section sits on tissue of its own density: one open end, named
    inferior, with the whole footprint dense, whatever the grid's storage order; the same lesion
    in lung has none."""
    vol, m = _scene(True, DIRECTIONS[name])
    ends = _open_ends(m, vol, THR)
    assert [e[0] for e in ends] == ["inferior"] and ends[0][1] == pytest.approx(1.0), (name, ends)
    vol, m = _scene(False, DIRECTIONS[name])
    assert _open_ends(m, vol, THR) == [], name


def test_an_end_at_the_image_face_or_off_the_measured_field_is_left_to_the_field_checks():
    """An end section on the array's face or beside unmeasured voxels is not judged here (the
    field-of-view warnings say it: `_near_field_end`, `_edge_warning`)."""
    vol, m = _scene(True, np.eye(3))
    measured = np.ones(m.shape, bool)
    measured[:6] = False
    assert _open_ends(m, vol, THR, measured) == []
    m2 = m.copy()
    m2[0:6, 15:45, 15:45] = True   # the lesion runs down to the array's caudal face; lung above it
    assert _open_ends(m2, vol, THR) == []


def _lung_case(shared_data, case):
    from imagio import io

    d = shared_data / "pyradiomics-lung"
    ct = io.read_image(d / f"{case}_image.nrrd")
    ref = io.read_image(d / f"{case}_label.nrrd").resample_like(ct, order=0).array > 0
    return ct, ref


OPEN_END = "not bounded by aerated lung"


@pytest.mark.data
def test_lung2_mass_on_the_diaphragm_says_its_caudal_end_is_open(shared_data):
    """lung2's mass from its label's centroid: 40.0 mL against 48.4 mL, the outline's caudal
    section (S -275 mm) has 95 % of its footprint on tissue of the mass's density on the next
    section (the label goes on for two more sections there); its cranial end has lung beyond
    (1 %). Asserted: a lung lesion whose warnings name its inferior end as not bounded by lung,
    and not its superior end. lung1's nodule (0-4 % beyond its ends) has no such warning."""
    ct, ref = _lung_case(shared_data, "lung2")
    centroid = ct.kji_to_world(np.argwhere(ref).mean(0)[None])[0]
    m, meas = segment_lesion(ct, centroid)
    said = [w for w in meas.warnings if OPEN_END in w]
    assert meas.kind == "lung_nodule" and len(said) == 1 and "inferior" in said[0] and "superior" not in said[0], meas.warnings
    ct, ref = _lung_case(shared_data, "lung1")
    centroid = ct.kji_to_world(np.argwhere(ref).mean(0)[None])[0]
    m, meas = segment_lesion(ct, centroid)
    assert meas.kind == "lung_nodule" and not any(OPEN_END in w for w in meas.warnings), meas.warnings


@pytest.mark.data
def test_a_click_in_the_label_below_the_outline_is_told_the_border_is_in_doubt(shared_data):
    """New-user trial 93 F4: a click on lung2's hand-drawn mass, in a label section below the
    outline's open caudal end, gave the mass (the outline cut back to the region beside the
    click) and "so it may be another structure". The click lies in the label (checked here) and
    within two voxel diagonals of the outline (measured here): the words say the border near the
    click is in doubt, not another structure."""
    ct, ref = _lung_case(shared_data, "lung2")
    click = np.array([-48.9, 89.4, -280.0])
    kji = tuple(np.rint(ct.world_to_kji(click[None])[0]).astype(int))
    assert ref[kji]                                              # the click is on the mass's label
    m, meas = segment_lesion(ct, click)
    assert not m[kji]
    d = float(np.min(np.linalg.norm(ct.kji_to_world(np.argwhere(m).astype(float)) - ct.kji_to_world(
        np.asarray(kji, float)[None])[0], axis=1)))
    assert d <= 2.0 * float(np.linalg.norm(ct.spacing_kji))
    said = [w for w in meas.warnings if "does NOT contain the click" in w]
    assert said and "border near the click is in doubt" in said[0] and "another structure" not in said[0], said
    assert f"{d:.1f} mm from the click" in said[0], said
