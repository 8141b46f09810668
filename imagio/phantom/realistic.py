"""The realistic digital patient: anatomy from implicit surfaces, tubes along splines and trees
grown inside the painted organs (``generate(..., anatomy="realistic")``).

Shapes are built from scratch (no label maps are copied): a skin outline, rib cage and spine that
change along z (``body``), bones (``skeleton``), soft tissues and organs (``organs``), an
anatomical bronchial tree (``bronchi``), pulmonary, portal and hepatic vessel trees, lesions and
the CT (``ct_model``). Deterministic for a seed; ``sex``, ``size`` and ``arms`` vary the patient.
"""

from __future__ import annotations

import numpy as np

from . import bronchi, trees
from .assemble import LUNG_LOBES, RIBS, Phantom, _inside, _vessel_tree, finish
from .body import LEVELS, Frame
from .ct_model import realistic_ct
from .organs import Shapes, paint_abdomen, paint_body_wall, paint_lungs, paint_mediastinum
from .raster import Grid, capsules
from .skeleton import paint_ribs, paint_shoulder_girdle, paint_spine
from .torso import Painter

VERTEBRAE_ALL = [f"vertebrae_{n}" for n in LEVELS]
EXTRA = ["autochthon_right", "autochthon_left", "iliopsoas_right", "iliopsoas_left", "humerus_right", "humerus_left",
         "scapula_right", "scapula_left", "clavicula_right", "clavicula_left", "superior_vena_cava",
         "brachiocephalic_trunk", "common_carotid_artery_right", "common_carotid_artery_left",
         "subclavian_artery_right", "subclavian_artery_left", "brachiocephalic_vein_left",
         "brachiocephalic_vein_right", "pulmonary_artery", "pulmonary_vein", "pancreas", "duodenum",
         "small_bowel", "colon"]


def label_names(n_tumors: int, n_nodules: int) -> list[str]:
    return (["skin", "subcutaneous_fat", "muscle", "body", "diaphragm"] + LUNG_LOBES
            + ["liver", "gallbladder", "spleen", "stomach", "stomach_gas", "kidney_right", "kidney_left",
               "heart", "aorta", "inferior_vena_cava", "esophagus", "portal_vein_and_splenic_vein"]
            + EXTRA + VERTEBRAE_ALL + ["spinal_cord"] + RIBS
            + ["costal_cartilages", "sternum", "lung_vessels", "portal_vein", "hepatic_vein",
               "trachea", "airways", "airway_wall"]
            + [f"liver_tumor_{i + 1}" for i in range(n_tumors)]
            + [f"lung_nodule_{i + 1}" for i in range(n_nodules)])


def table_mask(g: Grid, F: Frame) -> np.ndarray:
    """CT table under the patient's back (in the CT, in no label)."""
    z, y, x = g.full()
    _, yb, _ = F.skin(np.asarray(g.z))
    top = yb.min() - 3.0 + 0.0006 * x ** 2
    return np.broadcast_to((y <= top) & (y >= top - 7.0) & (np.abs(x) < 0.98 * abs(g.lo[0])), g.shape)


