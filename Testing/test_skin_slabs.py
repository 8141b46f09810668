"""The skin model's components slab by slab (`skin._slab_components`) against one cc3d
labelling of the whole volume, and the whole skin model built with small slabs against its
definition computed with scipy on an oblique, flipped, anisotropic grid."""

from __future__ import annotations

import tracemalloc

import cc3d
import numpy as np
import pytest

from imagio.planning import skin as sk


def _masks():
    rng = np.random.default_rng(3)
    out = [rng.random((23, 17, 19)) < p for p in (0.2, 0.35, 0.5, 0.7)]
    iso = np.zeros((11, 12, 13), bool)
    iso[::2, ::2, ::2] = True                   # isolated voxels: every component ties (size 1)
    pair = np.zeros((12, 9, 9), bool)
    pair[1:3, 2, 2] = True                      # two components of 2 voxels, the later one across a
    pair[4, 5, 5] = pair[5, 5, 5] = True        # slab face with slab = 5: ties broken by cc3d's order
    u = np.zeros((20, 8, 8), bool)              # a U: two columns joined only in the last slices
    u[:, 1, 1] = u[:, 1, 6] = True
    u[17:, 1, 1:7] = True
    u[0:5, 5, 5] = True                         # a shorter piece of 5 voxels
    return out + [iso, pair, u, np.zeros((5, 6, 7), bool)]


@pytest.mark.parametrize("slab", [1, 2, 3, 5, 32])
def test_slab_components_equal_one_whole_volume_labelling(slab):
    """The component at a voxel and the first voxel of the largest component (cc3d's tie
    rule: the component it numbers first) are those of one cc3d pass over the whole volume."""
    rng = np.random.default_rng(slab)
    for m in _masks():
        get = lambda a, b, m=m: m[a:b]   # noqa: E731
        assert sk._largest_voxel_by_slab(get, m.shape[0], slab=slab) == sk._largest_component_voxel(m)
        cc = cc3d.connected_components(m, connectivity=6)
        fg = np.argwhere(m)
        for seed in fg[rng.choice(len(fg), min(len(fg), 12), replace=False)] if len(fg) else []:
            got = sk._component_at_by_slab(get, m.shape[0], tuple(seed), slab=slab)
            assert got.dtype == bool and (got == (cc == cc[tuple(seed)])).all()


@pytest.mark.parametrize("slab", [1, 2, 3, 5, 32])
def test_largest_component_in_one_slab_pass_is_the_two_pass_one(slab):
    """`skin._largest_by_slab` (issue 20: one labelling pass) is the component of the first voxel
    of the largest component (`_largest_voxel_by_slab` then `_component_at_by_slab`, two passes)
    and cc3d's largest component of the whole volume with its tie rule (the component it numbers
    first: isolated voxels, two pairs across a slab face), written into a new mask or the volume
    itself; all False for an empty volume."""
    for m in _masks():
        get = lambda a, b, m=m: m[a:b]   # noqa: E731
        got = sk._largest_by_slab(get, m.shape[0], slab=slab)
        if not m.any():
            assert got.dtype == bool and got.shape == m.shape and not got.any()
            continue
        cc = cc3d.connected_components(m, connectivity=6)
        ref = cc == 1 + int(np.argmax(np.bincount(cc.ravel())[1:]))   # argmax: the first of equal sizes
        seed = sk._largest_voxel_by_slab(get, m.shape[0], slab=slab)
        assert (got == ref).all() and (got == sk._component_at_by_slab(get, m.shape[0], seed, slab=slab)).all()
        v = m.copy()
        assert sk._largest_by_slab(lambda a, b, v=v: v[a:b], v.shape[0], slab=slab, out=v) is v and (v == ref).all()


@pytest.mark.parametrize("slab", [1, 3, 32])
def test_component_written_into_the_volume_itself_is_the_same(slab, monkeypatch):
    """``out=`` the volume itself (the couch search's patient opening, no second mask): every
    voxel is rewritten (slabs without the component cleared) with the same component; and
    `table._largest_in_box` in place equals its copy and one cc3d pass."""
    from imagio.planning import table

    monkeypatch.setattr(sk, "SLAB", 50 * slab)   # `_largest_in_box` through its slab path
    rng = np.random.default_rng(slab)
    for m in _masks():
        fg = np.argwhere(m)
        if not len(fg):
            continue
        cc = cc3d.connected_components(m, connectivity=6)
        for seed in fg[rng.choice(len(fg), min(len(fg), 4), replace=False)]:
            v = m.copy()
            got = sk._component_at_by_slab(lambda a, b, v=v: v[a:b], v.shape[0], tuple(seed), slab=slab, out=v)
            assert got is v and (v == (cc == cc[tuple(seed)])).all()
        sizes = np.bincount(cc.ravel())[1:]
        ref = cc == 1 + int(np.argmax(sizes))
        v = m.copy()
        assert table._largest_in_box(v, in_place=True) is v
        assert (v == ref).all() and (table._largest_in_box(m) == ref).all()


