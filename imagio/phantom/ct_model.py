"""CT of the realistic phantom from its labels: HU per tissue and contrast phase, cortical bone
shells, fissures where lobes meet, partial volume (Gaussian point-spread) and correlated noise
(white noise shaped by a filtered-back-projection noise power spectrum, slice by slice).
"""

from __future__ import annotations

import edt
import numpy as np
from scipy import fft as sfft
from scipy import ndimage

from .assemble import paint_nodule_subtypes, wall_partial_volume
from .hu import BLUR_SIGMA_MM, HU, NOISE_SD, NPS_PEAK_PER_MM, PHASE_HU, PHASES

FISSURE_MM = 0.3  # thickness of an interlobar fissure (two visceral pleural layers)
BONES = ("rib_", "vertebrae_", "sternum", "scapula_", "clavicula_", "humerus_")
ARTERIES = ("aorta", "brachiocephalic_trunk", "subclavian_artery", "common_carotid_artery")
VEINS = ("superior_vena_cava", "brachiocephalic_vein")
LOBES = ("lung_upper_lobe_left", "lung_lower_lobe_left", "lung_upper_lobe_right", "lung_middle_lobe_right",
         "lung_lower_lobe_right")


def tissue_hu(name: str, phase: str) -> float:
    """HU of a label name in a contrast phase (``hu.PHASES``)."""
    ph = PHASE_HU[phase]
    if name.startswith(BONES):
        return HU["bone_trabecular"]
    if name in LOBES:
        return HU["lung"]
    if name.startswith(ARTERIES):
        return ph["aorta"]
    if name.startswith(VEINS):
        return ph["vein"]
    if name.startswith(("autochthon", "iliopsoas")):
        return HU["muscle"]
    if name.startswith("kidney"):
        return ph["kidney"]
    if name in ("trachea", "airways"):
        return HU["airway_lumen"]
    if name.startswith("liver_tumor"):
        return ph["liver_tumor"]
    if name.startswith("lung_nodule"):
        return HU["nodule_solid"]
    if name == "heart":
        return ph["myocardium"]
    if name == "portal_vein_and_splenic_vein":
        return ph["portal_vein"]
    if name in ph:
        return ph[name]
    return HU[name]


def correlated_noise(shape, spacing: float, sd: float, rng) -> np.ndarray:
    """Gaussian noise of standard deviation ``sd`` whose in-plane power spectrum is a ramp times
    a Gaussian window peaking at ``NPS_PEAK_PER_MM`` (or 0.6 x Nyquist on coarser grids; FBP-like
    texture); independent slices. ``shape`` [k, j, i], ``spacing`` mm."""
    n = rng.standard_normal(shape, dtype=np.float32)
    fy = np.fft.fftfreq(shape[1], spacing)[:, None]
    fx = np.fft.rfftfreq(shape[2], spacing)[None, :]
    f = np.sqrt(fx ** 2 + fy ** 2)
    # a coarser grid is reconstructed with a smoother kernel: the peak stays below 0.6 x Nyquist
    peak = min(NPS_PEAK_PER_MM, 0.6 * 0.5 / spacing)
    f0 = peak * np.sqrt(2.0)  # f * exp(-(f/f0)^2) peaks at f0 / sqrt(2)
    amp = np.sqrt(f * np.exp(-(f / f0) ** 2)).astype(np.float32)
    out = n   # filtered in place, 16 slices at a time (slices are independent: the same values)
    for k in range(0, shape[0], 16):
        out[k:k + 16] = sfft.irfft2(sfft.rfft2(n[k:k + 16], axes=(1, 2), workers=-1) * amp, s=shape[1:],
                                    axes=(1, 2), workers=-1)
    out *= sd / max(float(out.std()), 1e-6)
    return out


def lobe_boundaries(L, lobe_vals) -> np.ndarray:
    """Lung voxels with a face neighbour in a different lobe (the fissures)."""
    lung = np.isin(L, lobe_vals)
    out = np.zeros(L.shape, bool)
    for ax in range(3):
        a = [slice(None)] * 3
        b = [slice(None)] * 3
        a[ax], b[ax] = slice(1, None), slice(None, -1)
        diff = lung[tuple(a)] & lung[tuple(b)] & (L[tuple(a)] != L[tuple(b)])
        out[tuple(a)] |= diff
    return out


def realistic_ct(p, lesions, rng, phase: str, sub: dict, table=None) -> np.ndarray:
    """int16 HU volume of painter ``p``'s labels. ``sub``: CT-only sub-regions (heart chambers,
    bowel gas, intrapulmonary arteries); ``table``: bool mask of the CT table."""
    if phase not in PHASES:
        raise ValueError(f"unknown contrast phase {phase!r}; one of {PHASES}")
    g, L, names = p.g, p.labels, p.names
    lut = np.full(len(names) + 1, HU["air"], np.float32)
    for i, n in enumerate(names):
        lut[i + 1] = tissue_hu(n, phase)
    ct = lut[L]
    wall_partial_volume(ct, p, lut)
    ph = PHASE_HU[phase]
    for key, m in sub.items():
        if key.startswith("heart_"):
            ct[m] = ph["blood_left" if key.endswith("left") else "blood_right"]
        elif key == "fat_mediastinal":
            ct[m & (L == p.v("body"))] = HU["fat_visceral"]
        elif key.endswith("_gas"):
            ct[m] = HU["bowel_gas"]
        elif key == "lung_arteries":
            ct[m & (L == p.v("lung_vessels"))] = ph["lung_arteries"]
    bone = np.isin(L, [p.v(n) for n in names if n.startswith(BONES)])
    if bone.any():   # depth in the bones' bounding box and one voxel more (the same nearest background)
        box = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in ndimage.find_objects(bone.view(np.uint8))[0])
        depth = edt.edt(bone[box], anisotropy=(g.spacing,) * 3)
        ct[box][bone[box] & (depth <= max(1.6, g.spacing))] = HU["bone_cortical"]
    # fissures: two visceral pleural layers, ~0.3 mm together, partial volume in the boundary voxel
    # (Hansell DM et al., Fleischner glossary 2008: a fissure is a thin line of pleura)
    frac = min(1.0, FISSURE_MM / g.spacing)
    ct[lobe_boundaries(L, [p.v(n) for n in LOBES])] = HU["lung"] + frac * (HU["airway_wall"] - HU["lung"])
    paint_nodule_subtypes(ct, p, lesions)
    if table is not None:
        ct[table] = HU["table"]
    ct = ndimage.gaussian_filter(ct, BLUR_SIGMA_MM / g.spacing, mode="nearest")
    ct += correlated_noise(ct.shape, g.spacing, NOISE_SD, rng)
    np.rint(ct, out=ct)   # in place: no full-volume temporaries
    np.clip(ct, -1024, 3071, out=ct)
    return ct.astype(np.int16)
