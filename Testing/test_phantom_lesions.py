"""Lesions painted into a phantom: shape against the analytic definition, names, CT numbers."""

import numpy as np
import pytest
from scipy import ndimage

from imagio import anatomy, phantom
from imagio.phantom import Phantom
from imagio.phantom.hu import HU, NOISE_SD
from imagio.phantom.lesions import KINDS, LESION_HU, insert_lesion
from imagio.volume import Volume, make_ijk_to_ras

WALL_X = 40.0  # the mini phantom's chest wall: muscle for x > WALL_X (RAS mm)


def mini_phantom(spacing=(0.8, 1.0, 1.3), direction=None) -> Phantom:
    """A block of lung (x < WALL_X, z > 0) against a muscle wall, liver below z = 0, on an
    oblique, flipped, anisotropic grid centred at the RAS origin. CT without blur or noise."""
    if direction is None:
        th = np.deg2rad(20)
        rot = np.array([[np.cos(th), -np.sin(th), 0], [np.sin(th), np.cos(th), 0], [0, 0, 1]])
        direction = rot @ np.diag([1.0, -1.0, 1.0])  # j axis flipped
    n = np.round(np.array([150.0, 150.0, 150.0]) / np.asarray(spacing)).astype(int)  # i, j, k
    aff = make_ijk_to_ras(spacing, (0, 0, 0), direction)
    aff[:3, 3] = -aff[:3, :3] @ ((n - 1) / 2.0)
    lab = np.zeros(tuple(n[::-1]), np.uint8)
    vol = Volume(lab, aff, "labels", {1: "lung_upper_lobe_right", 2: "muscle", 3: "liver"})
    kji = np.argwhere(np.ones(lab.shape, bool))
    ras = vol.kji_to_world(kji).reshape(lab.shape + (3,))
    x, z = ras[..., 0], ras[..., 2]
    lab[(x <= WALL_X) & (z > 0)] = 1
    lab[x > WALL_X] = 2
    lab[(x <= WALL_X) & (z <= 0)] = 3
    ct = np.array([-1000, HU["lung"], HU["muscle"], HU["liver"]], np.int16)[lab]
    return Phantom(Volume(ct, aff, "ct"), vol, [], [], float(min(spacing)), 0)


def ras_grid(vol):
    return vol.kji_to_world(np.argwhere(np.ones(vol.shape, bool))).reshape(vol.shape + (3,))


def painted(ph, les):
    return ph.labels.array == les.label_value


def test_ellipsoid_painted_at_the_voxel_centres_of_the_analytic_shape_on_an_oblique_grid():
    ph = mini_phantom()
    rot = np.linalg.qr(np.array([[1.0, 0.3, 0.2], [0.1, 1.0, -0.4], [0.2, 0.5, 1.0]]))[0]
    c = np.array([-10.0, 5.0, 40.0])
    les = insert_lesion(ph, "solid", c, 20.0, radii_mm=(12.0, 8.0, 5.0), rotation=rot)
    ras = ras_grid(ph.labels)
    u = ((ras - c) @ rot) / np.array([12.0, 8.0, 5.0])  # independent of the module
    expected = (u ** 2).sum(-1) <= 1.0
    np.testing.assert_array_equal(painted(ph, les), expected)
    vol_ml = painted(ph, les).sum() * ph.labels.voxel_volume_ml
    assert vol_ml == pytest.approx(4 / 3 * np.pi * 12 * 8 * 5 / 1000, rel=0.03)
    assert les.analytic_volume_ml() == pytest.approx(4 / 3 * np.pi * 12 * 8 * 5 / 1000, rel=1e-9)


