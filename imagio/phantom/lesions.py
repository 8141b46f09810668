"""Painting lesions of every kind into a digital patient (`imagio.phantom.Phantom`).

``insert_lesion(ph, kind, center_ras, diameter_mm, ...)`` adds one lesion to ``ph.labels`` (a
new label) and to ``ph.ct`` (its CT numbers, with the phantom's blur and noise applied in a box
around it only), appends a `PaintedLesion` to ``ph.lesions`` and returns it. The painted shape
is an exact function of the returned object (`PaintedLesion.inside`), which the tests use as
ground truth.

Kinds and their CT numbers (HU, contrast-enhanced portal-venous phase like the phantom):

=================  ==================  ========================================================
kind               label family        CT number, shape
=================  ==================  ========================================================
solid              lung_nodule         ``HU["nodule_solid"]`` (soft tissue), sphere/ellipsoid
part_solid         lung_nodule         ground-glass halo with a concentric solid core
                                       (``solid_fraction`` of the diameter, default 0.5)
ground_glass       lung_nodule         ``HU["nodule_ground_glass"]`` (-600)
calcified          lung_nodule         400 HU diffuse, or ``pattern="central"``: a calcified
                                       core (half the diameter) in a solid nodule
perifissural       lung_nodule         solid, lentiform: an oblate ellipsoid (thickness half
                                       its diameter) flattened along ``normal`` (default: the
                                       phantom's oblique fissure normal)
mass               lung_nodule         enhancing solid tissue, lobulated (``lobulation``
                                       default 0.15), necrotic core by ``necrotic_fraction``,
                                       air-filled core with ``cavitated=True``
liver_hypodense    liver_tumor         ``HU["liver_tumor"]`` (hypo-attenuating metastasis)
liver_hyperdense   liver_tumor         blood-pool-like, hyper-attenuating to liver
soft_tissue        soft_tissue_tumor   enhancing soft tissue (sarcoma), necrotic core possible
=================  ==================  ========================================================

Sources of the CT numbers not in `imagio.phantom.hu`:
- calcification: a nodule above ~200 HU is calcified (Siegelman SS et al., Radiology
  1986;160:307-312; benign patterns diffuse/central, MacMahon H et al. Fleischner Society 2017,
  Radiology 2017;284:228-243);
- enhancing tumour: malignant lung nodules enhance by > 15 HU, median ~ 40 HU, after contrast
  (Swensen SJ et al., Radiology 2000;214:73-80), so 30 + 40 = 70 HU viable tissue;
- necrosis: non-enhancing fluid-like centre, 10-30 HU (Lamba R et al., AJR 2014;203:1013-1020
  give simple fluid 0-20 HU; necrotic debris slightly higher);
- hyper-attenuating liver lesion (haemangioma / hypervascular lesion) follows the blood pool in
  the portal-venous phase (Bae KT, Radiology 2010;256:32-61: ~150-200 HU);
- perifissural nodules: lentiform or triangular, attached to a fissure (de Hoop B et al.,
  Radiology 2012;265:611-616).

Geometry: RAS millimetres; the phantom's grid may be any affine (oblique, flipped,
anisotropic). Labels stay ``uint8`` until the 256th value, then become ``uint16``.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import ndimage

from ..volume import reach_box
from . import Lesion, Phantom
from .hu import BLUR_SIGMA_MM, HU, NOISE_SD

KINDS = ("solid", "part_solid", "ground_glass", "calcified", "perifissural", "mass",
         "liver_hypodense", "liver_hyperdense", "soft_tissue")
FAMILY = {"solid": "lung_nodule", "part_solid": "lung_nodule", "ground_glass": "lung_nodule",
          "calcified": "lung_nodule", "perifissural": "lung_nodule", "mass": "lung_nodule",
          "liver_hypodense": "liver_tumor", "liver_hyperdense": "liver_tumor",
          "soft_tissue": "soft_tissue_tumor"}
SUBTYPE = {"liver_hypodense": "hypodense", "liver_hyperdense": "hyperdense"}

LESION_HU = {  # sources: module docstring
    "solid": HU["nodule_solid"],
    "ground_glass": HU["nodule_ground_glass"],
    "calcified": 400.0,
    "enhancing_tumor": HU["nodule_solid"] + 40.0,
    "necrosis": 20.0,
    "cavity": HU["air"],
    "liver_hypodense": HU["liver_tumor"],
    "liver_hyperdense": 170.0,
}
PERIFISSURAL_FLATTENING = 0.5  # thickness / diameter of a lentiform perifissural nodule
OBLIQUE_FISSURE_NORMAL = (0.0, 0.8, 1.0)  # phantom fissure z = 210 - 0.8 y (torso.py)

_LUNG_HOST = ("lung_upper_lobe_left", "lung_lower_lobe_left", "lung_upper_lobe_right",
              "lung_middle_lobe_right", "lung_lower_lobe_right", "lung_vessels", "airways",
              "airway_wall")
_LIVER_HOST = ("liver", "portal_vein", "hepatic_vein")
_NOT_SOFT_TISSUE = re.compile(r"^(rib_|vertebrae_|sternum|costal_cartilages|lung_|airway|trachea|"
                              r"stomach_gas|skin$|spinal_cord)")


@dataclass
class PaintedLesion(Lesion):
    """A `Lesion` with its exact painted shape.

    ``radii_mm`` (3,) semi-axes before lobulation along the columns of ``rotation`` (3x3, RAS);
    the boundary in direction u (unit, in the ellipsoid's normalised frame) lies at
    ``s(u) = 1 - lobulation + 2 lobulation max_k exp(kappa (u.d_k - 1))`` times the radii;
    the core (necrotic or cavity) is the same shape scaled by ``necrotic_fraction ** (1/3)``, so
    it holds exactly that fraction of the volume. ``confined_to`` names the labels the paint
    was restricted to (empty: not restricted).
    """

    lesion_kind: str = "solid"  # one of KINDS
    diameter_mm: float = 0.0
    radii_mm: np.ndarray = field(default_factory=lambda: np.zeros(3))
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    lobulation: float = 0.0
    lobe_dirs: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    kappa: float = 6.0
    necrotic_fraction: float = 0.0
    cavitated: bool = False
    core_kind: str = ""  # "necrosis" | "cavity" | "solid" | "calcified" | ""
    core_scale: float = 0.0  # core boundary / outer boundary
    confined_to: tuple = ()
    label_value: int = 0
    painted_ml: float = 0.0

    # shape --------------------------------------------------------------------------------
    def _rho_s(self, ras):
        d = np.asarray(ras, float).reshape(-1, 3) - np.asarray(self.center_ras, float)
        u = (d @ np.asarray(self.rotation, float)) / np.asarray(self.radii_mm, float)
        rho = np.sqrt((u * u).sum(1))
        s = np.ones(len(u))
        if self.lobulation > 0 and len(self.lobe_dirs):
            dirs = u / np.maximum(rho, 1e-12)[:, None]
            bump = np.exp(self.kappa * (dirs @ np.asarray(self.lobe_dirs).T - 1.0)).max(1)
            s = 1.0 - self.lobulation + 2.0 * self.lobulation * bump
        return rho, s

    def inside(self, ras) -> np.ndarray:
        """(N,) bool: RAS points (N, 3) inside the analytic (unconfined) lesion."""
        rho, s = self._rho_s(ras)
        return rho <= s

    def inside_core(self, ras) -> np.ndarray:
        """(N,) bool: inside the core (necrotic centre, cavity, solid or calcified core)."""
        rho, s = self._rho_s(ras)
        return rho <= self.core_scale * s

    def analytic_volume_ml(self, n_dirs: int = 20000) -> float:
        """Volume (mL) of the unconfined shape: abc/3 * integral of s(u)^3 over the sphere
        (Fibonacci-sphere quadrature, exact for the ellipsoid)."""
        abc = float(np.prod(self.radii_mm))
        if self.lobulation <= 0:
            return 4.0 / 3.0 * np.pi * abc / 1000.0
        from ..coords import fibonacci_sphere

        u = fibonacci_sphere(n_dirs)
        s = 1.0 - self.lobulation + 2.0 * self.lobulation * np.exp(
            self.kappa * (u @ self.lobe_dirs.T - 1.0)).max(1)
        return float(4.0 * np.pi * np.mean(s ** 3) / 3.0 * abc / 1000.0)

    @property
    def extent_mm(self) -> float:
        """Largest distance (mm) of the boundary from the centre."""
        return float(np.max(self.radii_mm) * (1.0 + self.lobulation))

    def to_dict(self):
        d = asdict(self)
        for k in ("center_ras", "radii_mm", "rotation", "lobe_dirs"):
            d[k] = np.round(np.asarray(getattr(self, k), float), 4).tolist()
        d["confined_to"] = list(self.confined_to)
        return d


def _unit(v):
    v = np.asarray(v, float)
    n = np.linalg.norm(v)
    if n == 0:
        raise ValueError("a direction must not be the zero vector")
    return v / n


def _frame_with_axis(normal) -> np.ndarray:
    """Rotation whose third column is ``normal``."""
    n = _unit(normal)
    a = np.array([1.0, 0, 0]) if abs(n[0]) < 0.9 else np.array([0, 1.0, 0])
    e1 = _unit(np.cross(n, a))
    return np.c_[e1, np.cross(n, e1), n]


def _host_labels(ph: Phantom, family: str, organ) -> tuple:
    names = list(ph.labels.labels.values())
    if organ is not None:
        wanted = [organ] if isinstance(organ, str) else list(organ)
        if wanted == ["lung"]:
            return tuple(n for n in names if n in _LUNG_HOST)
        return tuple(n for n in names if n in wanted or any(n.startswith(w + "_") for w in wanted
                                                             if w in ("lung", "kidney")))
    if family == "lung_nodule":
        return tuple(n for n in names if n in _LUNG_HOST)
    if family == "liver_tumor":
        return tuple(n for n in names if n in _LIVER_HOST)
    return tuple(n for n in names if not _NOT_SOFT_TISSUE.match(n)
                 and not re.match(r"^(lung_nodule|liver_tumor|soft_tissue_tumor)_\d+$", n))


def _next_name(ph: Phantom, family: str) -> str:
    used = [int(m.group(1)) for n in ph.labels.labels.values()
            if (m := re.fullmatch(re.escape(family) + r"_(\d+)", n))]
    return f"{family}_{max(used, default=0) + 1}"


def insert_lesion(ph: Phantom, kind: str, center_ras, diameter_mm: float, *, name: str | None = None,
                  organ: str | None = None, necrotic_fraction: float = 0.0, seed: int = 0,
                  **shape) -> PaintedLesion:
    """Paint one lesion into the phantom (labels and CT, in place) and return it.

    kind: one of ``KINDS`` (see the module docstring for CT numbers and shapes).
    center_ras: (3,) RAS mm. diameter_mm: diameter of the base shape (before lobulation; the
    in-plane diameter of a perifissural nodule). name: the new label (default
    ``<family>_<n>``, n one more than the highest in use). organ: the host whose labels the
    lesion may replace (a label name, a list of names, or "lung"); default by family: lung ->
    the lung lobes, lung vessels and small airways, liver -> liver and its veins, soft tissue ->
    every label but bone, lung, airway and skin. A lesion centred near the chest wall is
    therefore flat against it. ``confine=False`` paints the full shape regardless (invasion).
    necrotic_fraction: volume fraction [0, 0.9] of the necrotic (or, with ``cavitated=True``,
    air-filled) core, any kind. seed: lobulation directions and the local noise.

    shape keywords: ``radii_mm`` (3 semi-axes, overrides the diameter), ``rotation`` (3x3,
    columns = axes in RAS), ``lobulation`` (0-0.4, relative bump height; default 0.15 for a
    mass, 0 otherwise), ``n_lobes`` (default 7), ``cavitated`` (bool), ``solid_fraction``
    (part_solid core diameter ratio, default 0.5), ``pattern`` ("diffuse" | "central",
    calcified), ``normal`` (perifissural flattening direction, RAS), ``confine`` (bool).

    Raises ValueError for an unknown kind, a bad size or fraction, a used name, a centre outside
    the image, or a lesion that paints no voxel.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown lesion kind {kind!r}; one of {', '.join(KINDS)}")
    unknown = set(shape) - {"radii_mm", "rotation", "lobulation", "n_lobes", "cavitated",
                            "solid_fraction", "pattern", "normal", "confine"}
    if unknown:
        raise ValueError(f"unknown shape keyword(s) {sorted(unknown)}")
    if not (np.isfinite(diameter_mm) and diameter_mm > 0):
        raise ValueError(f"diameter_mm must be positive, got {diameter_mm}")
    if not 0.0 <= necrotic_fraction <= 0.9:
        raise ValueError(f"necrotic_fraction must be within 0-0.9, got {necrotic_fraction}")
    center = np.asarray(center_ras, float).reshape(3)
    if not ph.labels.contains_world(center)[0]:
        raise ValueError(f"lesion centre {center.tolist()} lies outside the phantom")
    family = FAMILY[kind]
    name = name or _next_name(ph, family)
    if name in ph.labels.labels.values():
        raise ValueError(f"the phantom already has a label {name!r}")
    rng = np.random.default_rng(seed)

    # shape
    radii = np.broadcast_to(np.asarray(shape.get("radii_mm", diameter_mm / 2.0), float), (3,)).copy()
    rotation = np.asarray(shape.get("rotation", np.eye(3)), float)
    if kind == "perifissural":
        rotation = _frame_with_axis(shape.get("normal", OBLIQUE_FISSURE_NORMAL))
        radii = np.array([diameter_mm / 2, diameter_mm / 2, diameter_mm / 2 * PERIFISSURAL_FLATTENING])
    if not np.allclose(rotation.T @ rotation, np.eye(3), atol=1e-6):
        raise ValueError("rotation must be a 3x3 orthonormal matrix")
    lob = float(shape.get("lobulation", 0.15 if kind == "mass" else 0.0))
    if not 0.0 <= lob <= 0.4:
        raise ValueError(f"lobulation must be within 0-0.4, got {lob}")
    dirs = rng.normal(size=(int(shape.get("n_lobes", 7)), 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    cavitated = bool(shape.get("cavitated", False))
    core_kind, core_scale = "", 0.0
    if necrotic_fraction > 0:
        core_kind, core_scale = ("cavity" if cavitated else "necrosis"), necrotic_fraction ** (1 / 3)
    elif kind == "part_solid":
        core_kind, core_scale = "solid", float(shape.get("solid_fraction", 0.5))
    elif kind == "calcified" and shape.get("pattern", "diffuse") == "central":
        core_kind, core_scale = "calcified", 0.5
    confine = bool(shape.get("confine", True))
    host = _host_labels(ph, family, organ) if confine else ()
    if confine and not host:
        raise ValueError(f"the phantom has no host label for a {kind} lesion (organ={organ!r})")
    value = max(ph.labels.labels, default=0) + 1
    at = ph.labels.sample(center[None])[0]
    organ_name = ph.labels.labels.get(int(at), "") if at else ""
    les = PaintedLesion(
        name=name, kind=family, subtype=SUBTYPE.get(kind, kind), center_ras=center,
        radius_mm=float(np.max(radii)), organ=organ if isinstance(organ, str) else organ_name,
        lesion_kind=kind, diameter_mm=float(diameter_mm), radii_mm=radii, rotation=rotation,
        lobulation=lob, lobe_dirs=dirs, necrotic_fraction=float(necrotic_fraction),
        cavitated=cavitated, core_kind=core_kind, core_scale=core_scale, confined_to=host,
        label_value=value)

    # voxels of the lesion, in a box with room for the blur
    sig_kji = BLUR_SIGMA_MM / ph.ct.spacing_kji
    margin_mm = les.extent_mm + 4.0 * BLUR_SIGMA_MM + float(ph.ct.spacing.max())
    lo, hi = reach_box(ph.labels, center, margin_mm)
    sl = tuple(slice(a, b) for a, b in zip(lo, hi))
    kji = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij"), -1)
    ras = ph.labels.kji_to_world(kji.reshape(-1, 3))
    box_shape = tuple(hi - lo)
    rho, s = les._rho_s(ras)
    inside = (rho <= s).reshape(box_shape)
    core = (rho <= core_scale * s).reshape(box_shape) & inside
    lab = ph.labels.array
    if confine:
        inv = {v: k for k, v in ph.labels.labels.items()}
        inside &= np.isin(lab[sl], [inv[n] for n in host])
        core &= inside
    n_vox = int(inside.sum())
    if n_vox == 0:
        raise ValueError(f"the {kind} lesion at {center.round(1).tolist()} paints no voxel "
                         f"(outside its host {host[:3]}...?)")
    les.painted_ml = n_vox * ph.labels.voxel_volume_ml
    airway_vals = [k for k, v in ph.labels.labels.items() if v in ("airways", "trachea")]
    les.touches_airway = bool(np.any(np.isin(lab[sl][ndimage.binary_dilation(inside)], airway_vals)))

    # labels
    if value > np.iinfo(lab.dtype).max:
        lab = lab.astype(np.uint16)
        ph.labels.array = lab
    lab[sl][inside] = value
    ph.labels.labels[value] = name

    # CT numbers: clean lesion map, blurred and blended with the image, noise restored locally
    hu = np.zeros(box_shape, np.float32)
    base = {"solid": "solid", "part_solid": "ground_glass", "ground_glass": "ground_glass",
            "calcified": "calcified", "perifissural": "solid", "mass": "enhancing_tumor",
            "liver_hypodense": "liver_hypodense", "liver_hyperdense": "liver_hyperdense",
            "soft_tissue": "enhancing_tumor"}[kind]
    hu[inside] = LESION_HU[base]
    if core_kind:
        hu[core] = LESION_HU[core_kind]
    frac = ndimage.gaussian_filter(inside.astype(np.float32), sig_kji, mode="nearest")
    blurred = ndimage.gaussian_filter(hu, sig_kji, mode="nearest")
    old = ph.ct.array[sl].astype(np.float32)
    keep = 1.0 - frac
    noise_sd = NOISE_SD * np.sqrt(np.clip(1.0 - keep ** 2, 0.0, 1.0))
    new = old * keep + blurred + rng.normal(0.0, 1.0, box_shape).astype(np.float32) * noise_sd
    ph.ct.array[sl] = np.clip(np.rint(new), -1024, 3071).astype(ph.ct.array.dtype)
    ph.lesions.append(les)
    return les
