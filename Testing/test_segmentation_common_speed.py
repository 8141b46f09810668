"""Faster forms of three segmentation helpers (issue 20) give the same values as the slow ones,
with less memory: the per-plane convex hull on the mask's box, component counts a chunk at a
time, and the world-coordinate ramps a slab at a time."""

import tracemalloc

import numpy as np
import pytest
from scipy import ndimage
from skimage.morphology import convex_hull_image

from imagio.segmentation.common import components, convex_hull_2d, label_counts, ras_coordinate
from imagio.volume import Volume, make_ijk_to_ras

from conftest import rotation


def _traced_peak(f, *args):
    """(f(*args), the peak of the memory traced while it ran, bytes)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        out = f(*args)
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _planes():
    """Masks that reach the plane's border, several pieces, thin lines, single pixels."""
    rng = np.random.default_rng(7)
    out = []
    for seed in range(6):
        blob = ndimage.gaussian_filter(np.random.default_rng(seed).random((60, 83)), 4) > 0.5
        out += [blob, blob[::-1], blob.T, blob[:, ::-1]]
    line = np.zeros((30, 40), bool)
    line[5, 3:37] = True                        # collinear pixels
    diag = np.eye(25, 31, 2, dtype=bool)        # a diagonal line
    one = np.zeros((9, 9), bool)
    one[0, 8] = True                            # a corner pixel
    two = np.zeros((12, 14), bool)
    two[3, 4] = two[10, 11] = True
    sparse = rng.random((70, 50)) > 0.997       # scattered pixels
    edge = np.zeros((20, 20), bool)
    edge[:, 0] = edge[19, :] = True             # two borders of the plane
    return out + [line, diag, one, two, sparse, edge]


def test_convex_hull_on_the_box_is_the_whole_plane_hull():
    planes = _planes()
    for m in planes:
        assert np.array_equal(convex_hull_2d(m), convex_hull_image(m))
    assert not convex_hull_2d(np.zeros((5, 6), bool)).any()


def test_convex_hull_of_the_phantom_lungs_on_every_plane():
    """The lungs of the 4 mm phantom, every plane along each array axis (the per-plane hull of
    `bone_shell.lung_hull_planes` and `planning.mediastinum`)."""
    from imagio import phantom

    ph = phantom.generate(spacing=4.0, seed=2)
    inv = {n: v for v, n in ph.labels.labels.items()}
    lungs = np.isin(ph.labels.array, [v for n, v in inv.items() if n.startswith("lung_") and "lobe" in n])
    n = 0
    for ax in range(3):
        for k in range(lungs.shape[ax]):
            pl = np.take(lungs, k, axis=ax)
            if pl.sum() >= 3:
                n += 1
                assert np.array_equal(convex_hull_2d(pl), convex_hull_image(pl)), (ax, k)
    assert n > 50


def test_component_counts_equal_bincount_without_a_volume_sized_int64_copy():
    rng = np.random.default_rng(3)
    mask = ndimage.gaussian_filter(rng.random((80, 200, 256), np.float32), 1.5) > 0.5   # 4.1 M voxels: 4 chunks
    lab, n, counts = components(mask)
    assert n > 20
    ref = np.bincount(lab.ravel(), minlength=n + 1)
    assert counts.dtype == np.int64 and np.array_equal(counts, ref)
    assert np.array_equal(label_counts(lab, n), ref)
    # few labels (counted one comparison per label, issue 20): uint8 to uint64 maps, chunk edges
    for dt, k in ((np.uint8, 16), (np.uint16, 8), (np.uint32, 4), (np.uint64, 2), (np.uint32, 1), (np.uint8, 0)):
        few = rng.integers(0, k + 1, (1 << 20) + 77).astype(dt)
        assert np.array_equal(label_counts(few, k), np.bincount(few, minlength=k + 1)), (dt, k)
    _, peak = _traced_peak(components, mask)
    # the label map (4 bytes per voxel) and chunks; a volume-sized int64 copy would add 8 per voxel
    assert peak < 4 * mask.size + 12 * 2 ** 20, peak / mask.size


