"""A contrast-filled vein touching bone, and an electrode on the skin, are not bone (new-user
trial 71 MED: on the chest CTA the right subclavian/axillary vein, undiluted contrast > 1,200 HU,
had 1,520 voxels labelled bone, one 11.4 mL 'bone' piece was mostly that vein, and six ECG
electrodes were 'bone').

`bone_shell.undiluted_lumen` follows the thick undiluted lumen joined to the blood pool into its
thinner branches through tissue denser than the pool, by a ball of half the common resolution
that a 0.5-2 mm cortical shell does not hold; `bones.on_the_skin` takes out pieces that reach into
the skin and lie wholly within the subcutaneous probe depth of outside air. The geometry is built
in world millimetres on oblique, flipped, anisotropic grids and checked against the analytic
shapes, not against the functions' own masks."""

import numpy as np
import pytest

from imagio.segmentation import bone_shell, bones
from imagio.volume import Volume, make_ijk_to_ras


def _rot(deg_z, deg_x):
    z, x = np.radians(deg_z), np.radians(deg_x)
    rz = np.array([[np.cos(z), -np.sin(z), 0], [np.sin(z), np.cos(z), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(x), -np.sin(x)], [0, np.sin(x), np.cos(x)]])
    return rz @ rx


GRIDS = [  # (spacing i, j, k mm; rotation z, x degrees; flip of the direction's axes)
    ((1.5, 1.5, 1.5), (0.0, 0.0), (1, 1, 1)),
    ((1.2, 0.9, 2.0), (20.0, 8.0), (-1, 1, -1)),
    ((0.8, 1.4, 1.0), (-33.0, 15.0), (1, -1, 1)),
]


def _grid(spacing, rot, flip, half_mm=32.0):
    """A Volume of zeros covering a 64 mm cube around the world origin, its axes rotated and
    flipped, and the world RAS coordinates [k, j, i, 3] of its voxel centres."""
    d = _rot(*rot) @ np.diag(flip).astype(float)
    sp = np.asarray(spacing, float)
    n = np.ceil(2 * half_mm / sp).astype(int)
    origin = -d @ (sp * (n - 1) / 2.0)
    vol = Volume(np.zeros(tuple(n[::-1]), np.int16), make_ijk_to_ras(sp, origin, d))
    k, j, i = np.meshgrid(*[np.arange(x) for x in n[::-1]], indexing="ij")
    ras = vol.kji_to_world(np.stack([k, j, i], -1).reshape(-1, 3)).reshape(*n[::-1], 3)
    return vol, ras


def _seg_dist(p, a, b):
    """Distance (mm) of points p [..., 3] from the segment a-b."""
    ab = np.asarray(b, float) - a
    t = np.clip(((p - a) @ ab) / (ab @ ab), 0.0, 1.0)
    return np.linalg.norm(p - (np.asarray(a, float) + t[..., None] * ab), axis=-1)


@pytest.mark.parametrize("spacing,rot,flip", GRIDS)
def test_undiluted_vein_is_followed_but_not_into_the_bone_it_touches(spacing, rot, flip):
    vol, ras = _grid(spacing, rot, flip)
    sk = vol.spacing_kji
    # a vein: a 14 mm trunk along x (x < 0) narrowing to a 7 mm branch (x > 0), undiluted contrast
    # (a lumen of two voxels at the coarsest spacing: the ball holds at least one voxel)
    trunk = _seg_dist(ras, (-32, 0, 0), (0, 0, 0)) <= 7.0
    branch = _seg_dist(ras, (0, 0, 0), (30, 0, 0)) <= 3.5
    # a bone it lies on: a 12 mm thick plate (y 4.0..16) whose 1.5 mm cortex is as dense as the
    # contrast around a 9 mm marrow layer; the branch's wall touches its cortex (y = 3.5 vs 4.0 mm)
    plate = (ras[..., 1] >= 4.0) & (ras[..., 1] <= 16.0) & (np.abs(ras[..., 2]) <= 20) & (ras[..., 0] > 10)
    marrow = plate & (ras[..., 1] >= 5.5) & (ras[..., 1] <= 14.5) & (np.abs(ras[..., 2]) <= 18.5)
    cortex = plate & ~marrow
    dense = trunk | branch | cortex               # tissue denser than the pool's band
    seed = _seg_dist(ras, (-32, 0, 0), (-10, 0, 0)) <= 7.0   # the thick trunk joined to the pool
    lumen = bone_shell.undiluted_lumen(dense, seed & trunk, sk, 0.5 * bones.COMMON_RESOLUTION_MM)
    # the branch is followed (the voxels more than one voxel inside its wall: its core)
    core = _seg_dist(ras, (0, 0, 0), (27, 0, 0)) <= 3.5 - 0.5 * min(spacing)
    assert lumen[core].mean() > 0.9, lumen[core].mean()
    assert lumen[trunk].mean() > 0.95
    # the cortex it touches is not taken beyond the contact: at most the voxels within the ball's
    # diameter (3 mm) and one voxel of the branch's wall; the plate's cortex runs on for 15 mm
    # either side and its marrow is never taken
    contact = _seg_dist(ras, (0, 0, 0), (30, 0, 0)) <= 3.5 + bones.COMMON_RESOLUTION_MM + max(spacing)
    assert cortex.sum() > 3 * (cortex & contact).sum()
    assert not (lumen & cortex & ~contact).any(), (lumen & cortex & ~contact).sum()
    # no lumen without a trunk
    assert not bone_shell.undiluted_lumen(dense, np.zeros_like(dense), sk, 1.5).any()