def test_lobulated_necrotic_mass_volume_and_core_fraction():
    ph = mini_phantom(spacing=(1.0, 1.0, 1.0), direction=np.eye(3))
    les = insert_lesion(ph, "mass", (0.0, 0.0, 20.0), 60.0, necrotic_fraction=0.3, seed=3,
                        confine=False)
    m = painted(ph, les)
    # independent volume: Monte-Carlo sampling of the analytic shape in its bounding cube
    rng = np.random.default_rng(0)
    e = les.extent_mm
    pts = les.center_ras + rng.uniform(-e, e, size=(400_000, 3))
    mc_ml = les.inside(pts).mean() * (2 * e) ** 3 / 1000
    assert m.sum() * ph.labels.voxel_volume_ml == pytest.approx(mc_ml, rel=0.02)
    assert les.analytic_volume_ml() == pytest.approx(mc_ml, rel=0.02)
    # lobulated: the boundary's distance from the centre varies by more than a few voxels
    ras = ras_grid(ph.labels)[m ^ ndimage.binary_erosion(m)]
    r = np.linalg.norm(ras - les.center_ras, axis=1)
    assert r.max() - r.min() > 8.0
    # the core holds the necrotic fraction of the volume and has the necrosis CT number
    core = les.inside_core(ras_grid(ph.labels).reshape(-1, 3)).reshape(m.shape) & m
    assert core.sum() / m.sum() == pytest.approx(0.3, abs=0.02)
    deep_core = ndimage.binary_erosion(core, iterations=3)
    rim = m & ~ndimage.binary_dilation(core, iterations=3)
    rim = ndimage.binary_erosion(rim, iterations=1)
    assert np.median(ph.ct.array[deep_core]) == pytest.approx(LESION_HU["necrosis"], abs=5)
    assert np.median(ph.ct.array[rim]) == pytest.approx(LESION_HU["enhancing_tumor"], abs=8)


def test_mass_against_the_chest_wall_is_flat_against_it_unless_it_invades():
    ph = mini_phantom()
    wall = ph.labels.array == 2
    les = insert_lesion(ph, "mass", (WALL_X - 15.0, 0.0, 50.0), 50.0, necrotic_fraction=0.2)
    m = painted(ph, les)
    assert np.all(ph.labels.array[wall] == 2)  # no wall voxel overwritten
    assert np.any(ndimage.binary_dilation(m) & wall)  # but the lesion touches the wall
    assert les.painted_ml < 0.95 * les.analytic_volume_ml()
    inv = insert_lesion(ph, "soft_tissue", (WALL_X + 5.0, 0.0, -40.0), 30.0, confine=False)
    assert np.any(painted(ph, inv) & wall) and np.any(painted(ph, inv) & (ph.labels.array == 3) | painted(ph, inv))


def test_label_names_follow_the_family_and_are_catalogue_targets():
    ph = mini_phantom()
    names = [insert_lesion(ph, k, c, 12.0).name for k, c in
             [("solid", (0, 0, 40)), ("ground_glass", (-30, 20, 40)), ("liver_hypodense", (0, 0, -40)),
              ("soft_tissue", (60, 0, 0)), ("liver_hyperdense", (-30, 20, -40))]]
    assert names == ["lung_nodule_1", "lung_nodule_2", "liver_tumor_1", "soft_tissue_tumor_1",
                     "liver_tumor_2"]
    for n in names:
        assert anatomy.get(n).role == "target"
        assert n in ph.labels.labels.values()
    assert [les.name for les in ph.lesions] == names
    with pytest.raises(ValueError, match="already has"):
        insert_lesion(ph, "solid", (0, -30, 40), 8.0, name="lung_nodule_1")
    with pytest.raises(ValueError, match="unknown lesion kind"):
        insert_lesion(ph, "tumour", (0, 0, 40), 8.0)
    with pytest.raises(ValueError, match="outside"):
        insert_lesion(ph, "solid", (500, 0, 40), 8.0)


@pytest.mark.parametrize("kind, where, lo, hi", [
    ("solid", (0, 0, 40), 15, 45), ("ground_glass", (0, 0, 40), -650, -550),
    ("calcified", (0, 0, 40), 300, 500), ("perifissural", (0, 0, 40), 15, 45),
    ("liver_hypodense", (0, 0, -40), 40, 70), ("liver_hyperdense", (0, 0, -40), 150, 190),
    ("soft_tissue", (60, 0, 0), 55, 85), ("mass", (0, 0, 40), 55, 85)])
