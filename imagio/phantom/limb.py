"""The limb phantom: a deterministic synthetic contrast CT of one thigh with its reference labels.

``thigh(seed, spacing_mm, side, tumour=...)`` returns a `LimbPhantom`: the CT (HU, blur and
noise as the torso phantom: `imagio.phantom.hu`), the label map and the generating geometry the
tests use as ground truth (tumour centre, radii, necrotic core, compartments involved).

Anatomy (RAS mm, axis-aligned grid; the knee joint line at S = 0, the hip joint at S =
``THIGH_LENGTH_MM``; the thigh's long axis is S): skin, subcutaneous fat, the deep fascia (fascia
lata), the femur (cortex + marrow, one label ``femur_<side>``, with the greater trochanter, neck
and head proximally and the condyles distally), the patella, three muscle compartments separated
by the lateral, medial and posterior intermuscular septa (rays from the linea aspera region of
the femur to the fascia; angles ``SEPTA_DEG``), the superficial femoral artery and vein (from the
femoral triangle, anteromedial, through the adductor canal on the medial septum to the adductor
hiatus and the popliteal fossa behind the femur), the sciatic nerve (posterior compartment,
behind the femur), and the hip and knee joint capsules (the knee's with its suprapatellar
recess, which reaches about 6 cm above the patella).

Label names: TotalSegmentator's where they exist (``femur_left``/``femur_right``; the
compartments as the TotalSegmentator ``thigh_shoulder_muscles`` task groups them are named
``thigh_anterior_compartment_<side>`` (the quadriceps) with ``sartorius_<side>`` (anterior
compartment too, a strap crossing the medial thigh obliquely), ``thigh_medial_compartment_<side>``
(adductors, gracilis) and ``thigh_posterior_compartment_<side>`` (hamstrings)); IMAGIO's own for
the rest (``intermuscular_septum_{lateral,medial,posterior}_<side>``, ``fascia_lata_<side>``,
``superficial_femoral_artery_<side>``, ``superficial_femoral_vein_<side>``,
``sciatic_nerve_<side>``, ``hip_joint_capsule_<side>``, ``knee_joint_capsule_<side>``,
``patella_<side>``, ``sarcoma_1``). Simplifications (stated): the femur is straight along S, the
septa are planes radiating from the femoral axis, the sciatic nerve does not divide.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..volume import Volume
from .hu import BLUR_SIGMA_MM, HU, NOISE_SD

THIGH_LENGTH_MM = 400.0
# septa, degrees from anterior towards medial around the femoral axis (lateral is negative)
SEPTA_DEG = {"lateral": -110.0, "medial": 80.0, "posterior": 160.0}
COMPARTMENTS = ("anterior", "medial", "posterior")   # anterior: -110..80, medial: 80..160, posterior: 160..250
LIMB_HU = {   # tissues of the limb not in hu.HU (contrast CT, arterial-to-portal venous phase)
    "artery": 200.0, "vein": 140.0, "nerve": 35.0, "septum": -60.0,  # septa: thin fat planes on CT
    "fascia": 45.0, "marrow": -20.0,       # adult femoral shaft: yellow (fatty) marrow
    "joint_fluid": 10.0, "capsule": 50.0, "patella": 600.0,
    "tumour_rim": 95.0, "tumour_necrosis": 15.0,   # enhancing rim; non-enhancing fluid-like core
}


@dataclass
class LimbPhantom:
    ct: Volume
    labels: Volume
    geometry: dict
    spacing: float
    seed: int
    params: dict = field(default_factory=dict)
    truth: dict = field(default_factory=dict)   # ground-truth masks [k, j, i]: "necrosis"

    def label_value(self, name: str) -> int:
        return {n: v for v, n in self.labels.labels.items()}[name]

    def mask(self, name: str) -> np.ndarray:
        return self.labels.array == self.label_value(name)


def _names(side: str) -> list[str]:
    s = side
    return [f"skin_{s}", "subcutaneous_fat", f"fascia_lata_{s}",
            f"thigh_anterior_compartment_{s}", f"thigh_medial_compartment_{s}",
            f"thigh_posterior_compartment_{s}", f"sartorius_{s}",
            f"intermuscular_septum_lateral_{s}", f"intermuscular_septum_medial_{s}",
            f"intermuscular_septum_posterior_{s}", f"femur_{s}", f"patella_{s}",
            f"superficial_femoral_artery_{s}", f"superficial_femoral_vein_{s}", f"sciatic_nerve_{s}",
            f"hip_joint_capsule_{s}", f"knee_joint_capsule_{s}", "sarcoma_1"]


def _interp(t, knots, values):
    return np.interp(t, knots, values)


def thigh(seed: int = 0, spacing_mm: float = 2.5, side: str = "left", *,
          tumour_compartment: str = "anterior", tumour_diameter_mm: float = 80.0,
          tumour_angle_deg: float | None = None, tumour_radial_mm: float | None = None,
          tumour_s_mm: float = 220.0, necrotic_fraction: float = 0.5,
          noise: bool = True) -> LimbPhantom:
    """A thigh with one soft-tissue sarcoma.

    tumour_compartment: "anterior" | "medial" | "posterior" (the centre's compartment; the
    tumour is placed mid-compartment unless ``tumour_angle_deg`` (degrees from anterior towards
    medial around the femur) is given: an angle on a septum gives a tumour crossing it).
    tumour_radial_mm: distance of the centre from the femoral axis (default: mid-muscle).
    tumour_diameter_mm: 30-200 (the long axis, along the limb; the short axes are 0.75 of it,
    shrunk to fit under the fascia when the centre is placed by default); the tumour is always
    clipped to the deep fascia and never overlaps bone, vessels, nerve or joint capsules (it
    displaces them). necrotic_fraction: radius fraction of the necrotic core
    (0 = none). Deterministic for ``seed`` (lobulation and noise). Raises ValueError for a
    diameter outside 30-200 mm or an unknown compartment/side.
    """
    if side not in ("left", "right"):
        raise ValueError("side must be 'left' or 'right'")
    if tumour_compartment not in COMPARTMENTS:
        raise ValueError(f"tumour_compartment must be one of {COMPARTMENTS}")
    if not 30.0 <= tumour_diameter_mm <= 200.0:
        raise ValueError("tumour diameter must be 30-200 mm")
    rng = np.random.default_rng(seed)
    lat = -1.0 if side == "left" else 1.0      # RAS x of the lateral direction
    cx = 90.0 * (1.0 if side == "right" else -1.0)
    L, h = THIGH_LENGTH_MM, float(spacing_mm)
    lo = np.array([cx - 115.0, -110.0, -40.0])
    hi = np.array([cx + 115.0, 110.0, L + 20.0])
    n = np.floor((hi - lo) / h).astype(int) + 1
    x = (lo[0] + h * np.arange(n[0])).astype(np.float32)[None, None, :]
    y = (lo[1] + h * np.arange(n[1])).astype(np.float32)[None, :, None]
    z = (lo[2] + h * np.arange(n[2])).astype(np.float32)[:, None, None]
    t = np.clip(z / L, 0.0, 1.0)
    # medial (m) / anterior (a) coordinates relative to the thigh centre
    m = (x - cx) * (-lat)
    a = y + 0.0 * z
    # outer skin: ellipse, wider proximally
    ax_ml = 58.0 + 30.0 * t
    ax_ap = 52.0 + 22.0 * t
    fat = 7.0 + 9.0 * t
    e_skin = (m / ax_ml) ** 2 + (a / ax_ap) ** 2
    body = e_skin <= 1.0
    e_fascia = (m / (ax_ml - fat)) ** 2 + (a / (ax_ap - fat)) ** 2
    deep = e_fascia <= 1.0
    fascia = deep & ~((m / (ax_ml - fat - 1.2 * h)) ** 2 + (a / (ax_ap - fat - 1.2 * h)) ** 2 <= 1.0)
    skin = body & ~((m / (ax_ml - 1.2 * h)) ** 2 + (a / (ax_ap - 1.2 * h)) ** 2 <= 1.0)
    # femur: axis at (m, a) = (-4, +4) (slightly lateral and anterior), radius 13 mm (shaft)
    fm, fa = -4.0, 4.0
    dm, da = m - fm, a - fa
    rf = np.sqrt(dm ** 2 + da ** 2)
    phi = np.degrees(np.arctan2(dm, da))          # 0 anterior, +90 medial, -90 lateral
    r_shaft = np.where(z < 70.0, 13.0 + 17.0 * np.clip((70.0 - z) / 70.0, 0, 1) ** 0.7, 13.0)
    femur = (rf <= r_shaft) & (z >= -5.0) & (z <= L - 40.0)
    cortex_in = np.where(z < 70.0, r_shaft - 4.0, 8.0)
    marrow = femur & (rf < cortex_in) & (z > 70.0)
    zl = z + 0.0 * m

    def seg_dist(p0, p1):
        """Distance (mm) of every voxel to the segment p0-p1 given in (m, a, z)."""
        p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
        d = p1 - p0
        u = np.clip(((m - p0[0]) * d[0] + (a - p0[1]) * d[1] + (zl - p0[2]) * d[2]) / (d @ d), 0, 1)
        return np.sqrt((m - p0[0] - u * d[0]) ** 2 + (a - p0[1] - u * d[1]) ** 2 + (zl - p0[2] - u * d[2]) ** 2)

    head_c = (fm + 48.0, fa + 8.0, L - 5.0)
    neck = seg_dist((fm, fa, L - 70.0), head_c) <= 14.0
    head = (m - head_c[0]) ** 2 + (a - head_c[1]) ** 2 + (zl - head_c[2]) ** 2 <= 23.0 ** 2
    troch_c = (fm - 30.0, fa - 6.0, L - 55.0)
    troch = seg_dist(troch_c, (fm - 12.0, fa - 4.0, L - 70.0)) <= 14.0
    femur = femur | neck | head | troch
    # joints
    hip_caps = (seg_dist((fm + 20.0, fa + 6.0, L - 40.0), head_c) <= 33.0) & ~femur
    knee_caps = ((m - fm) / 44.0) ** 2 + ((a - fa) / 36.0) ** 2 + ((zl - 12.0) / 34.0) ** 2 <= 1.0
    supra = (np.abs(m - fm) <= 22.0) & (a - fa > r_shaft - 1.0) & (a - fa < r_shaft + 9.0) & (zl > 10) & (zl < 85.0)
    knee_caps = (knee_caps | supra) & ~femur
    patella_c = (fm, fa + 36.0, 28.0)
    patella = ((m - patella_c[0]) / 20.0) ** 2 + ((a - patella_c[1]) / 8.0) ** 2 + ((zl - patella_c[2]) / 22.0) ** 2 <= 1.0
    knee_caps &= ~patella
    # neurovascular bundle (per-slice centres; the course in (phi, r) around the femoral axis)
    sa = np.array([0.0, 0.12, 0.35, 0.65, 1.0])
    art_phi = _interp(t, sa, [178.0, 172.0, 135.0, 70.0, 40.0])
    art_r = _interp(t, sa, [26.0, 27.0, 30.0, 38.0, 42.0])
    vein_phi = art_phi + 12.0
    vein_r = art_r + 3.0
    nerve_phi = np.full_like(t, -172.0)
    nerve_r = _interp(t, [0.0, 1.0], [34.0, 48.0])

    def tube(phi_c, r_c, radius):
        pc = np.radians(phi_c)
        cm, ca = fm + r_c * np.sin(pc), fa + r_c * np.cos(pc)
        return ((m - cm) ** 2 + (a - ca) ** 2 <= radius ** 2) & (zl >= -30.0) & (zl <= L + 15.0)

    artery = tube(art_phi, art_r, 3.5) & deep
    vein = tube(vein_phi, vein_r, 4.5) & deep & ~artery
    nerve = tube(nerve_phi, nerve_r, 5.0) & deep
    # septa: rays from the femur to the fascia, half-thickness 0.6 voxel (a connected sheet)
    septa = {}
    for k, ang in SEPTA_DEG.items():
        dphi = np.radians(((phi - ang + 180.0) % 360.0) - 180.0)
        septa[k] = deep & (np.abs(rf * np.sin(dphi)) <= 0.6 * h) & (np.cos(dphi) > 0) & (rf > r_shaft)
    comp_of = np.where((phi >= SEPTA_DEG["lateral"]) & (phi < SEPTA_DEG["medial"]), 0,
                       np.where((phi >= SEPTA_DEG["medial"]) & (phi < SEPTA_DEG["posterior"]), 1, 2))
    # tumour
    comp_range = {"anterior": (SEPTA_DEG["lateral"], SEPTA_DEG["medial"]),
                  "medial": (SEPTA_DEG["medial"], SEPTA_DEG["posterior"]),
                  "posterior": (SEPTA_DEG["posterior"], SEPTA_DEG["lateral"] + 360.0)}
    lo_a, hi_a = comp_range[tumour_compartment]
    ang = 0.5 * (lo_a + hi_a) if tumour_angle_deg is None else float(tumour_angle_deg)
    ang = ((ang + 180.0) % 360.0) - 180.0
    tt = tumour_s_mm / L
    rm = float(np.interp(tt, [0, 1], [58.0, 88.0])) - float(np.interp(tt, [0, 1], [7.0, 16.0]))
    rad_r = 0.55 * (rm + 13.0) if tumour_radial_mm is None else float(tumour_radial_mm)
    pc = np.radians(ang)
    tc_m, tc_a = fm + rad_r * np.sin(pc), fa + rad_r * np.cos(pc)
    R_long = 0.5 * tumour_diameter_mm
    R_short = min(0.75 * R_long, max(8.0, rm - rad_r - 2.0 if tumour_radial_mm is None else 0.75 * R_long))
    coef = rng.normal(0.0, 0.06, 3)   # lobulation: low-order harmonics, deterministic per seed
    dz = zl - tumour_s_mm
    ex, ea = m - tc_m, a - tc_a
    rr = np.sqrt((ex / R_short) ** 2 + (ea / R_short) ** 2 + (dz / R_long) ** 2)
    th = np.arctan2(ea, ex)
    lob = 1.0 + coef[0] * np.cos(3 * th) + coef[1] * np.sin(2 * th) + coef[2] * np.cos(4 * th)
    tumour = (rr <= lob) & deep & ~femur & ~artery & ~vein & ~nerve & ~hip_caps & ~knee_caps
    necrosis = tumour & (rr <= necrotic_fraction * lob) if necrotic_fraction > 0 else np.zeros_like(tumour)
    # label map (later paints win)
    names = _names(side)
    val = {nm: i + 1 for i, nm in enumerate(names)}
    lab = np.zeros(tuple(n[::-1]), np.uint8)
    S = f"_{side}"
    lab[body] = val["subcutaneous_fat"]
    lab[skin] = val["skin" + S]
    lab[deep] = val["thigh_anterior_compartment" + S]
    lab[deep & (comp_of == 1)] = val["thigh_medial_compartment" + S]
    lab[deep & (comp_of == 2)] = val["thigh_posterior_compartment" + S]
    lab[fascia] = val["fascia_lata" + S]
    for k, msk in septa.items():
        lab[msk] = val[f"intermuscular_septum_{k}{S}"]
    # sartorius (anterior compartment): a strap just deep to the fascia, oblique from the
    # anterolateral hip to the medial knee, over the adductor canal in the middle third
    sart_phi = _interp(t, [0.0, 0.1, 0.5, 1.0], [150.0, 130.0, 75.0, -40.0])
    dphi_s = np.abs(((phi - sart_phi + 180.0) % 360.0) - 180.0)
    sart = deep & ~fascia & (dphi_s <= 15.0) & (e_fascia >= 0.62) & (zl > 30.0)
    lab[sart] = val["sartorius" + S]
    # tumour before the bundle, bones and joints: it displaces them (never overlaps)
    involved = sorted({COMPARTMENTS[c] for c in np.unique(comp_of[tumour & deep] if tumour.any() else [])}
                      | ({"anterior"} if (tumour & sart).any() else set()))
    lab[tumour] = val["sarcoma_1"]
    lab[hip_caps & body] = val["hip_joint_capsule" + S]
    lab[knee_caps & body] = val["knee_joint_capsule" + S]
    lab[femur & body] = val["femur" + S]
    lab[patella & body] = val["patella" + S]
    lab[artery] = val["superficial_femoral_artery" + S]
    lab[vein] = val["superficial_femoral_vein" + S]
    lab[nerve] = val["sciatic_nerve" + S]
    # outside the body: nothing; outside the grid's thigh ends the body continues (cut FOV)
    # CT
    hu = np.full(lab.shape, HU["air"], np.float32)
    table = {"subcutaneous_fat": HU["subcutaneous_fat"], "skin" + S: HU["skin"],
             "fascia_lata" + S: LIMB_HU["fascia"], "femur" + S: HU["bone_cortical"],
             "patella" + S: LIMB_HU["patella"], "superficial_femoral_artery" + S: LIMB_HU["artery"],
             "superficial_femoral_vein" + S: LIMB_HU["vein"], "sciatic_nerve" + S: LIMB_HU["nerve"],
             "hip_joint_capsule" + S: LIMB_HU["joint_fluid"], "knee_joint_capsule" + S: LIMB_HU["joint_fluid"],
             "sarcoma_1": LIMB_HU["tumour_rim"]}
    for c in COMPARTMENTS:
        table[f"thigh_{c}_compartment{S}"] = HU["muscle"]
    table["sartorius" + S] = HU["muscle"]
    for k in SEPTA_DEG:
        table[f"intermuscular_septum_{k}{S}"] = LIMB_HU["septum"]
    lut = np.full(len(names) + 1, HU["air"], np.float32)
    for nm, v in table.items():
        lut[val[nm]] = v
    hu = lut[lab]
    hu[marrow & (lab == val["femur" + S])] = LIMB_HU["marrow"]
    hu[necrosis & (lab == val["sarcoma_1"])] = LIMB_HU["tumour_necrosis"]
    hu = ndimage.gaussian_filter(hu, BLUR_SIGMA_MM / h)
    if noise:
        hu = hu + rng.normal(0.0, NOISE_SD, hu.shape).astype(np.float32)
    aff = np.eye(4)
    aff[:3, :3] *= h
    aff[:3, 3] = lo
    labels = Volume(lab, aff.copy(), name="limb_labels", labels={v: k for k, v in val.items()})
    ct = Volume(hu.astype(np.int16), aff.copy(), name="limb_ct")
    def to_ras(mm_, aa, zz):   # (medial, anterior, S) -> RAS: x = cx - lat * medial
        return [float(cx - lat * mm_), float(aa), float(zz)]

    pat_ras = to_ras(patella_c[0], patella_c[1], patella_c[2] + 22.0)      # superior pole
    tro_ras = to_ras(troch_c[0] - 14.0, troch_c[1], troch_c[2])            # lateral tip
    geometry = {
        "side": side, "long_axis": [0.0, 0.0, 1.0], "lateral_ras": [lat, 0.0, 0.0],
        "femur_axis_ras": [to_ras(fm, fa, 0.0), to_ras(fm, fa, L)],
        "septa_deg": SEPTA_DEG, "compartments": list(COMPARTMENTS),
        "tumour": {"name": "sarcoma_1", "center_ras": to_ras(tc_m, tc_a, tumour_s_mm),
                   "radius_long_mm": R_long, "radius_short_mm": R_short,
                   "necrotic_fraction": necrotic_fraction, "angle_deg": ang, "radial_mm": rad_r,
                   "compartments": involved, "voxels": int((lab == val["sarcoma_1"]).sum())},
        "landmarks_ras": {"patella": pat_ras, "greater_trochanter": tro_ras},
    }
    return LimbPhantom(ct, labels, geometry, h, seed,
                       {"tumour_compartment": tumour_compartment, "tumour_diameter_mm": tumour_diameter_mm,
                        "necrotic_fraction": necrotic_fraction},
                       {"necrosis": necrosis & (lab == val["sarcoma_1"])})


def save(ph: LimbPhantom, out_dir) -> list[Path]:
    """Write ct.nii.gz, labels.nii.gz (+ labels.labels.json), geometry.json and the true
    necrotic core truth_necrosis.nii.gz (+ sidecar; label 1) into ``out_dir``."""
    from .. import io
    from ..outputs import write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [io.write_image(ph.ct, out / "ct.nii.gz"), io.write_labels(ph.labels, out / "labels.nii.gz"),
             write_text(out / "geometry.json", json.dumps(ph.geometry, indent=1))]
    if "necrosis" in ph.truth:
        nec = ph.labels.with_array(ph.truth["necrosis"].astype(np.uint8), name="truth_necrosis",
                                   labels={1: "sarcoma_necrosis_truth"})
        paths.append(io.write_labels(nec, out / "truth_necrosis.nii.gz"))
    return [Path(p) for p in paths]