def generate_realistic(spacing: float, seed: int, n_liver_tumors: int, n_lung_nodules: int,
                       airway_generations: int, sex: str = "male", size: float = 1.0, arms: str = "down",
                       phase: str = "portal_venous", airway_variant: str = "normal",
                       small_airway_walls: str = "floor") -> Phantom:
    """The realistic patient on an axis-aligned isotropic RAS grid of ``spacing`` mm (L4 to the
    base of the neck, arms included). ``sex`` "male" | "female", ``size`` 0.8-1.25 (lengths
    relative to the 175 cm reference man), ``arms`` "down" | "up", ``phase`` one of
    ``hu.PHASES``, ``airway_variant`` one of ``bronchi.AIRWAY_VARIANTS``, ``small_airway_walls``
    one of ``assemble.SMALL_AIRWAY_WALLS`` (see `assemble.finish`). The returned
    `Phantom`'s ``geometry`` holds the frame, vertebrae, ribs (centrelines, cartilages), heart
    (base, apex, chambers) and liver (Couinaud planes: ``organs.couinaud_segment``).
    Deterministic for ``seed``. Raises ValueError for an out-of-range option."""
    rng = np.random.default_rng(seed)
    F = Frame.make(sex, size, arms, rng)
    lo, hi = F.extent()
    g = Grid(lo, hi, spacing)
    names = label_names(n_liver_tumors, n_lung_nodules)
    p = Painter(g, names)
    sh = Shapes(p, F)
    geometry: dict = {"anatomy": "realistic",
                      "frame": {"sex": F.sex, "size": F.size, "arms": F.arms, "scale_lr_ap_si": [F.sx, F.sy, F.sz]}}
    cavity = paint_body_wall(p, F, sh)
    paint_spine(p, F, geometry)
    lm = paint_mediastinum(p, F, sh, geometry)
    tree = bronchi.central_airways(F, float(g.z[-1]) + 5.0, airway_variant)
    central = [b for b in tree]
    segs = trees.segments(central)
    capsules(g, p.labels, np.c_[segs[:, :6], segs[:, 6:8] * 1.3 + 1.0], p.v("trachea"))
    abd = paint_abdomen(p, F, sh, geometry, rng)
    paint_lungs(p, F, sh, cavity)
    del cavity
    p.labels[p.labels == p.v("trachea")] = p.v("body")  # the airways are painted at the end
    paint_ribs(p, F, geometry)
    paint_shoulder_girdle(p, F, arms)
    # pulmonary arteries (with the bronchi) from the hila, veins to the left atrium
    pulm = []
    for side, sx in (("right", 1.0), ("left", -1.0)):
        h = lm["hila"][side]
        roots = [(h, h + np.array([sx * 14, -6, 30]) * sh.S, 6.5), (h, h + np.array([sx * 12, -14, -32]) * sh.S, 7.0),
                 (h, h + np.array([sx * 14, 22, -10]) * sh.S, 5.5)]
        pulm += _vessel_tree(p, rng, roots, LUNG_LOBES, 7, 0.9)
    capsules(g, p.labels, trees.segments(pulm), p.v("lung_vessels"), min_radius=0.7 * spacing)
    sh.sub["lung_arteries"] = p.labels == p.v("lung_vessels")
    veins = []
    for end in lm["veins"].values():
        d = end - np.array([0.0, -10.0, 290.0]) * sh.S
        d = d / np.linalg.norm(d)
        veins += _vessel_tree(p, rng, [(end, end + d * 18 * F.size, 5.5)], LUNG_LOBES, 6, 0.9)
    capsules(g, p.labels, trees.segments(veins), p.v("lung_vessels"), min_radius=0.7 * spacing)
    # portal tree from the porta hepatis; hepatic-vein tributaries
    porta = abd["porta"]
    portal = _vessel_tree(p, rng, [(porta, porta + np.array([34, 0, 4]) * sh.S, 6.5),
                                   (porta, porta + np.array([-30, 22, 6]) * sh.S, 5.5)], ["liver"], 5, 1.2)
    capsules(g, p.labels, trees.segments(portal), p.v("portal_vein"), min_radius=0.7 * spacing)
    conf = abd["hepatic_confluence"]
    hep = _vessel_tree(p, rng, [(conf, conf + np.array([40, 12, -20]) * sh.S, 5.0),
                                (conf, conf + np.array([10, 30, -30]) * sh.S, 4.5),
                                (conf, conf + np.array([-26, 28, -14]) * sh.S, 4.5)],
                       ["liver", "hepatic_vein", "inferior_vena_cava"], 4, 1.2)
    capsules(g, p.labels, trees.segments(hep), p.v("hepatic_vein"), min_radius=0.7 * spacing)
    # bronchial tree: named segmental bronchi aimed into their lobes, then grown
    lobe_pts = {}
    step = max(1, int(round(6.0 / spacing)))
    for lobe in LUNG_LOBES:
        kji = np.argwhere(p.labels[::step, ::step, ::step] == p.v(lobe)) * step
        lobe_pts[lobe] = g.lo + kji[:, ::-1] * spacing
    bronchi.segmental(tree, lobe_pts, F)
    bronchi.grow_peripheral(tree, lambda lobe: _inside(p, [lobe]), rng, airway_generations)
    params = dict(n_liver_tumors=n_liver_tumors, n_lung_nodules=n_lung_nodules,
                  airway_generations=airway_generations, anatomy="realistic", sex=sex, size=size, arms=arms,
                  phase=phase, airway_variant=airway_variant)
    if small_airway_walls != "floor":
        params["small_airway_walls"] = small_airway_walls
    table = table_mask(g, F)
    return finish(p, names, rng, tree, n_liver_tumors, n_lung_nodules, spacing, seed, params, geometry,
                  ct_fn=lambda p, lesions, rng: realistic_ct(p, lesions, rng, phase, sh.sub, table),
                  small_airway_walls=small_airway_walls)