def test_ct_numbers_per_kind(kind, where, lo, hi):
    ph = mini_phantom()
    before = ph.ct.array.copy()
    les = insert_lesion(ph, kind, where, 24.0, lobulation=0.0)
    m = painted(ph, les)
    inner = ndimage.binary_erosion(m, iterations=3)
    assert inner.sum() > 50
    med = float(np.median(ph.ct.array[inner]))
    assert lo <= med <= hi, (kind, med)
    # the phantom's noise, restored where the lesion replaced the image (noise-free mini CT)
    assert np.std(ph.ct.array[inner].astype(float)) == pytest.approx(NOISE_SD, rel=0.25)
    # far from the lesion the CT is untouched
    far = np.linalg.norm(ras_grid(ph.ct) - np.asarray(where, float), axis=-1) > les.extent_mm + 6
    np.testing.assert_array_equal(ph.ct.array[far], before[far])


def test_part_solid_core_and_perifissural_flattening():
    ph = mini_phantom(spacing=(0.7, 0.7, 0.7), direction=np.eye(3))
    ps = insert_lesion(ph, "part_solid", (0, 0, 50), 24.0, solid_fraction=0.5)
    m = painted(ph, ps)
    ras = ras_grid(ph.ct)
    d = np.linalg.norm(ras - ps.center_ras, axis=-1)
    assert np.median(ph.ct.array[m & (d < 4)]) > 0  # solid core (radius 6 mm)
    assert np.median(ph.ct.array[m & (d > 8) & (d < 10)]) < -450  # ground-glass halo
    n = np.array([0.0, 0.8, 1.0]) / np.linalg.norm([0.0, 0.8, 1.0])
    pf = insert_lesion(ph, "perifissural", (-30, 30, 30), 10.0)
    pts = ras[painted(ph, pf)] - pf.center_ras
    along = pts @ n
    across = np.linalg.norm(pts - along[:, None] * n, axis=1)
    assert along.max() - along.min() == pytest.approx(5.0, abs=1.5)  # thickness: half the diameter
    assert 2 * across.max() == pytest.approx(10.0, abs=1.5)


def test_cavitated_mass_has_an_air_core_inside_the_label():
    ph = mini_phantom(spacing=(1.0, 1.0, 1.0), direction=np.eye(3))
    les = insert_lesion(ph, "mass", (0, 0, 55), 50.0, necrotic_fraction=0.2, cavitated=True)
    m = painted(ph, les)
    d = np.linalg.norm(ras_grid(ph.ct) - les.center_ras, axis=-1)
    assert np.all(m[d < 8])  # the cavity belongs to the lesion label
    assert np.median(ph.ct.array[d < 5]) < -900


def test_labels_widen_beyond_255_values():
    ph = mini_phantom()
    ph.labels.labels[255] = "muscle_spare"
    les = insert_lesion(ph, "solid", (0, 0, 40), 10.0)
    assert les.label_value == 256 and ph.labels.array.dtype == np.uint16
    assert painted(ph, les).sum() > 0


def test_every_kind_in_the_generated_phantom():
    ph = phantom.generate(spacing=3.0, seed=0)
    def deepest(names):  # the point of the organ farthest from its boundary
        m = ph.labels.mask(*names)
        d = ndimage.distance_transform_edt(m, sampling=ph.labels.spacing_kji)
        return ph.labels.kji_to_world(np.argwhere(d == d.max())[:1])[0]

    for kind in KINDS:
        c = deepest(["liver"] if kind.startswith("liver") else ["lung_lower_lobe_right", "lung_lower_lobe_left"])
        if kind == "soft_tissue":
            c = np.array([0.0, -80.0, 150.0])  # paraspinal muscle
        les = insert_lesion(ph, kind, c, 30.0 if kind == "mass" else 12.0, seed=1,
                            necrotic_fraction=0.25 if kind == "mass" else 0.0)
        assert painted(ph, les).sum() * ph.labels.voxel_volume_ml == pytest.approx(les.painted_ml)
        assert les.painted_ml > 0.2 * les.analytic_volume_ml(), kind
    assert len(ph.lesions) == 5 + len(KINDS)
    assert ph.to_json()["lesions"][-1]["lesion_kind"] == "soft_tissue"
