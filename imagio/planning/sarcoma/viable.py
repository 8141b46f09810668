"""Viable (enhancing, solid) tumour from the CT and biopsy targets well inside it.

The map is read from the tumour's own intensities, in three steps (arrays [k, j, i], RAS mm, HU):

1. **Is there a fluid core?** The upper limit of fluid on CT is ``necrosis_max_hu`` (necrosis and
   cysts measure -9 to 20 HU: Bosniak v2019, Silverman et al., Radiology 2019). Core voxels are
   tumour voxels at least ``2 * smoothing_mm`` inside the tumour (clear of partial volume with
   the tissue around it) whose CT, Gaussian-smoothed over ``smoothing_mm``, is at most that
   limit; or, at half that smoothing (so that a core of about 1 cm is not blurred above the limit
   by the rim around it), connected parts of such voxels of at least a ball of radius
   ``2 * smoothing_mm`` (noise does not connect that far). A core of at least a ball of radius
   ``smoothing_mm`` (small on purpose: a missed core puts specimens in necrosis, a spurious one
   only moves the threshold up to half-way between the two levels found) is a non-enhancing
   (necrotic/cystic) component. None: viable = smoothed CT above the fluid limit (a homogeneous
   or solid tumour keeps its whole map).
2. **Where does it end?** The two components' levels are the medians of the raw CT over the core
   (necrosis) and over the deep tumour at least ``3 * smoothing_mm`` from it (or all of the deep non-core tumour when none is that far) (the enhancing solid
   part). A blurred step crosses the mean of its two plateaus at the true edge (the half-maximum
   edge, as in FWHM measurement), so the boundary is the half-way level, never below the fluid
   limit: ``threshold = max(necrosis_max_hu, (necrosis + solid) / 2)``.
3. **How much smoothing?** Only as much as the noise needs: after a Gaussian of sigma s (mm),
   each component's spread (robust SD, 1.4826 MAD, measured on the smoothed CT itself, so
   correlated noise and texture count) times ``z = 2.33`` (1 % of its voxels on the wrong side,
   one-sided normal) must fit between its level and the threshold; s is
   the smallest of 0, 0.5, ... ``smoothing_mm`` that does (more smoothing moves a curved edge and
   pulls the rim's values into the core, which is what made a 2 mm-smoothed "> 20 HU" map call
   half of a phantom's necrotic core viable).

4. **Specks are not necrosis.** A non-viable island (26-connected) smaller than
   ``min_island_ml`` goes back to viable, counted and reported (``islands_ignored``): it is below what
   the image resolves and what a core samples, the larger of
   - one resolution element (resel: the product of the FWHM per axis, sqrt((2.355 s)^2 + spacing^2)
     mm, of the CT as classified). Gaussian noise thresholded at the map's 1 % level (2.33 SD) makes
     islands of about 0.3 resel on average, and one reaches 1 resel with probability about 6 %
     (Friston et al. 1994, cluster extent P(S >= s) = exp(-beta s^(2/3)); Worsley et al. 1996, resels);
     on a real non-contrast CT the 1 % of a 600 mL solid part misclassified this way is thousands of
     voxels of scattered specks (STS_022: 167 islands, 114 under 0.05 mL), which would cap the depth
     in viable tumour and push the cores to its edge;
   - the core specimen, pi (needle diameter / 2)^2 x throw (0.035 mL for 14 G, 10 mm): a smaller
     island cannot fill a specimen.
   Larger islands stay necrosis, for depth and for the specimen rule.

Depth = exact Euclidean distance (mm, anisotropic) from a viable voxel to the nearest non-viable
one. `specimen_nonviable_fraction` measures how much of a core's specimen (the needle's throw) lies
outside the map.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ...volume import Volume, values_mask
from .rules import config

Z_ONE_PERCENT = 2.326   # one-sided normal quantile: 1 % of voxels on the wrong side of the threshold


@dataclass
class ViableMap:
    """``mask`` bool [k, j, i] on the CT grid (viable tumour), ``depth_mm`` float32 (0 outside),
    the threshold used, volumes (mL), how the map was made (``method``: "fluid limit", "two
    components" or "user threshold"; the component levels HU; ``noise_sd_hu``: the solid
    component's robust SD on the CT as classified; the smoothing mm used) and warnings."""

    mask: np.ndarray
    depth_mm: np.ndarray
    threshold_hu: float
    tumour_ml: float
    viable_ml: float
    warnings: list = field(default_factory=list)
    method: str = "fluid limit"
    levels_hu: dict = field(default_factory=dict)
    noise_sd_hu: float | None = None
    smoothing_mm: float = 0.0
    min_island_ml: float = 0.0
    islands_ignored: int = 0
    islands_ignored_ml: float = 0.0

    def to_dict(self) -> dict:
        return {"threshold_hu": round(self.threshold_hu, 1), "tumour_ml": round(self.tumour_ml, 2),
                "viable_ml": round(self.viable_ml, 2),
                "viable_pct": round(100.0 * self.viable_ml / max(self.tumour_ml, 1e-9), 1),
                "max_depth_mm": round(float(self.depth_mm.max()), 1), "method": self.method,
                "levels_hu": {k: round(v, 1) for k, v in self.levels_hu.items()},
                "noise_sd_hu": None if self.noise_sd_hu is None else round(self.noise_sd_hu, 1),
                "smoothing_mm": self.smoothing_mm,
                "islands_ignored": {"count": self.islands_ignored, "ml": round(self.islands_ignored_ml, 2),
                                    "below_ml": round(self.min_island_ml, 3)},
                "source": config()["viable"]["source"],
                "warnings": list(self.warnings)}


def _robust_sd(x: np.ndarray) -> float:
    """1.4826 x the median absolute deviation (the SD of a normal sample, robust to outliers)."""
    return float(1.4826 * np.median(np.abs(x - np.median(x)))) if x.size else 0.0


def resel_ml(spacing_kji, smoothing_mm: float) -> float:
    """Volume (mL) of one resolution element of a CT with voxel ``spacing_kji`` (mm) smoothed by a
    Gaussian of sigma ``smoothing_mm``: the product over the axes of the FWHM, sqrt((2.355 s)^2 +
    spacing^2) mm (the voxel taken as a PSF of FWHM one spacing; Worsley et al. 1996)."""
    fwhm = np.sqrt((2.3548 * float(smoothing_mm)) ** 2 + np.asarray(spacing_kji, float) ** 2)
    return float(np.prod(fwhm)) / 1000.0


def specimen_ml(diameter_mm: float | None = None, throw_mm: float | None = None) -> float:
    """Volume (mL) of a core specimen: a cylinder of the needle's outer diameter (an upper bound
    of the core's) and the throw's length; defaults from sarcoma_biopsy.json (``needle``, ``cores``)."""
    cfg = config()
    d = float(cfg["needle"]["diameter_mm"] if diameter_mm is None else diameter_mm)
    t = float(cfg["cores"]["throw_mm"] if throw_mm is None else throw_mm)
    return float(np.pi * (0.5 * d) ** 2 * t) / 1000.0


def viable_map(ct: Volume, tumour: np.ndarray, threshold_hu: float | None = None,
               smoothing_mm: float | None = None, contrast: bool | None = None,
               specimen_volume_ml: float | None = None) -> ViableMap:
    """The viable part of ``tumour`` (bool [k, j, i] on the CT grid), as the module docstring
    says. ``threshold_hu``: a fixed threshold on the ``smoothing_mm``-smoothed CT instead (the
    user's). ``contrast``: whether the CT is contrast-enhanced (None: unknown, stated in the
    warnings). ``specimen_volume_ml``: the core specimen's volume (mL; default `specimen_ml()`), one
    bound of the smallest island that counts as necrosis (step 4)."""
    import cc3d
    import edt

    cfg = config()["viable"]
    fluid = float(cfg["necrosis_max_hu"])
    sm = float(cfg["smoothing_mm"] if smoothing_mm is None else smoothing_mm)
    tumour = np.asarray(tumour, bool)
    kji = np.argwhere(tumour)
    sp = tuple(float(s) for s in ct.spacing_kji)
    pad = int(np.ceil(4 * max(sm, 1.0) / min(sp))) + 1
    lo = np.maximum(kji.min(0) - pad, 0)
    hi = np.minimum(kji.max(0) + pad + 1, tumour.shape)
    sl = tuple(slice(a, b) for a, b in zip(lo, hi))
    raw = ct.array[sl].astype(np.float32)
    t = tumour[sl]
    smooth = ndimage.gaussian_filter(raw, sm / np.asarray(sp)) if sm > 0 else raw
    method, levels, nsd, used, resolved = "fluid limit", {}, None, sm, True
    if threshold_hu is not None:
        thr, cls, method = float(threshold_hu), smooth, "user threshold"
    else:
        thr, cls = fluid, smooth
        inside = edt.edt(np.pad(t, 1), anisotropy=sp)[1:-1, 1:-1, 1:-1]
        deep = t & (inside >= 2.0 * sm)
        min_core_ml = 4.0 / 3.0 * np.pi * sm ** 3 / 1000.0
        core = deep & (smooth <= fluid)
        if sm > 0:   # a small core (~1 cm) stays fluid at half the scale: its connected parts of 8x the volume
            fine = deep & (ndimage.gaussian_filter(raw, 0.5 * sm / np.asarray(sp)) <= fluid)
            cc = cc3d.connected_components(fine, connectivity=26)
            big = np.bincount(cc.ravel()) * ct.voxel_volume_ml >= 8.0 * min_core_ml
            big[0] = False
            core |= big[cc]
        if core.sum() * ct.voxel_volume_ml >= min_core_ml:
            from_core = edt.edt(~core, anisotropy=sp, black_border=False)
            solid = deep & ~core & (from_core >= 3.0 * sm)
            if not solid.any():
                solid = deep & ~core
            low, high = float(np.median(raw[core])), float(np.median(raw[solid])) if solid.any() else fluid
            levels = {"necrosis": low, "solid": high}
            if high > low:
                method = "two components"
                thr = max(fluid, 0.5 * (low + high))
                used, cls, resolved = sm, smooth, False
                for sig in np.arange(0.0, sm + 1e-9, 0.5):
                    c = ndimage.gaussian_filter(raw, sig / np.asarray(sp)) if sig > 0 else raw
                    sd_solid, sd_core = _robust_sd(c[solid]), _robust_sd(c[core])
                    if Z_ONE_PERCENT * sd_solid <= high - thr and Z_ONE_PERCENT * sd_core <= thr - low:
                        used, cls, resolved = float(sig), c, True
                        break
                nsd = _robust_sd(cls[solid])
    v = t & (cls > thr)
    # step 4: non-viable islands below one resel of the classified CT or one specimen go back to viable
    spec = specimen_ml() if specimen_volume_ml is None else float(specimen_volume_ml)
    min_island = max(resel_ml(sp, used), spec)
    cc = cc3d.connected_components(t & ~v, connectivity=26)
    sizes = np.bincount(cc.ravel()) * ct.voxel_volume_ml
    small = sizes < min_island
    small[0] = False
    if small.any():
        v |= small[cc]
    depth = edt.edt(np.pad(v, 1), anisotropy=sp)[1:-1, 1:-1, 1:-1]
    mask = np.zeros(tumour.shape, bool)
    mask[sl] = v
    dfull = np.zeros(tumour.shape, np.float32)
    dfull[sl] = depth
    ml = ct.voxel_volume_ml
    out = ViableMap(mask, dfull, thr, float(tumour.sum()) * ml, float(v.sum()) * ml, method=method,
                    levels_hu=levels, noise_sd_hu=nsd, smoothing_mm=used, min_island_ml=min_island,
                    islands_ignored=int(small.sum()), islands_ignored_ml=float(sizes[small].sum()))
    if out.islands_ignored:
        out.warnings.append(
            f"{out.islands_ignored} non-viable speck(s) below {min_island:.2f} mL ({out.islands_ignored_ml:.1f} mL in "
            f"all) counted as viable: smaller than one resolution element of the CT as classified "
            f"({resel_ml(sp, used):.2f} mL; noise alone makes such islands) or than a core specimen "
            f"({spec:.3f} mL); {int((sizes[1:] >= min_island).sum())} larger non-viable island(s) kept")
    if method == "two components":
        low_kind = ("fat-containing (below -30 HU: lipomatous tissue, not a grading target)"
                    if levels["necrosis"] < float(cfg["fat_max_hu"]) else "non-enhancing (necrotic/cystic)")
        out.warnings.append(f"a {low_kind} component at {levels['necrosis']:.0f} HU and a "
                            f"solid one at {levels['solid']:.0f} HU: viable = above {thr:.0f} HU, half-way between "
                            f"them (CT smoothed {used:g} mm, solid spread SD {nsd:.0f} HU)")
        if not resolved:
            out.warnings.append(f"the two components overlap even after {used:g} mm smoothing (noise or texture): "
                                "the viable boundary is uncertain by a few mm; check the targets on MR")
    if contrast is None:
        out.warnings.append("contrast phase unknown: on a CT without contrast the viable map shows solid "
                            "(non-fluid) tumour, not enhancement; check it on the contrast CT or MR")
    elif not contrast:
        out.warnings.append("no contrast: the viable map shows solid (non-fluid) tumour, not enhancement")
    out.warnings.append("haemorrhage (40-90 HU) cannot be told from enhancing tumour on one CT phase: "
                        "check the targets against MR")
    if out.viable_ml < 0.25 * out.tumour_ml:
        out.warnings.append(f"only {100 * out.viable_ml / max(out.tumour_ml, 1e-9):.0f}% of the tumour is "
                            f"above {thr:.0f} HU: a largely necrotic or cystic mass, targets are few")
    return out


def specimen_nonviable_fraction(vm: ViableMap, ct: Volume, start, end, step_mm: float = 0.5) -> float:
    """Fraction (0-1) of the specimen, the segment ``start`` -> ``end`` (RAS mm: the tip before
    firing -> the fired tip) sampled every ``step_mm``, whose nearest voxel is not in ``vm.mask``
    (outside the image counts as not viable)."""
    start, end = np.asarray(start, float), np.asarray(end, float)
    n = max(2, int(np.ceil(np.linalg.norm(end - start) / step_mm)) + 1)
    s = start + np.linspace(0.0, 1.0, n)[:, None] * (end - start)
    kji = ct.nearest_kji(s)
    inside = np.all((kji >= 0) & (kji < np.asarray(vm.mask.shape)), axis=1)
    ok = np.zeros(n, bool)
    ok[inside] = vm.mask[tuple(kji[inside].T)]
    return float(1.0 - ok.mean())


def contrast_enhanced(ct: Volume, labels: Volume, vessel_values) -> bool | None:
    """True when the labelled vessels' median HU reaches the config's ``min_contrast_vessel_hu``
    (enhanced blood), False when below, None when no vessel is labelled."""
    m = values_mask(labels.array, list(vessel_values)) if vessel_values else None   # np.isin's voxels
    if m is None or not m.any():
        return None
    return bool(np.median(ct.array[m]) >= config()["viable"]["min_contrast_vessel_hu"])


def candidate_targets(ct: Volume, vm: ViableMap, min_depth_mm: float | None = None,
                      limit: int = 4000) -> tuple[np.ndarray, np.ndarray, list]:
    """(points (n, 3) RAS, depth (n,) mm, warnings): viable voxels at least ``min_depth_mm``
    inside the viable tumour, deepest first (at most ``limit``, an even subsample). When none is
    that deep, the deepest voxels are used with a warning."""
    want = float(config()["cores"]["min_depth_mm"] if min_depth_mm is None else min_depth_mm)
    warnings = []
    ok = vm.depth_mm >= want
    if not ok.any():
        if not vm.mask.any():
            return np.zeros((0, 3)), np.zeros(0), ["no viable tumour above the threshold: no target"]
        best = float(vm.depth_mm.max())
        warnings.append(f"no viable tumour {want:g} mm deep (deepest {best:.1f} mm): targets less deep")
        ok = vm.depth_mm >= 0.8 * best
    kji = np.argwhere(ok)
    d = vm.depth_mm[ok]
    order = np.argsort(-d, kind="stable")
    if len(order) > limit:
        order = np.sort(order[np.linspace(0, len(order) - 1, limit).astype(int)])
        order = order[np.argsort(-d[order], kind="stable")]
    return ct.kji_to_world(kji[order].astype(float)), d[order], warnings
