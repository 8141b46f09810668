"""One-click lesion on real cases (issue 14): Dice per case, clicks, volume spread, time.

Cases (``../shared/data``): pyradiomics lung1 / lung2 (hand labels; the centroid and 10 random
clicks >= 5 mm inside, or 60 % of the deepest point for a lesion thinner than that, seeded RNG,
3 clicks on the shallowest such layer, and lung2's detector click of trial 3; one row per click),
the five STS sarcomas (the deepest point of the mask, the "centre" a user would click, and
``N_STS_CLICKS`` seeded random clicks >= 5 mm inside), Lung-PET-CT-Dx A0001 (click at the centre of the middle box; share of the result inside
the per-slice boxes, share of the boxes' slices reached); and phantom lesions of every kind
(``run_phantom``). ``python -m benchmarks lesion``.
``python -m benchmarks.bench_lesion`` prints one line per case as it goes.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
N_CLICKS = 10
N_STS_CLICKS = 4
N_SHALLOW = 3
# the detector's candidate centre for lung2's mass in new-user trial 3 (defect D3: 0.5 mL, Dice 0.02)
DETECTOR_CLICKS = {"lung2": (-76.4, 91.2, -240.0)}


def dice(a, b) -> float:
    s = int(a.sum()) + int(b.sum())
    return 2.0 * int((a & b).sum()) / s if s else 1.0


def interior_clicks(ref, ct, n, rng, depth_mm=5.0, shallow=False):
    """``n`` RAS points drawn uniformly (seeded ``rng``) from the voxels at least ``depth_mm``
    inside ``ref`` (or 60 % of its deepest point when it is thinner): a real sample.
    ``shallow``: only from the shallowest such layer (depth within one slice spacing of the
    bound: a thick-slice lesion's end slices, where the detector seeded lung2 in trial 3)."""
    import edt

    depth = edt.edt(np.ascontiguousarray(ref), anisotropy=tuple(ct.spacing_kji), black_border=True)
    lo = min(depth_mm, 0.6 * float(depth.max()))
    inside = np.argwhere((depth >= lo) & (depth < (lo + float(max(ct.spacing_kji)) if shallow else np.inf)))
    pick = rng.choice(len(inside), min(n, len(inside)), replace=False)
    return ct.kji_to_world(inside[pick].astype(float))


def deepest_point(ref, ct):
    import edt

    depth = edt.edt(np.ascontiguousarray(ref), anisotropy=tuple(ct.spacing_kji), black_border=True)
    return ct.kji_to_world(np.argwhere(depth == depth.max())[:1].astype(float))[0]


def load_case(case):
    """(ct Volume, reference mask) for lung1/lung2/STS_xxx."""
    from imagio import io

    if case.startswith("lung"):
        d = DATA / "pyradiomics-lung"
        ct = io.read_image(d / f"{case}_image.nrrd")
        ref = io.read_image(d / f"{case}_label.nrrd").resample_like(ct, order=0).array > 0
    else:
        d = DATA / "sts-sarcoma" / case
        ct = io.read_image(d / "CT_image.nii.gz")
        ref = io.read_image(d / "CT_mask.nii.gz").resample_like(ct, order=0).array > 0
    return ct, ref


def lung_dx_case():
    """(ct, boxes mask [k, j, i], click RAS) of Lung-PET-CT-Dx A0001 (boxes in each listed slice)."""
    from imagio import io

    d = DATA / "lung-pet-ct-dx"
    ct = io.read_image(d / "Lung_Dx-A0001_ct.nii.gz")
    rows = list(csv.DictReader(open(d / "Lung_Dx-A0001_boxes.csv", encoding="utf-8")))
    boxes = np.zeros(ct.shape, bool)
    centres = np.array([[-float(r["centre_lps_x"]), -float(r["centre_lps_y"]), float(r["centre_lps_z"])]
                        for r in rows])  # LPS -> RAS
    for r, c in zip(rows, centres):
        k = int(np.rint(ct.world_to_kji(c[None])[0][0]))
        x0, y0, x1, y1 = (int(r[n]) for n in ("xmin", "ymin", "xmax", "ymax"))
        # the box's pixel columns/rows are the image's i/j in the DICOM frame; map the box's
        # corners through the world to be independent of the NIfTI's axis flips
        corners = []
        for x, y in ((x0, y0), (x1, y1)):
            corners.append(_dicom_pixel_to_kji(ct, c, x, y, int(r["xmin"]), int(r["ymin"]),
                                               int(r["xmax"]), int(r["ymax"])))
        jj = sorted(int(v[1]) for v in corners)
        ii = sorted(int(v[2]) for v in corners)
        boxes[k, jj[0]:jj[1] + 1, ii[0]:ii[1] + 1] = True
    return ct, boxes, centres[len(centres) // 2]


def _dicom_pixel_to_kji(ct, centre_ras, x, y, xmin, ymin, xmax, ymax):
    """Array index of DICOM pixel (column x, row y) of the slice whose box centre is
    ``centre_ras``: rows run anterior->posterior (+y LPS), columns right->left (+x LPS) on an
    axial series, spacing that of the CT."""
    sx, sy = ct.spacing[0], ct.spacing[1]
    cx, cy = 0.5 * (xmin + xmax), 0.5 * (ymin + ymax)
    lps = np.array([-centre_ras[0], -centre_ras[1]]) + np.array([(x - cx) * sx, (y - cy) * sy])
    ras = np.array([-lps[0], -lps[1], centre_ras[2]])
    return np.rint(ct.world_to_kji(ras[None])[0]).astype(int)


def contrast_rows(case, ct, ref) -> list:
    """Why a one-click outline can or cannot hold on ``case`` (issue 14, STS cases): how well the
    tumour's voxels are told from the soft tissue around it (-50..200 HU, 3-15 mm outside the
    reference mask) by (a) HU smoothed at 2 mm and (b) the local edge energy (2 mm gradient
    magnitude averaged over 9 x 9 in-plane voxels: muscle's fascicles and fat septa against a mass's
    homogeneous interior), each as the Mann-Whitney AUC folded to >= 0.5 (0.5: indistinguishable,
    1.0: fully separated), with the two medians. Measured, not a threshold: no rule depends on it."""
    import edt
    from scipy import ndimage as ndi
    from scipy.stats import mannwhitneyu

    a = ct.array.astype(np.float32)
    sk = np.asarray(ct.spacing_kji, float)
    outside = edt.edt(np.ascontiguousarray(~ref), anisotropy=tuple(sk))
    ring = (outside > 3) & (outside <= 15) & (a > -50) & (a < 200)
    core = edt.edt(np.ascontiguousarray(ref), anisotropy=tuple(sk)) > 3
    sm = ndi.gaussian_filter(a, 2.0 / sk)
    energy = ndi.uniform_filter(ndi.gaussian_gradient_magnitude(a, 2.0 / sk), (1, 9, 9))
    rows = []
    for what, f in (("HU (2 mm smoothed)", sm), ("local edge energy", energy)):
        u = mannwhitneyu(f[core], f[ring]).statistic / (core.sum() * ring.sum())
        rows.append(dict(name=f"lesion {case}: tumour vs surrounding soft tissue, {what}: AUC "
                              f"(medians {np.median(f[core]):.0f} / {np.median(f[ring]):.0f})",
                         value=round(float(max(u, 1 - u)), 2), unit=""))
    return rows


def intensity_bound_rows(case, ct, ref, sigma_mm=2.0, step_hu=3.0, reach_hu=30.0) -> list:
    """What any HU window can give on ``case`` from its reference mask's centroid (issue 14, STS
    cases): the best Dice over every window [c + lo, c + hi] (``lo`` in -``reach_hu``..0,
    ``hi`` in 0..``reach_hu``, steps of ``step_hu``; ``c`` the centroid's value) of the CT
    smoothed at ``sigma_mm`` (the statistical model's denoising), above the fat bound
    (lesion.json fat_max_hu) and below bone, connected to the centroid: an oracle (the window
    is chosen with the answer), so an upper bound for a one-click outline that rests on HU
    alone (no shape or texture). Measured, not a threshold: no rule depends on it."""
    from scipy import ndimage as ndi

    from imagio.segmentation.lesion import BONE_CLICK_HU, FAT_MAX_HU

    a = ct.array.astype(np.float32)
    sm = ndi.gaussian_filter(a, sigma_mm / np.asarray(ct.spacing_kji, float))
    allowed = (a > FAT_MAX_HU) & (a < BONE_CLICK_HU)
    cen = tuple(np.rint(np.argwhere(ref).mean(0)).astype(int))
    c, best = float(sm[cen]), 0.0
    steps = np.arange(0.0, reach_hu + 1e-6, step_hu)
    for lo in steps:
        for hi in steps:
            lab, _ = ndi.label((sm >= c - lo) & (sm <= c + hi) & allowed)
            if lab[cen]:
                best = max(best, dice(lab == lab[cen], ref))
    return [dict(name=f"lesion {case}: best Dice of any HU window connected to the centroid "
                      f"({sigma_mm:g} mm smoothed; an HU-only upper bound)", value=round(best, 3), unit="")]


def _short(warnings) -> list:
    """The warnings' first words, without the slice-thickness one every thick-slice case has."""
    return [w[:40] for w in warnings if not w.startswith("measured on")]


def run_case(case, seed=0, log=None):
    from imagio.errors import ImagioError
    from imagio.segmentation.lesion import segment_lesion

    ct, ref = load_case(case)
    rows = []
    rng = np.random.default_rng(seed)
    if case.startswith("lung"):
        clicks = np.vstack([ct.kji_to_world(np.argwhere(ref).mean(0)[None])[0][None],
                            interior_clicks(ref, ct, N_CLICKS, rng),
                            interior_clicks(ref, ct, N_SHALLOW, np.random.default_rng(seed + 1), shallow=True)]
                           + ([np.array(DETECTOR_CLICKS[case])[None]] if case in DETECTOR_CLICKS else []))
    else:
        clicks = np.vstack([deepest_point(ref, ct)[None], interior_clicks(ref, ct, N_STS_CLICKS, rng)])
    ds, vols, times, kinds = [], [], [], []
    for c in clicks:
        t0 = time.perf_counter()
        try:
            m, meas = segment_lesion(ct, c)
        except ImagioError as e:  # refused (no outline, no volume handed out): counted apart
            times.append(time.perf_counter() - t0)
            ds.append(float("nan"))
            vols.append(float("nan"))
            kinds.append("refused")
            rows.append(dict(name=f"lesion {case}: click {len(ds) - 1} refused", value=None, unit=""))
            if log:
                log(f"{case} click {np.round(c, 1).tolist()}: refused ({str(e)[:90]}...) {times[-1]:.1f} s")
            continue
        times.append(time.perf_counter() - t0)
        ds.append(dice(m, ref))
        vols.append(meas.volume_ml)
        kinds.append(f"{meas.kind}/{meas.subtype}")
        rows.append(dict(name=f"lesion {case}: click {len(ds) - 1} Dice ({vols[-1]:.1f} mL, {kinds[-1][:4]})",
                         value=round(ds[-1], 3), unit=""))
        if log:
            log(f"{case} click {np.round(c, 1).tolist()}: Dice {ds[-1]:.3f} vol {vols[-1]:.1f} mL "
                f"(ref {ref.sum() * ct.voxel_volume_ml:.1f}) {kinds[-1]}"
                f"{'' if meas.host_hu is None else f' (host {meas.host_hu:.0f} HU)'} {times[-1]:.1f} s "
                f"warnings {_short(meas.warnings)}")
    ref_ml = float(ref.sum() * ct.voxel_volume_ml)
    rows.append(dict(name=f"lesion {case}: Dice from the {'centroid' if case.startswith('lung') else 'deepest point'}",
                     value=round(ds[0], 3), unit=""))
    if len(ds) > 1:
        given = [d for d in ds[1:] if d == d]
        rows.append(dict(name=f"lesion {case}: clicks (of {len(ds) - 1}) with Dice >= 0.80",
                         value=sum(d >= 0.8 for d in given), unit=""))
        rows.append(dict(name=f"lesion {case}: clicks refused (of {len(ds)})", value=sum(d != d for d in ds), unit=""))
        rows.append(dict(name=f"lesion {case}: min Dice over the clicks given",
                         value=round(min(given), 3) if given else None, unit=""))
        rows.append(dict(name=f"lesion {case}: max Dice over the clicks given",
                         value=round(max(given), 3) if given else None, unit=""))
        rows.append(dict(name=f"lesion {case}: volume spread max/min (all clicks given)",
                         value=round(float(np.nanmax(vols) / np.nanmin(vols)), 3) if given else None, unit=""))
        want = "lung_nodule" if case.startswith("lung") else "soft_tissue"
        rows.append(dict(name=f"lesion {case}: clicks typed {want} (of {len(ds)})",
                         value=sum(k.startswith(want) for k in kinds), unit=""))
    rows.append(dict(name=f"lesion {case}: volume / reference ({ref_ml:.1f} mL)",
                     value=round(vols[0] / ref_ml, 3), unit=""))
    if not case.startswith("lung"):
        rows += contrast_rows(case, ct, ref)
        rows += intensity_bound_rows(case, ct, ref)
    rows.append(dict(name=f"lesion {case}: time per click (median)", value=round(float(np.median(times)), 2), unit="s"))
    return rows


def run_lung_dx(log=None):
    from imagio.segmentation.lesion import segment_lesion

    ct, boxes, click = lung_dx_case()
    t0 = time.perf_counter()
    m, meas = segment_lesion(ct, click)
    dt = time.perf_counter() - t0
    box_slices = np.flatnonzero(boxes.any((1, 2)))
    in_box = float((m & boxes).sum() / max(m.sum(), 1))
    on_box_slices = float(m[box_slices].sum() / max(m.sum(), 1))
    reached = float(np.mean([m[k].any() for k in box_slices]))
    if log:
        log(f"lung-pet-ct-dx: {meas.volume_ml:.1f} mL in boxes {in_box:.2f}, on box slices "
            f"{on_box_slices:.2f}, box slices reached {reached:.2f}, {meas.kind}/{meas.subtype}, {dt:.1f} s,"
            f" warnings {meas.warnings}")
    return [dict(name="lesion Lung-PET-CT-Dx A0001: share of the mask inside the boxes", value=round(in_box, 3), unit=""),
            dict(name="lesion Lung-PET-CT-Dx A0001: box slices reached", value=round(reached, 3), unit=""),
            dict(name="lesion Lung-PET-CT-Dx A0001: volume", value=round(meas.volume_ml, 1), unit="mL"),
            dict(name="lesion Lung-PET-CT-Dx A0001: time", value=round(dt, 2), unit="s")]


CASES = ("lung1", "lung2", "STS_002", "STS_008", "STS_010", "STS_014", "STS_022")
PHANTOM_CASES = [  # kind, diameter mm, necrotic fraction, against the chest wall
    ("solid", 8.0, 0.0, False), ("part_solid", 20.0, 0.0, False), ("ground_glass", 15.0, 0.0, False),
    ("perifissural", 10.0, 0.0, False), ("calcified", 10.0, 0.0, False), ("mass", 50.0, 0.3, False),
    ("mass", 40.0, 0.3, True), ("mass", 60.0, 0.3, True), ("mass", 100.0, 0.5, True),
    ("liver_hypodense", 30.0, 0.0, False), ("liver_hyperdense", 25.0, 0.0, False)]
LUNG_LOBES = ["lung_upper_lobe_left", "lung_lower_lobe_left", "lung_upper_lobe_right",
              "lung_middle_lobe_right", "lung_lower_lobe_right"]


def run_phantom(spacing=2.0, n_clicks=3, log=None):
    """Phantom lesions (imagio.phantom.lesions) of every kind and size: min Dice over the centre
    and ``n_clicks`` seeded random interior clicks, volume spread. Same placement as
    Testing/test_lesion.py (deepest point, or against the lateral chest wall)."""
    import copy

    import edt

    from imagio import phantom
    from imagio.phantom.lesions import insert_lesion
    from imagio.segmentation.lesion import segment_lesion

    ph0 = phantom.generate(spacing=spacing, seed=0)
    rows = []
    for kind, diam, nec, wall in PHANTOM_CASES:
        ph = copy.deepcopy(ph0)
        host = ["liver"] if kind.startswith("liver") else LUNG_LOBES + ["lung_vessels"]
        d = edt.edt(ph.labels.mask(*host), anisotropy=tuple(ph.labels.spacing_kji))
        if wall:
            ras = ph.labels.kji_to_world(np.argwhere((d > 0.275 * diam) & (d < 0.325 * diam)).astype(float))
            c = ras[np.argmax(np.abs(ras[:, 0]))]
        else:
            c = ph.labels.kji_to_world(np.argwhere(d == d.max())[:1].astype(float))[0]
        les = insert_lesion(ph, kind, c, diam, necrotic_fraction=nec, seed=1)
        truth = ph.labels.array == les.label_value
        ds, vols = [], []
        t0 = time.perf_counter()
        for q in [c] + list(interior_clicks(truth, ph.ct, n_clicks, np.random.default_rng(0))):
            m, meas = segment_lesion(ph.ct, q)
            ds.append(dice(m, truth))
            vols.append(meas.volume_ml)
            if log:
                log(f"  phantom {kind} {diam:g} click {np.round(q, 1).tolist()}: Dice {ds[-1]:.3f} "
                    f"vol {vols[-1]:.1f} mL warnings {_short(meas.warnings)}")
        dt = (time.perf_counter() - t0) / len(ds)
        label = f"lesion phantom {kind} {diam:g} mm{' necrotic' if nec else ''}{' at the wall' if wall else ''}"
        rows.append(dict(name=f"{label}: min Dice ({len(ds)} clicks)", value=round(min(ds), 3), unit=""))
        rows.append(dict(name=f"{label}: volume spread max/min", value=round(max(vols) / min(vols), 3), unit=""))
        if log:
            log(f"{label}: Dice {[round(x, 3) for x in ds]} volumes {[round(v, 1) for v in vols]} "
                f"(truth {truth.sum() * ph.ct.voxel_volume_ml:.1f} mL) {meas.kind}/{meas.subtype} {dt:.1f} s/click")
    return rows


def run(log=None) -> list[dict]:
    if not DATA.exists():
        return [dict(name="lesion: ../shared/data not present", value=None, unit="")]
    rows = []
    for case in CASES:
        rows += run_case(case, log=log)
    rows += run_lung_dx(log=log)
    rows += run_phantom(log=log)
    return rows


if __name__ == "__main__":
    import sys

    only = sys.argv[1:]
    if only:
        for case in only:
            if case == "dx":
                run_lung_dx(log=print)
            elif case == "phantom":
                run_phantom(log=print)
            else:
                for r in run_case(case, log=print):
                    print(r)
    else:
        for r in run(log=print):
            print(r)