@pytest.mark.parametrize("oblique", [False, True])
def test_world_coordinate_ramps(oblique):
    """Against every voxel's position by the affine (`Volume.kji_to_world`, float64): within
    float32 rounding; and no float64 volume temporary."""
    d = rotation((1, 2, 3), 20.0) @ np.diag([-1.0, 1.0, 1.0]) if oblique else np.eye(3)
    sp = (0.7, 1.1, 2.5) if oblique else (1.5, 1.5, 1.5)
    vol = Volume(np.zeros((23, 41, 57), np.int16), make_ijk_to_ras(sp, (-12.5, 30.25, -101.0), d))
    kji = np.indices(vol.shape).reshape(3, -1).T
    world = vol.kji_to_world(kji)
    for row in range(3):
        r = ras_coordinate(vol, row)
        assert r.dtype == np.float32 and r.shape == vol.shape
        assert np.max(np.abs(r.reshape(-1) - world[:, row])) < 1e-4
    big = Volume(np.zeros((40, 300, 300), np.int16), vol.ijk_to_ras)
    r, peak = _traced_peak(ras_coordinate, big, 2)
    assert peak < 4 * r.size + 20 * 2 ** 20, peak / r.size   # the float32 result and one slab


def test_component_counts_of_sparse_dense_and_empty_chunks_equal_bincount():
    """`label_counts` counts only the labelled voxels of a chunk at most half labelled (issue 20):
    sparse, dense, empty and mixed chunks, each label dtype cc3d gives, equal ``np.bincount``."""
    rng = np.random.default_rng(11)
    shape = (40, 128, 256)                 # 1.3 M voxels: the first chunk (2**20) is planes 0-31
    for p in (0.003, 0.3, 0.7, 1.0):
        mask = np.zeros(shape, bool)       # an empty first chunk, then sparse or dense
        mask[32:] = rng.random((8,) + shape[1:]) < p
        lab, n = ndimage.label(mask)
        want = np.bincount(lab.ravel(), minlength=n + 1)
        for dtype in (np.uint16, np.uint32, np.uint64):
            if n < np.iinfo(dtype).max:
                assert np.array_equal(label_counts(lab.astype(dtype), n), want)


def test_lung_hulls_kept_within_the_context_are_the_computed_ones():
    """Within `bone_shell.keep_lung_hulls` a second `lung_hull_planes` call with equal lungs gives
    the hull computed outside it (a new array each time: changing one changes no later result);
    other lungs, axis or depth are computed, not taken from the kept one."""
    from imagio.segmentation import bone_shell

    shape, sk = (20, 36, 44), np.array([2.5, 1.2, 0.9])
    k, j, i = np.indices(shape)
    lungs = (((i - 11) / 8.0) ** 2 + ((j - 18) / 13.0) ** 2 < 1) | (((i - 33) / 8.0) ** 2 + ((j - 18) / 13.0) ** 2 < 1)
    lungs &= (k > 2) & (k < 17)
    other = lungs & (j > 12)                             # the lungs' front cut off: another hull
    want = {(m, ax, d): bone_shell.lung_hull_planes(lungs if m else other, ax, sk, d)
            for m in (True, False) for ax in (0, 1) for d in (2.0, 4.0)}
    assert not np.array_equal(want[True, 0, 2.0], want[False, 0, 2.0])
    with bone_shell.keep_lung_hulls():
        for _ in range(2):
            for (m, ax, d), ref in want.items():
                got = bone_shell.lung_hull_planes((lungs if m else other).copy(), ax, sk, d)
                np.testing.assert_array_equal(got, ref)
                got[...] = True                          # the caller's array, not the kept one
        assert len(bone_shell._HULLS.entries) == len(want)
    assert getattr(bone_shell._HULLS, "entries", None) is None   # dropped on exit


