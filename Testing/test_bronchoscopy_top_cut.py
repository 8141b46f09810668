"""A scan that starts a few mm above the carina: no part of the connected airway is left out of
the tree without a word (new-user trial 99 F0, HIGH: the chest CTA and its airway mask cut 7-9 mm
above the carina gave a tree of half the branches, the left lung's airways dropped silently,
though the cut mask is one 26-connected piece; the route then went into the right lung). The
skeleton is traced on the mask continued upwards (`tree._extend_top`); its paths to the two lungs
can meet only above the image, and the part joined there is not in the tree: it is said, with its
mL and side (`tree._unjoined_warning`).

Checked independently of the tree's internals: the voxels of the cut mask's 26-connected piece
farther from every centreline point than the widest lumen's diameter (twice the mask's largest wall
distance, its own EDT) are either none, or said: a warning of at least their volume, on their side
(their mean R against the top slice's lumen centre). Cuts at 3-9 mm above the carina (the carina's
height: the phantom's own trachea label; for the ATM mask, the highest section below which
the lumen is divided, `_lumen_split_s`), in the storage as given and permuted and flipped."""

from __future__ import annotations

from pathlib import Path

import cc3d
import edt
import numpy as np
import pytest
from scipy.spatial import cKDTree
from test_bronchoscopy_storage import _stored

from imagio import io, phantom
from imagio.planning import bronchoscopy as B
from imagio.volume import as_ras_canonical

ATM = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "atm22-airways"


def _cut(vol, mask, s_max):
    """``mask`` with every voxel above world S ``s_max`` (mm) removed (the image's top cut there)."""
    k, j, i = np.indices(mask.shape)
    A = np.asarray(vol.ijk_to_ras, float)
    S = A[2, 0] * i + A[2, 1] * j + A[2, 2] * k + A[2, 3]
    return mask & (S <= s_max)


def _lumen_split_s(vol, mask):
    """World S (mm) of the highest axial section where the trachea's lumen is divided: the first
    section from the top whose two largest 8-connected pieces each hold at least a quarter of the
    trachea's area (the median largest piece over the top 30 mm): the two main bronchi, each of
    about half the trachea's section. ``vol`` RAS-canonical (array axis 0 is S, increasing)."""
    def two_largest(sl):
        c = np.sort(np.bincount(cc3d.connected_components(sl, connectivity=8).ravel())[1:])[::-1]
        return np.r_[c, 0, 0][:2]

    area = np.array([two_largest(sl) for sl in mask])
    ks = np.flatnonzero(area[:, 0])[::-1]                      # from the top down
    n_top = int(round(30.0 / float(vol.spacing_kji[0])))
    trachea = float(np.median(area[ks[:n_top], 0]))
    k = ks[np.argmax(area[ks, 1] >= 0.25 * trachea)]
    return float(vol.kji_to_world(np.array([[k, 0, 0]], float))[0, 2])


def _check_whole(vol, mask):
    tree = B.extract_tree(vol, mask, root_check=False)
    cc = cc3d.connected_components(mask, connectivity=26)
    piece = cc == int(np.argmax(np.bincount(cc.ravel())[1:])) + 1
    widest = 2.0 * float(edt.edt(piece, anisotropy=tuple(float(s) for s in vol.spacing_kji), black_border=False).max())
    w = vol.kji_to_world(np.argwhere(piece).astype(float))
    far = cKDTree(tree.points).query(w)[0] > widest
    said = [x for x in tree.warnings if "is left out of the airway tree" in x]
    if not far.any():
        return tree, said
    top = w[w[:, 2] >= w[:, 2].max() - max(vol.spacing_kji)]   # the top slice's lumen
    side = "left" if w[far, 0].mean() < top[:, 0].mean() else "right"
    ml = np.count_nonzero(far) * float(np.prod(vol.spacing_kji)) / 1000.0
    assert len(said) == 1, (ml, side, tree.warnings)
    assert f"({side} of the trachea" in said[0], (side, said[0])
    assert float(said[0].split(" mL")[0]) >= ml - 0.005, (ml, said[0])
    return tree, said


@pytest.fixture(scope="module")
def ph():
    return phantom.generate(spacing=1.5, seed=0)


@pytest.mark.parametrize("above_mm", [3.0, 6.0, 9.0])
def test_phantom_cut_above_the_carina_keeps_both_lungs(ph, above_mm):
    L = ph.labels
    inv = {n: v for v, n in L.labels.items()}
    carina_s = float(L.kji_to_world(np.argwhere(L.array == inv["trachea"]).astype(float))[:, 2].min())
    mask = _cut(L, B.airway_mask(L), carina_s + above_mm)
    _check_whole(L.with_array(mask.astype(np.uint8)), mask)
    stored = _stored(L, mask, (2, 0, 1), (True, False, True))
    _check_whole(stored, stored.array > 0)


def _atm(name):
    """(RAS-canonical Volume, bool mask, its lumen split's S) of the ATM'22 mask ``name``; skips
    the test when the file is absent."""
    f = ATM / name
    if not f.exists():
        pytest.skip(f"{f} not available")
    vol = as_ras_canonical(io.read_labels(f))[0]
    mask = vol.array > 0
    return vol, mask, _lumen_split_s(vol, mask)


@pytest.mark.data
def test_atm_cut_above_the_carina_keeps_both_lungs():
    vol, mask, carina_s = _atm("ATM_307_0000_pred_YangLab.nii.gz")
    for above in (3.0, 7.0):
        cut = _cut(vol, mask, carina_s + above)
        _check_whole(vol.with_array(cut.astype(np.uint8)), cut)
    flipped = _stored(vol, cut, (0, 1, 2), (False, True, True))
    _check_whole(flipped, flipped.array > 0)
