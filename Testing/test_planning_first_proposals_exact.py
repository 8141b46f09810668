"""Issue 20 (time to first proposals): the faster label-map check and planning masks give the
same proposals as the reference computation, on an oblique (20 degrees about S, 10 about R),
anisotropic (2 x 2.5 x 3 mm), flipped (-R) grid.

Reference, written here from the definitions and swapped in for the whole run: the
registration check's facing boundary (`label_registration._facing`) from the label smoothed
over the whole class box by scipy's ``gaussian_filter`` and its ``np.gradient`` (not slab by
slab, not line by line), and the planning masks' label values by ``np.isin`` (not the lookup
table of `volume.values_mask`)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import rotation
from imagio import label_registration as lr
from imagio.planning import PlanningProblem, plan
from imagio.planning import distance_maps as dm
from imagio.planning import planner, problem
from imagio.planning import skin as sk
from imagio.planning.synthetic import synthetic_torso


def _reference_facing(m, grid, mm, cos_min, slab=None):
    """`_facing` by its definition on the whole box (flat indices per RAS axis, ascending)."""
    from scipy import ndimage

    sm = ndimage.gaussian_filter(m.astype(np.float32), mm / np.abs(np.asarray(grid.spacing_kji, float)))
    g = np.stack(np.gradient(sm), axis=-1).reshape(-1, 3)
    inv = np.linalg.inv(grid.ijk_to_ras[:3, :3])
    n = g[:, 2:3] * inv[0] + g[:, 1:2] * inv[1] + g[:, 0:1] * inv[2]
    norm = np.linalg.norm(n, axis=1)
    out = []
    for a in range(3):
        ok = (np.abs(n[:, a]) >= cos_min * np.maximum(norm, 1e-12)) & (norm > 0)
        out.append(np.flatnonzero(lr._band(m, grid, a, mm).ravel() & ok))
    return out


def _isin(arr, values):
    return np.isin(arr, np.asarray(values).ravel())


def _fresh():
    lr._PREPARED.clear()
    lr.forget_cached_registration()
    dm._CACHE.clear()
    sk._CACHE.clear()
    problem.forget_cached_label_checks()


@pytest.fixture(scope="module")
def case():
    d = rotation((0, 0, 1), 20.0) @ rotation((1, 0, 0), 10.0) @ np.diag([-1.0, 1.0, 1.0])
    return synthetic_torso(spacing=(2.0, 2.5, 3.0), direction=d)


def _run(ct, lab):
    _fresh()
    p = plan(PlanningProblem.build(ct, lab, "liver_tumor"), k=5)
    moved = lab.with_array(np.roll(lab.array, 2, axis=2))   # two voxels off along i: a displaced map
    cl = lr.classes_from_labels(moved)
    sets = {c: lr._class_points(m, moved, lr.rule()) for c, m in cl.items()}
    disp = lr.displacement(ct, moved, cl)
    _fresh()
    return p, sets, disp


def test_first_proposals_equal_the_reference_computation_on_an_oblique_flipped_grid(case, monkeypatch):
    ct, lab = case
    assert np.linalg.det(ct.direction) < 0 and len(set(np.round(ct.spacing, 3))) == 3
    new, new_sets, new_disp = _run(ct, lab)
    monkeypatch.setattr(lr, "_facing", _reference_facing)
    for mod in (dm, planner, problem):   # the planning masks' label values by np.isin
        monkeypatch.setattr(mod, "values_mask", _isin)
    monkeypatch.setattr(planner, "FLAG_CHUNK", 1 << 40)   # every flag of a position's walk at once
    ref, ref_sets, ref_disp = _run(ct, lab)
    assert len(new.proposals) == 5
    assert [np.asarray(m.entry_ras).tolist() for m in new.proposals] == \
        [np.asarray(m.entry_ras).tolist() for m in ref.proposals]
    assert [float(m.score) for m in new.proposals] == [float(m.score) for m in ref.proposals]
    assert new.ranked == ref.ranked and np.array_equal(new.table.score, ref.table.score)
    assert np.array_equal(new.maps.code, ref.maps.code)          # the masks' flags, bit for bit
    for c in ref_sets:                                           # every point set of the check
        for (na, pa, va), (nb, pb, vb) in zip(new_sets[c], ref_sets[c]):
            assert na == nb and np.array_equal(pa, pb) and np.array_equal(va, vb), (c, na)
        assert sum(len(p) for n, p, _ in ref_sets[c] if n != "all") > 100, c
    assert new_disp == ref_disp
    as_list = lambda pos: {k: (v["feasible_candidates"], v["best"] and {a: np.asarray(b).tolist()   # noqa: E731
                                                                      for a, b in v["best"].items()})
                           for k, v in pos.items()}
    assert as_list(new.positions) == as_list(ref.positions) and list(new.checks) == list(ref.checks)
    assert len({v["feasible_candidates"] for v in new.positions.values()}) > 1   # the positions differ
    _anchored_findings_equal_the_whole_batch(new)
    _table_side_of_a_subset(new)


def _table_side_of_a_subset(p):
    """`scoring.against_table` of a subset of the rows (`position_alternatives`: the rows no
    other rule excludes) equals the whole table's on them, in every patient position."""
    from imagio.planning.problem import POSITIONS
    from imagio.planning.scoring import against_table

    t = p.table
    sub = np.flatnonzero(t.length_mm < np.median(t.length_mm))[::3]   # not the longest part outside
    for d in POSITIONS.values():
        args = (t.entry_ras, t.target_ras, t.normal_ras, t.length_mm)
        whole = against_table(p.problem, *args, d)
        assert 0 < whole.sum() < len(whole)
        assert np.array_equal(against_table(p.problem, *(a[sub] for a in args), d), whole[sub])