def test_mediastinal_pieces_with_the_lungs_hull_given_is_the_same():
    """`split_bones` computes the lungs' per-plane hull (`bone_shell.lung_hull_planes`) once for
    its two mediastinal checks (issue 20): `mediastinal_pieces` given that hull gives the same
    pieces as computing it, and leaves the hull as it was (the second call reads it again)."""
    from imagio.segmentation import bone_shell

    rng = np.random.default_rng(5)
    shape, sk = (24, 40, 50), np.array([2.5, 1.2, 0.9])
    k, j, i = np.indices(shape)
    lungs = (((i - 12) / 9.0) ** 2 + ((j - 20) / 14.0) ** 2 < 1) | (((i - 38) / 9.0) ** 2 + ((j - 20) / 14.0) ** 2 < 1)
    lungs &= (k > 2) & (k < 21)
    vert = (np.abs(i - 25) < 4) & (j > 16) & (j < 22) & (k > 1)
    rest = (rng.random(shape) > 0.97) & ~lungs & ~vert
    a_mm = -j * sk[1]                                # anterior decreases with j
    for s_ax in (0, 1):
        hull = bone_shell.lung_hull_planes(lungs, s_ax, sk, 3.0)
        before = hull.copy()
        for skel, v in ((vert, vert), (vert | (rng.random(shape) > 0.995), None)):
            want = bone_shell.mediastinal_pieces(rest, skel, lungs, s_ax, sk, 3.0, v, a_mm, 2.0)
            got = bone_shell.mediastinal_pieces(rest, skel, lungs, s_ax, sk, 3.0, v, a_mm, 2.0, hull=hull)
            np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(hull, before)
        assert want.any() and not want.all()