def test_slab_u_shape_is_one_component():
    """The U's two columns meet only in its last slices: one component, found from a seed in
    the first slab (a merge that did not propagate through later slabs would cut it)."""
    m = _masks()[-2]
    got = sk._component_at_by_slab(lambda a, b: m[a:b], m.shape[0], (0, 1, 1), slab=3)
    assert got[:, 1, 6].all() and got.sum() == 20 + 20 + 3 * 4 and not got[0:5, 5, 5].any()
    assert sk._largest_voxel_by_slab(lambda a, b: m[a:b], m.shape[0], slab=3) == (0, 1, 1)


def _oblique_torso():
    from test_planning_skin import oblique_torso_with_table

    return oblique_torso_with_table()[:2]


@pytest.mark.parametrize("slab", [1, 3, 7])
def test_skin_model_by_slabs_equals_the_whole_volume_model(slab, monkeypatch):
    """The whole skin model built with slabs of ``slab`` slices equals the model of one
    whole-volume pass (the same CT in Fortran order, which takes that pass), mask by mask and
    truncation by truncation, on an oblique, flipped, 2 x 2.5 x 3.5 mm grid with a loose table
    and a closed cavity."""
    ct, lab = _oblique_torso()
    ref = sk._outer_skin(ct.with_array(np.asfortranarray(ct.array)), lab.with_array(np.asfortranarray(lab.array)),
                         sk.AIR_HU)
    monkeypatch.setattr(sk, "SLAB", slab * ct.shape[1] * ct.shape[2])   # voxels: ``slab`` slices
    got = sk._outer_skin(ct, lab, sk.AIR_HU)
    for f in ("data", "body", "exterior", "skin", "cut"):
        assert (np.asarray(getattr(got, f)) == np.asarray(getattr(ref, f))).all(), f
    assert got.body.flags.c_contiguous and got.body.any() and [t.to_dict() for t in got.truncations] == \
        [t.to_dict() for t in ref.truncations]


def test_skin_model_traced_memory_is_under_seven_bytes_per_voxel():
    """No whole-volume label array: the traced peak of the skin model (masks of one byte per
    voxel, slab labels of one byte per voxel while fewer than 256 per slab) stays under 7 bytes
    per voxel on this 232 x 184 x 320 grid (main, one whole-volume labelling each for the tissue
    and the body: 8.7; here 6.4, the five masks of the model and the points of its faces)."""
    ct, lab = _oblique_torso()
    rep = (4, 2, 2)
    from imagio.volume import Volume

    ct = Volume(np.ascontiguousarray(np.tile(ct.array, rep)), ct.ijk_to_ras, "CT")
    lab = Volume(np.ascontiguousarray(np.tile(lab.array, rep)), lab.ijk_to_ras, "labels", labels=lab.labels)
    tracemalloc.start()
    sk._outer_skin(ct, lab, sk.AIR_HU)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak / ct.array.size < 7.0, peak / ct.array.size


@pytest.mark.parametrize("box_shortcut", [True, False])
def test_packed_model_has_the_same_masks(box_shortcut):
    """``pack`` (speed18: each mask packed as soon as it is final) gives the same masks and
    truncations as the unpacked model, with and without the box shortcut, on the oblique,
    flipped, anisotropic grid with a loose table."""
    ct, lab = _oblique_torso()
    ref = sk._outer_skin(ct, lab, sk.AIR_HU, box_shortcut=box_shortcut)
    got = sk._outer_skin(ct, lab, sk.AIR_HU, box_shortcut=box_shortcut, pack=True)
    for f in ("data", "body", "exterior", "skin", "cut"):
        assert isinstance(getattr(got, f), sk.PackedMask), f
        assert (np.asarray(getattr(got, f)) == getattr(ref, f)).all(), f
    assert np.asarray(ref.skin).any() and [t.to_dict() for t in got.truncations] == \
        [t.to_dict() for t in ref.truncations]