@pytest.mark.parametrize("spacing,rot,flip", GRIDS)
def test_electrode_on_the_skin_is_not_bone_and_bone_under_it_is(spacing, rot, flip):
    vol, ras = _grid(spacing, rot, flip)
    sk = vol.spacing_kji
    # a body: a slab y <= 20 mm (skin surface at y = 20, air above); a rib 12 mm under the skin,
    # an electrode (a 10 mm disc, 2 mm thick, its metal blurred 4 mm into the skin) on the skin
    body = ras[..., 1] <= 20.0
    rib = _seg_dist(ras, (-25, 3, 0), (25, 3, 0)) <= 5.0          # y -2..8: 12 mm under the skin
    electrode = (np.hypot(ras[..., 0] - 5, ras[..., 2] - 10) <= 5.0) & (ras[..., 1] >= 16.0) & body
    vertebra = (np.abs(ras[..., 0]) <= 12) & (ras[..., 1] <= 0) & (np.abs(ras[..., 2] + 15) <= 10)
    bone = rib | electrode | vertebra
    ext, unsure = bones.on_the_skin(bone, body, sk)
    assert ext[electrode].all()
    assert not ext[rib | vertebra].any() and not unsure.any()
    # an electrode joined to bone (bone reaching the skin) is kept and reported as unsure
    bridge = (np.abs(ras[..., 0] - 5) <= 2) & (ras[..., 1] >= 7) & (np.abs(ras[..., 2] - 3) <= 6) & body & \
        (ras[..., 1] <= 17)
    ext2, unsure2 = bones.on_the_skin(bone | bridge, body, sk)
    assert not ext2.any() and unsure2[rib].all() and unsure2[electrode].all()
    # a face of the array is not outside air: a body cut by the view keeps its bone
    cut = np.ones(body.shape, bool)
    ext3, unsure3 = bones.on_the_skin(bone, cut, sk)
    assert not ext3.any() and not unsure3.any()


@pytest.mark.parametrize("spacing,rot,flip", GRIDS)
def test_bone_cut_by_a_reformats_fill_is_not_on_the_skin(spacing, rot, flip):
    """New-user trial 78 (MED): the chest CTA tilted 20 degrees, the upper sternum cut by the
    resampler's fill beyond the source's top plane was a 7.8 mL 'electrode': the fill reads as
    air outside the body. That fill (``unseen``: `body.measured_voxels`) ends the field of view,
    as a face of the array does; an electrode on the skin beside it is still one."""
    vol, ras = _grid(spacing, rot, flip)
    sk = vol.spacing_kji
    x, y, z = ras[..., 0], ras[..., 1], ras[..., 2]
    # the source's top plane, tilted 20 degrees about R: the fill beyond it
    fill = z - np.tan(np.radians(20.0)) * y >= 14.0
    body = (y <= 20.0) & ~fill
    # a manubrium: a 6 mm ball 12 mm under the skin, its top cut by the fill (a piece on its own)
    manubrium = (np.linalg.norm(ras - np.array([0.0, 2.0, 12.0]), axis=-1) <= 6.0) & ~fill
    electrode = (np.hypot(x - 5, z - 2) <= 5.0) & (y >= 16.0) & body
    rib = _seg_dist(ras, (-25, 3, -12), (25, 3, -12)) <= 5.0
    bone = manubrium | electrode | rib
    ext, _ = bones.on_the_skin(bone, body, sk)
    assert ext[manubrium].all()     # the fill taken for outside air: the manubrium 'on the skin'
    ext, unsure = bones.on_the_skin(bone, body, sk, unseen=fill)
    assert ext[electrode].all()
    assert not ext[manubrium | rib].any() and not unsure.any()


