"""The pleura label (`segmentation.lungs.pleural_surface`) is the one-voxel layer on the lung's
surface, outside the lung: where a face of the field of view cuts a lung, the lung goes on beyond
it, so that face carries no pleura (Gray's Anatomy, 41st ed., 'Pleura': the pleurae line the lung
and the chest wall). Truth: an analytic ellipsoid lung cut by the volume's top face and one side
face, on an axial grid and on an anisotropic, flipped, oblique grid; its surface layer inside the
view is found independently (voxels outside the ellipsoid with a lung 6-neighbour in the array).
And the layer never takes lung: `segment` with pleura gives the same lungs as without (trial 37
H2: 41-55 % of the lungs were painted pleura), and `plan` accepts that map."""

import numpy as np
import pytest

from imagio.segmentation.lungs import pleural_surface
from imagio.segmentation.common import ras_coordinate
from imagio.volume import Volume, make_ijk_to_ras


def _grid(kind):
    if kind == "axial":
        return Volume(np.zeros((40, 50, 45), np.uint8), make_ijk_to_ras((2.0, 2.0, 2.5), (-45.0, -50.0, -50.0)))
    t = np.radians(20.0)
    rot = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    d = rot @ np.diag([1.0, -1.0, -1.0])
    aff = make_ijk_to_ras((1.8, 2.2, 2.6), (0.0, 0.0, 0.0), d)
    shape = (38, 46, 52)
    aff[:3, 3] = np.array([0.0, 0.0, 0.0]) - aff[:3, :3] @ ((np.array(shape[::-1]) - 1) / 2.0)
    return Volume(np.zeros(shape, np.uint8), aff)


@pytest.mark.parametrize("kind", ["axial", "oblique"])
def test_a_face_that_cuts_the_lung_carries_no_pleura(kind):
    vol = _grid(kind)
    x, y, z = (np.broadcast_to(ras_coordinate(vol, r), vol.shape) for r in range(3))
    # a lung ellipsoid whose top and right parts lie beyond the view
    lung = ((x - 25.0) / 45.0) ** 2 + (y / 35.0) ** 2 + ((z - 30.0) / 60.0) ** 2 <= 1.0
    faces = np.zeros(vol.shape, bool)
    for ax in range(3):
        for end in (0, vol.shape[ax] - 1):
            idx = [slice(None)] * 3
            idx[ax] = end
            faces[tuple(idx)] = True
    assert (lung & faces).sum() > 100   # the view does cut it
    pl = pleural_surface(lung)
    # own surface layer: a voxel outside the lung with a 6-neighbour inside the array that is lung
    surface = np.zeros_like(lung)
    for ax in range(3):
        n = lung.shape[ax]
        lo, hi = [slice(None)] * 3, [slice(None)] * 3
        lo[ax], hi[ax] = slice(0, n - 1), slice(1, n)
        lo, hi = tuple(lo), tuple(hi)
        surface[lo] |= ~lung[lo] & lung[hi]    # neighbour at +1 is lung
        surface[hi] |= ~lung[hi] & lung[lo]    # neighbour at -1 is lung
    assert not (pl & faces & ~surface).any(), int((pl & faces & ~surface).sum())
    assert np.array_equal(pl, surface)


def test_segmenting_the_pleura_keeps_the_lungs_whole_and_the_map_plans(shared_data, tmp_path):
    """TotalSegmentator's example (3 mm): the lung labels of a map with pleura, lung vessels and
    emphysema, together with those sub-structures painted inside them, equal the lungs of a map
    without them; no pleura voxel lies in a lung; the map is accepted by `plan` (03ca614: 17.5 /
    40.9 mL of 42.9 / 73.2 mL left as lung, and plan refused its own map)."""
    import subprocess
    import sys
    from imagio.io import read_image, write_labels
    from imagio.segmentation.rules import segment
    path = shared_data / "totalsegmentator-example" / "example_ct_sm.nii.gz"
    ct = read_image(path)
    plain = segment(ct, ("body", "lungs"))
    full = segment(ct, ("body", "lungs", "emphysema", "lung_vessels", "pleura"))
    code = {n: v for v, n in full.labels.items()}
    lungs_plain = np.isin(plain.array, [v for v, n in plain.labels.items() if n.startswith("lung_")])
    inside = np.isin(full.array, [code[n] for n in ("lung_left", "lung_right", "lung_vessels", "emphysema") if n in code])
    assert lungs_plain.sum() > 1000
    assert np.array_equal(inside, lungs_plain)
    pleura = full.array == code["pleura"]
    assert pleura.any() and not (pleura & lungs_plain).any()
    # every pleura voxel touches the lung (own 6-neighbour check)
    touch = np.zeros_like(pleura)
    for ax in range(3):
        touch |= np.roll(lungs_plain, 1, ax) | np.roll(lungs_plain, -1, ax)
    assert not (pleura & ~touch).any()
    # the map plans: a point in the right lung's parenchyma, 20 mm from its surface
    from scipy import ndimage
    rl = full.array == code["lung_right"]
    depth = ndimage.distance_transform_edt(rl, sampling=ct.spacing[::-1])
    k, j, i = np.argwhere(depth >= 8.0)[0]
    ras = full.ijk_to_ras[:3, :3] @ np.array([i, j, k], float) + full.ijk_to_ras[:3, 3]
    seg = tmp_path / "seg.seg.nrrd"
    write_labels(full, seg)
    r = subprocess.run([sys.executable, "-m", "imagio", "plan", str(path), "--labels", str(seg),
                        "--target=" + ",".join(f"{c:.1f}" for c in ras), "--out", str(tmp_path / "p"),
                        "--no-png", "--no-scene"], capture_output=True, text=True)
    assert "does not belong to this CT" not in r.stderr, r.stderr