def test_cached_model_holds_packed_masks_before_its_truncations(monkeypatch):
    """`outer_skin` packs the body, skin and exterior before the truncations are measured: the
    traced memory held when `_cut_samples` starts is under 5 bytes per voxel (here 4.4: the data
    and cut masks, one byte each, three one-bit masks and about 2 bytes per voxel of other
    arrays); before speed18 the five masks were bool until the end (7.0 here; the skin model's
    peak on the 1 mm phantom 407 MiB, now 340)."""
    ct, lab = _oblique_torso()
    from imagio.volume import Volume

    rep = (2, 2, 2)
    ct = Volume(np.ascontiguousarray(np.tile(ct.array, rep)), ct.ijk_to_ras, "CT")
    lab = Volume(np.ascontiguousarray(np.tile(lab.array, rep)), lab.ijk_to_ras, "labels", labels=lab.labels)
    held = []
    real = sk._cut_samples

    def watched(*a, **k):
        held.append(tracemalloc.get_traced_memory()[0])
        return real(*a, **k)

    monkeypatch.setattr(sk, "_cut_samples", watched)
    sk.forget_cached_skin()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        model = sk.outer_skin(ct, lab)
    finally:
        tracemalloc.stop()
        sk.forget_cached_skin()
    assert len(held) == 1 and np.asarray(model.skin).any()
    assert (held[0] - base) / ct.array.size < 5.0, (held[0] - base) / ct.array.size


def _in_patient_reference(ct, body, tissue):
    """`skin._in_patient` from its definition on the whole volume: ``edt`` thresholds for the
    erosion and the growth, scipy's 6-connected labelling, each piece's A extent from all its
    voxels' RAS, the kept pieces grown over the whole volume, holes filled per slice. Returns
    the function of the samples ``kji`` (n, 3) -> bool (n,)."""
    import edt
    from scipy import ndimage

    from imagio.planning.table import OPEN_MM

    an = tuple(float(s) for s in ct.spacing_kji)
    t = np.asarray(tissue, bool) & np.asarray(body, bool)
    core = edt.edt(t, anisotropy=an, black_border=False) > OPEN_MM
    cc, n = ndimage.label(core)
    keep = t
    if n:
        a = ct.kji_to_world(np.argwhere(core).astype(float))[:, 1]
        lab = cc[core]
        lo, hi = ndimage.minimum(a, lab, np.arange(1, n + 1)), ndimage.maximum(a, lab, np.arange(1, n + 1))
        big = int(np.argmax(np.bincount(lab)[1:]))
        ok = np.r_[False, ~((hi < lo[big]) | (lo > hi[big]))]
        keep = (edt.edt(~ok[cc], anisotropy=an, black_border=False) <= OPEN_MM * 1.05) & t
    ax = int(np.argmax(np.abs(ct.direction[2, ::-1])))
    u, v = (a for a in range(3) if a != ax)

    def at(kji):
        out = np.zeros(len(kji), bool)
        for z in np.unique(kji[:, ax]):
            filled = ndimage.binary_fill_holes(np.take(keep, int(z), axis=ax))
            hit = kji[:, ax] == z
            out[hit] = filled[kji[hit, u], kji[hit, v]]
        return out
    return at


def test_in_patient_grown_on_the_sample_slices_equals_the_whole_volume_definition():
    """`skin._in_patient` (issue 20: the kept pieces grown only on the slices holding a sample,
    +- the ball's reach; no statistics for a single piece) equals its definition on the whole
    volume (`_in_patient_reference`), for samples on runs of neighbouring slices, lone slices
    and every slice, the body's end slices among them (grown there only from the slices
    beside them), on the oblique, flipped, anisotropic torso (3 x 3 x 1.5 mm: the ball
    reaches two slices along S): with its body (one piece) and with the loose table added to
    the body (a second piece, wholly posterior: not the patient); the pieces labelled in one
    slab and 2 slices at a time (`_slab_components`: a piece's A extent and its kept voxels
    gathered from several slabs)."""
    from imagio.planning import skin as sk
    from test_planning_skin import oblique_torso_with_table

    ct, lab, table, _ = oblique_torso_with_table(spacing=(3.0, 3.0, 1.5))
    body0 = np.asarray(sk._outer_skin(ct, lab, sk.AIR_HU).body, bool)
    tissue = (ct.array > sk.AIR_HU) | (lab.array > 0)
    ax = int(np.argmax(np.abs(ct.direction[2, ::-1])))
    n = ct.shape[ax]
    z0, z1 = (int(f(np.flatnonzero(np.any(body0, axis=tuple(a for a in range(3) if a != ax))))) for f in (np.min, np.max))
    rng = np.random.default_rng(3)
    for body in (body0, body0 | table):
        pts = np.argwhere(body)
        ref = _in_patient_reference(ct, body, tissue)
        for slices in ([z0, z0 + 1, z0 + 2, n // 2, n // 2 + 1, z1], [z0 + 7, z1 - 1], list(range(n))):
            sel = pts[np.isin(pts[:, ax], slices)]
            sel = sel[rng.choice(len(sel), min(len(sel), 4000), replace=False)]
            for slab in (None, 2):   # one slab, and pieces labelled 2 slices at a time (joined across slabs)
                got = sk._in_patient(ct, body, tissue, sel, slab=slab)
                assert np.array_equal(got, ref(sel))
                assert got.any() and not got[table[tuple(sel.T)]].any()
