"""`bones.split_bones` (issue 14): a piece of the spine corridor that lies in front of the
column's vertebral bodies is not a vertebra (`bones.in_front_of_column`). The chest CTA's front
part, cut at RAS A 146 mm (test_spine_ap_crops, trial 40), kept only 2.8 mL of the column in its
corridor; 1.5 mL of contrast-filled vessels beside the trachea, 97 % of it in front of the
column, was 'large' beside it (0.24 of its voxels) and named 'vertebrae' (the whole scan: 'bone').

Truth (RAS mm, drawn on oblique, flipped, anisotropic grids): a body box; in the midline corridor a
vertebral body (26 x 26 x 30 mm), a second vertebra stacked above it (apart: a disc between), a
spinous-process piece behind it (apart), and a dense vessel segment in front of it at the same
levels, 0.27 of the body's volume and 30 mm long (so 'large' and not 'long' by the corridor's rule)."""

import numpy as np
import pytest

from imagio.segmentation.bones import split_bones
from imagio.segmentation.common import ras_coordinate
from imagio.volume import Volume, make_ijk_to_ras


def _rot_z(deg):
    t = np.radians(deg)
    return np.array([[np.cos(t), -np.sin(t), 0.0], [np.sin(t), np.cos(t), 0.0], [0.0, 0.0, 1.0]])


def _rot_x(deg):
    t = np.radians(deg)
    return np.array([[1.0, 0.0, 0.0], [0.0, np.cos(t), -np.sin(t)], [0.0, np.sin(t), np.cos(t)]])


GRIDS = {
    "axial_flipped": (np.diag([-1.0, -1.0, 1.0]), (1.2, 1.5, 2.0)),
    "oblique": (_rot_z(20.0) @ _rot_x(8.0) @ np.diag([1.0, -1.0, 1.0]), (1.5, 1.2, 1.8)),
    "feet_first": (np.diag([1.0, -1.0, -1.0]), (1.4, 1.4, 2.5)),
}


def _scene(direction, spacing):
    spacing = np.asarray(spacing, float)
    half = np.array([140.0, 125.0, 70.0])        # RAS extent either side of 0, mm (covers any rotation)
    n = np.ceil(2 * np.linalg.norm(half) / spacing).astype(int)
    centre = (n - 1) / 2.0
    d = np.asarray(direction, float)
    origin = -(d * spacing[None, :]) @ centre
    ct = Volume(np.full(tuple(n[::-1]), -1000, np.int16), make_ijk_to_ras(spacing, origin, d))
    x, y, z = (np.broadcast_to(ras_coordinate(ct, a), ct.shape) for a in range(3))
    body = (np.abs(x) < 120) & (np.abs(y) < 90) & (np.abs(z) < 65)
    column = (np.abs(x) < 13) & (y > -60) & (y < -34) & (np.abs(z) < 15)
    above = (np.abs(x) < 13) & (y > -60) & (y < -34) & (z > 20) & (z < 40)       # disc z 15-20
    spinous = (np.abs(x) < 6) & (y > -82) & (y < -66) & (np.abs(z) < 15)        # apart behind
    vessel = (x > -26) & (x < -8) & (y > -30) & (y < -18) & (np.abs(z) < 15)    # in front
    arr = np.where(body, 40, -1000).astype(np.int16)
    bone = column | above | spinous | vessel
    arr[bone] = 700
    return ct.with_array(arr), body, {"column": column, "above": above, "spinous": spinous, "vessel": vessel}


@pytest.mark.parametrize("grid", list(GRIDS))
def test_a_piece_in_front_of_the_vertebral_bodies_is_not_a_vertebra(grid):
    ct, body, parts = _scene(*GRIDS[grid])
    bone = np.zeros(body.shape, bool)
    for m in parts.values():
        bone |= m
    # the scene as drawn: each piece apart from the others, the vessel 'large' beside the column
    assert 0.2 < parts["vessel"].sum() / parts["column"].sum() < 0.4
    out = split_bones(ct, bone, body, midline=0.0)
    v = out["vertebrae"]
    assert not (v & parts["vessel"]).any(), int((v & parts["vessel"]).sum())
    for name in ("column", "above", "spinous"):        # the vertebrae stay vertebrae
        assert v[parts[name]].all(), (name, int((~v & parts[name]).sum()))