THICK_GRIDS = [  # thick axial slices (5 mm), rotated in the axial plane and flipped
    ((1.5, 1.5, 5.0), (0.0, 0.0), (1, 1, 1)),
    ((1.5, 1.2, 5.0), (25.0, 0.0), (-1, 1, -1)),
]


@pytest.mark.parametrize("spacing,rot,flip", THICK_GRIDS)
def test_on_thick_slices_the_vein_beyond_the_trunk_is_warned_of(spacing, rot, flip):
    """The chest CTA at 1.5 x 1.5 x 5 mm kept 12.9 mL of its undiluted vein as bone without a
    warning: the lumen's ball (one 5 mm slice's radius) needs three slices and the vein, 10 mm
    across and running in the axial plane, spans two. A ball of one in-plane voxel follows it; the
    bone-labelled tissue on that path is named in a warning (mL, RAS, what to check)."""
    vol, ras = _grid(spacing, rot, flip, half_mm=40.0)
    sk = vol.spacing_kji
    # slice planes: world S of each k (the rotation is in the axial plane, so S is per slice)
    zs = np.sort(np.unique(np.round(ras[..., 2], 3)))
    zc = 0.5 * (zs[len(zs) // 2] + zs[len(zs) // 2 + 1])       # between two slices
    trunk = _seg_dist(ras, (-20, 0, -35), (-20, 0, 35)) <= 8.0  # the superior vena cava, 16 mm
    vein = _seg_dist(ras, (-20, 0, zc), (38, 0, zc)) <= 5.0       # a 10 mm vein in the axial plane
    assert np.unique(np.round(ras[vein][:, 2], 3)).size == 2      # it spans two 5 mm slices
    beyond = vein & (ras[..., 0] > -5.0)                          # away from the trunk's wall
    dense = trunk | vein
    r = 0.5 * bones.COMMON_RESOLUTION_MM
    lumen = bone_shell.undiluted_lumen(dense, trunk, sk, r)
    along = bone_shell.undiluted_lumen(dense, trunk, sk, r, finest=True) & ~lumen
    assert lumen[trunk].mean() > 0.9 and lumen[beyond].mean() < 0.1    # the slice-thick ball stops
    assert along[beyond].mean() > 0.9, along[beyond].mean()              # the in-plane ball follows
    note = bones.thick_slice_note(vol, along, beyond)
    ml = beyond.sum() * vol.voxel_volume_ml
    assert note is not None and "superior vena cava" in note and "1 piece(s)" in note, note
    said_ml = float(note.split(" mL")[0])
    assert said_ml == pytest.approx(ml, rel=0.1), (said_ml, ml)
    at = np.array([float(x) for x in note.split("at RAS [")[1].split("]")[0].split(",")])
    assert np.linalg.norm(at - ras[beyond].mean(0)) < 3.0, at
    # bone elsewhere is not named; on an isotropic grid the two balls are one (nothing to warn of)
    assert bones.thick_slice_note(vol, along, (ras[..., 0] < -30) & ~dense) is None
    iso, iras = _grid((1.5, 1.5, 1.5), rot, flip, half_mm=40.0)
    d2 = (_seg_dist(iras, (-20, 0, -35), (-20, 0, 35)) <= 8.0) | (_seg_dist(iras, (-20, 0, 0), (38, 0, 0)) <= 5.0)
    t2 = _seg_dist(iras, (-20, 0, -35), (-20, 0, 35)) <= 8.0
    assert np.array_equal(bone_shell.undiluted_lumen(d2, t2, iso.spacing_kji, r),
                          bone_shell.undiluted_lumen(d2, t2, iso.spacing_kji, r, finest=True))