def _anchored_findings_equal_the_whole_batch(p):
    """`planner.anchored_rows`: a few rows judged by `findings.path_findings` with the two rows of
    their batch that set its sample counts get the values the whole batch at once gives them
    (without those two, most differ: the samples lie elsewhere)."""
    from imagio.planning import findings

    t = p.table
    batch = np.flatnonzero(~t.feasible & (t.length_mm < p.problem.needle.length_mm))[::20]   # spread over the skin
    sub = np.random.default_rng(0).choice(batch, 40, replace=False)
    whole = findings.path_findings(p.problem, t, batch, set(), False)
    fields = ("mediastinum_mm", "unimaged_mm", "outside_tissue_mm", "near_mm", "beyond_mm")
    for rows, same in ((planner.anchored_rows(t, sub, batch), True), (sub, False)):
        f = findings.path_findings(p.problem, t, rows, set(), False)
        diff = {k: sum(getattr(f, k)[int(r)] != getattr(whole, k)[int(r)] for r in sub) for k in fields}
        assert (not any(diff.values())) if same else diff["unimaged_mm"] > 10, diff
    assert sum(whole.unimaged_mm[int(r)] > 0 for r in sub) > 10 and sum(whole.mediastinum_mm[int(r)] > 0 for r in sub) > 2


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_smooth_lines_is_the_whole_arrays_filter_on_the_lines_it_keeps(axis):
    """`label_registration._smooth_lines` (issue 20: the Gaussian passes of `_facing` filter only
    the non-zero lines, and the last only the rows read): every line it computes, and every
    all-zero line, holds scipy's ``gaussian_filter1d`` of the whole array bit for bit; lines
    left out by ``lines`` are 0; ``keep`` slices the output along the axis."""
    from scipy.ndimage import gaussian_filter1d

    from imagio.label_registration import _smooth_lines

    rng = np.random.default_rng(7)
    m = np.zeros((23, 19, 29), bool)
    m[5:9, 3:7, 10:20] = True
    m |= rng.random(m.shape) > 0.997
    sig = (1.3, 2.0, 4.3)[axis]
    want = gaussian_filter1d(m.astype(np.float32), sig, axis=axis)
    got = _smooth_lines(m, sig, axis)
    assert got.dtype == np.float32 and np.array_equal(got, want)
    assert np.count_nonzero(~np.moveaxis(m, axis, -1).any(-1)) > 0      # there are empty lines
    assert np.array_equal(_smooth_lines(m.astype(np.float32), sig, axis), want)
    keep = slice(3, 17)
    sl = [slice(None)] * 3
    sl[axis] = keep
    assert np.array_equal(_smooth_lines(m, sig, axis, keep=keep), want[tuple(sl)])
    other = [s for d, s in enumerate(m.shape) if d != axis]
    lines = rng.random(other) > 0.5
    got = np.moveaxis(_smooth_lines(m, sig, axis, lines=lines), axis, -1)
    w = np.moveaxis(want, axis, -1)
    assert np.array_equal(got[lines], w[lines]) and not got[~lines].any()


def test_facing_normal_by_columns_is_the_row_form():
    """`label_registration._facing`'s normal, one RAS column at a time, and its length
    sqrt((n_R^2 + n_A^2) + n_S^2) hold the values of the row form (the broadcast products and
    ``np.linalg.norm(axis=1)``) bit for bit: 200,000 random float32 gradients, an oblique matrix."""
    rng = np.random.default_rng(3)
    g = (rng.normal(size=(200_000, 3)) * rng.choice([1e-3, 1.0, 30.0], size=(200_000, 1))).astype(np.float32)
    inv = np.linalg.inv(rotation((1, 2, 3), 37.0) @ np.diag([0.7, -1.3, 2.9]))
    row = g[:, 2:3] * inv[0] + g[:, 1:2] * inv[1] + g[:, 0:1] * inv[2]
    g64 = [g[:, d].astype(np.float64) for d in range(3)]
    col = [g64[2] * inv[0, c] + g64[1] * inv[1, c] + g64[0] * inv[2, c] for c in range(3)]
    assert all(np.array_equal(row[:, c], col[c]) for c in range(3))
    norm = np.sqrt(col[0] * col[0] + col[1] * col[1] + col[2] * col[2])
    assert np.array_equal(np.linalg.norm(row, axis=1), norm)