def _medians_reference(a, lab, which, lo=-1100, hi=-390, width=5):
    """Per label, the definition of `label_medians`: the first ``width`` HU bin of the clipped
    values whose cumulative count reaches half (rounded up), at its centre."""
    out = []
    for v in np.flatnonzero(which):
        b = ((np.clip(a[lab == v], lo, hi - 1) - lo) // width).astype(np.int64)
        c = np.cumsum(np.bincount(b, minlength=(hi - lo) // width))
        out.append(lo + (int(np.argmax(c >= (c[-1] + 1) // 2)) + 0.5) * width)
    return np.array(out)


def _air_labels(a):
    from imagio.segmentation.common import BODY_HU

    lab, n, counts = components(a <= BODY_HU)
    which = counts >= 20
    which[0] = False
    return lab, which


def test_label_medians_a_slab_at_a_time_are_the_medians(shared_data):
    """Issue 20: `label_medians` sums its per-label histogram a slab of planes at a time. The
    medians are the definition's on the phantom's and a real CT's air components, on a
    non-contiguous view (`core_medians` passes ``a[box]``), and for no label selected."""
    from imagio import phantom
    from imagio.io import read_image
    from imagio.segmentation.common import label_medians

    cts = [phantom.generate(spacing=4.0, seed=2).ct.array,
           read_image(shared_data / "totalsegmentator-chest-cta" / "chest_cta.nii.gz").array]
    for a in cts:
        lab, which = _air_labels(a)
        assert which.sum() >= 2
        np.testing.assert_array_equal(label_medians(a, lab, which), _medians_reference(a, lab, which))
        box = (slice(3, None), slice(None, -4), slice(5, -2))
        np.testing.assert_array_equal(label_medians(a[box], lab[box], which),
                                      _medians_reference(a[box], lab[box], which))
        assert label_medians(a, lab, np.zeros_like(which)).size == 0


def test_label_medians_hold_no_volume_sized_temporaries():
    """The selected voxels' labels, values and int64 bins were volume-sized (about 20 bytes per
    voxel: 80 MiB on 4 M voxels, 400 MiB on the 1.5 mm demo phantom's outside air); a slab of
    ~2**20 voxels at a time they are not."""
    from imagio.segmentation.common import label_medians

    rng = np.random.default_rng(0)
    shape = (64, 256, 256)
    lab = rng.integers(0, 7, shape).astype(np.uint32)
    a = rng.integers(-1024, 200, shape).astype(np.int16)
    which = np.ones(8, bool)
    which[0] = False
    med, peak = _traced_peak(label_medians, a, lab, which)
    np.testing.assert_array_equal(med, _medians_reference(a, lab, which))
    assert peak < 32 * 2 ** 20, peak / 2 ** 20


def _ras_reference(vol, row):
    """The whole volume's float64 sum of the origin and the three axis ramps, as float32."""
    m = vol.ijk_to_ras
    k, j, i = (np.arange(n, dtype=np.float32) for n in vol.shape)
    return (m[row, 3] + (m[row, 2] * k)[:, None, None] + (m[row, 1] * j)[None, :, None]
            + (m[row, 0] * i)[None, None, :]).astype(np.float32)


@pytest.mark.parametrize("direction", ["lps", "flipped", "oblique"])
def test_ras_ramp_broadcasts_to_the_world_coordinate(direction):
    """Issue 20: on a grid whose axes follow the patient's (an axial CT, any flips), each world
    coordinate follows one array axis: `ras_ramp` is that axis's ramp, `ras_coordinate` its
    read-only broadcast (no volume in memory); values and signs are the whole volume's sum. An
    oblique grid gets the whole volume, as before."""
    from imagio.segmentation.common import ras_ramp

    d = {"lps": np.diag([-1.0, -1.0, 1.0]), "flipped": np.diag([1.0, -1.0, -1.0]),
         "oblique": rotation((1, 2, 3), 20.0)}[direction]
    vol = Volume(np.zeros((23, 41, 57), np.int16), make_ijk_to_ras((0.7, 1.1, 2.5), (-12.5, 30.25, 0.0), d))
    for row in range(3):
        ref = _ras_reference(vol, row)
        ramp = ras_ramp(vol, row)
        full = ras_coordinate(vol, row)
        assert ramp.dtype == full.dtype == np.float32 and full.shape == vol.shape
        for got in (np.broadcast_to(ramp, vol.shape), full):
            np.testing.assert_array_equal(got, ref)
            np.testing.assert_array_equal(np.signbit(got), np.signbit(ref))
        if direction == "oblique":
            assert ramp.shape == vol.shape
        else:
            assert sorted(ramp.shape)[:2] == [1, 1] and not full.flags.writeable
    if direction != "oblique":   # 40 x 300 x 300 voxels: no float32 volume (14 MiB) is made
        big = Volume(np.zeros((40, 300, 300), np.int16), vol.ijk_to_ras)
        r, peak = _traced_peak(ras_coordinate, big, 0)
        np.testing.assert_array_equal(r, _ras_reference(big, 0))
        assert peak < 2 ** 20, peak


def test_ras_ramp_of_real_cts_is_their_world_coordinate(shared_data):
    from imagio.io import read_image
    from imagio.segmentation.common import ras_ramp

    for rel in ("totalsegmentator-chest-cta/chest_cta.nii.gz", "pyradiomics-lung/lung1_image.nrrd",
                "totalsegmentator-example/example_ct.nii.gz"):
        vol = read_image(shared_data / rel)
        for row in range(3):
            np.testing.assert_array_equal(np.broadcast_to(ras_ramp(vol, row), vol.shape), _ras_reference(vol, row))


def test_components_on_the_masks_box_are_the_whole_grids():
    """`body.limbs` labels the pieces beside the trunk on their bounding box and places the labels
    on the whole grid: the same components, numbered the same (the box keeps the voxels' raster
    order), also where the mask touches the image border."""
    from imagio import phantom
    from imagio.segmentation.common import BODY_HU, bbox_slices, embed

    a = phantom.generate(spacing=4.0, seed=2).ct.array
    masks = [a > BODY_HU, (a > 150) & (a < 400), a <= BODY_HU]
    rng = np.random.default_rng(4)
    corner = np.zeros((30, 40, 50), bool)
    corner[:6, -7:, 20:] = rng.random((6, 7, 30)) > 0.4       # on three faces of the grid
    masks += [corner, corner[::-1, ::-1, ::-1].copy()]
    for m in masks:
        box = bbox_slices(m)
        for conn in (6, 26):
            want = components(m, connectivity=conn)[0]
            got = embed(components(m[box], connectivity=conn)[0], m.shape, box)
            np.testing.assert_array_equal(got, want)


def test_coarse_core_upsampled_by_repeats_is_the_nearest_index():
    """`body._upsample` (whole-axis repeats) is the fancy index it replaces: voxel n takes the
    coarse voxel n // f, on shapes that f divides and shapes it does not."""
    from imagio.segmentation.body import _upsample

    rng = np.random.default_rng(2)
    for shape in ((31, 17, 40), (10, 11, 12), (1, 5, 7), (7, 1, 1), (9, 9, 9)):
        for f in (2, 3, 4):
            c = rng.random(np.zeros(shape)[::f, ::f, ::f].shape) < 0.5
            idx = [np.minimum(np.arange(n) // f, c.shape[ax] - 1) for ax, n in enumerate(shape)]
            np.testing.assert_array_equal(_upsample(c, f, shape), c[np.ix_(*idx)])


def test_components_labelled_on_the_masks_box_of_a_large_volume_are_cc3ds_whole_volume_labels():
    """On volumes of `CROP_MIN_VOXELS` or more, `components` labels the mask's bounding box only
    (issue 20): the labels (voxel for voxel, numbering, dtype), their number and the counts
    (background included) are cc3d's on the whole volume, for masks inside the volume, on its
    faces and corners, in a box over 4/9 of the volume (labelled whole), and empty; 6-, 18- and
    26-connectivity. An equality guard of a refactor: it holds on the code before as well."""
    import cc3d

    from imagio.segmentation.common import CROP_MIN_VOXELS

    rng = np.random.default_rng(11)
    shape = (70, 180, 200)                      # 2.52 M voxels
    assert np.prod(shape) >= CROP_MIN_VOXELS
    noise = ndimage.gaussian_filter(rng.random(shape, np.float32), 1.2) > 0.52
    boxes = [(slice(20, 45), slice(30, 101), slice(50, 140)),      # inside
             (slice(0, 12), slice(150, 180), slice(0, 40)),        # a corner: three faces
             (slice(0, 70), slice(0, 180), slice(190, 200)),       # a thin slab on a face
             (slice(5, 68), slice(10, 170), slice(5, 195))]        # over 4/9 of the volume
    masks = []
    for b in boxes:
        m = np.zeros(shape, bool)
        m[b] = noise[b]
        masks.append(m)
    masks.append(np.zeros(shape, bool))
    single = np.zeros(shape, bool)
    single[69, 0, 199] = True                   # one voxel at a corner
    masks.append(single)
    for m in masks:
        for conn in (6, 18, 26):
            want, n_want = cc3d.connected_components(m, connectivity=conn, return_N=True)
            lab, n, counts = components(m, connectivity=conn)
            assert lab.dtype == want.dtype and lab.shape == want.shape
            np.testing.assert_array_equal(lab, want)
            assert n == n_want
            np.testing.assert_array_equal(counts, np.bincount(want.ravel(), minlength=n_want + 1))


def test_dilation_on_the_masks_grown_box_is_scipys_whole_volume_dilation():
    """`dilate_voxels` (issue 20: the airways', holes' and lung field's one-voxel dilations on the
    mask's box grown by the dilation's reach) gives ``ndimage.binary_dilation``'s voxels on the
    whole volume: masks inside, on a corner (three faces: the volume's border is outside in both),
    a slab on a face, a single voxel in a corner, empty, a non-bool mask; the 6-neighbour cross,
    the 3x3x3 cube and an anisotropic structure; 1 and 3 iterations; a strided (non-contiguous)
    view. The helper is new: this fails on the code before (no `dilate_voxels`)."""
    from imagio.segmentation.common import dilate_voxels

    rng = np.random.default_rng(5)
    shape = (23, 41, 37)
    noise = rng.random(shape) > 0.93
    boxes = [(slice(8, 14), slice(10, 30), slice(12, 20)), (slice(0, 4), slice(35, 41), slice(0, 6)),
             (slice(0, 23), slice(0, 41), slice(33, 37)), (slice(0, 23), slice(0, 41), slice(0, 37))]
    masks = []
    for b in boxes:
        m = np.zeros(shape, bool)
        m[b] = noise[b]
        masks.append(m)
    single = np.zeros(shape, bool)
    single[22, 0, 36] = True
    masks += [single, np.zeros(shape, bool), (noise * 3).astype(np.uint8)]
    structures = [None, np.ones((3, 3, 3), bool), np.ones((1, 3, 5), bool)]
    for m in masks:
        for st in structures:
            for it in (1, 3):
                want = ndimage.binary_dilation(m, st, iterations=it)
                got = dilate_voxels(m, st, iterations=it)
                assert got.dtype == bool and got.shape == m.shape
                np.testing.assert_array_equal(got, want)
    view = np.zeros((46, 41, 37), bool)[::2]
    view[10, 20, 30] = view[0, 0, 0] = True
    np.testing.assert_array_equal(dilate_voxels(view), ndimage.binary_dilation(view))


def test_bbox_slices_are_the_masks_voxel_extent_grown_by_the_margin():
    """`bbox_slices` (now from `_mask_box`, issue 20): the extent of the nonzero voxels along
    each axis (own count: ``np.argwhere``), grown by ceil(margin / spacing) + 1 voxels and cut
    at the array's faces; None when empty. Bool and integer masks, C, Fortran and strided
    views, empty and sparse masks, anisotropic spacings. An equality guard of a refactor: it
    holds on the code before as well."""
    from imagio.segmentation.common import bbox_slices

    rng = np.random.default_rng(8)
    for t in range(200):
        shape = tuple(int(n) for n in rng.integers(1, 25, 3))
        m = rng.random(shape) < [0.0, 0.002, 0.02, 0.3][t % 4]
        v = m if t % 3 else m.astype(np.int16) * 5
        if t % 5 == 0:
            v = np.asfortranarray(v)
        if t % 7 == 0:
            v = v[::-1, ::2]
        margin, sp = float(rng.choice([0.0, 1.5, 4.0])), tuple(rng.uniform(0.5, 3.0, 3))
        kji = np.argwhere(v)
        if not len(kji):
            assert bbox_slices(v, margin, sp) is None
            continue
        g = [int(np.ceil(margin / s)) + 1 for s in sp]
        want = tuple(slice(max(int(lo) - e, 0), min(int(hi) + e + 1, n))
                     for lo, hi, e, n in zip(kji.min(0), kji.max(0), g, v.shape))
        assert bbox_slices(v, margin, sp) == want


def test_components_of_a_mask_whose_box_is_one_voxel_thin():
    """The chest CTA cut in front of the spine (test_spine_ap_crops) left two bone voxels on one
    row; cc3d 4.1.1 with 26-connectivity raised "maximum length exception" on their (1, 1, 3)
    box. `components` gives such a box one more plane of zeros: two components, as scipy finds."""
    from scipy import ndimage

    from imagio.segmentation.common import CROP_MIN_VOXELS

    shape = (130, 130, 130)
    assert np.prod(shape) >= CROP_MIN_VOXELS
    for pts in ([(5, 7, 10), (5, 7, 12)], [(0, 0, 0), (0, 2, 0)], [(129, 129, 127), (129, 129, 129)],
                [(40, 60, 60), (42, 60, 60), (40, 60, 62)], [(3, 3, 3), (3, 5, 5)]):
        m = np.zeros(shape, bool)
        m[tuple(np.array(pts).T)] = True
        for conn in (6, 18, 26):
            lab, n, cnt = components(m, connectivity=conn)
            st = ndimage.generate_binary_structure(3, {6: 1, 18: 2, 26: 3}[conn])
            want, wn = ndimage.label(m, st)
            assert n == wn and cnt[1:].tolist() == [1] * n, (pts, conn, n)
            np.testing.assert_array_equal(lab, want)
