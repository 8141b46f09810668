"""Left and right lung without the central airways: the one left/right split of a lung mask.

Air below -400 HU inside the body holds the trachea and the main bronchi as well as the two
lungs. A lung mask that keeps them (IMAGIO's HU rules without an airway mask, as the nodule
detector uses them; a mask from elsewhere) is one component joined at the carina, and a
left/right split of that component hands a main bronchus, and the subcarinal space it encloses,
to the other lung. Lung segmentation therefore removes the large airways before separating the
lungs (Armato & MacMahon, Med Phys 1999; Hu, Hoffman & Reinhardt, IEEE TMI 20(6), 2001:
"trachea and left/right main bronchi extraction" precedes "left and right lung separation").
The airways are IMAGIO's region-grown tree (:func:`imagio.segmentation.airways.airway_masks`)
with the wall's partial volume (:func:`imagio.segmentation.lungs.airway_margin`, also what
:func:`imagio.segmentation.lungs.lung_mask` cuts out); the midline is the trachea's
(:func:`imagio.segmentation.lungs.midline_x`).
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..volume import Volume
from . import airways as aw
from .lungs import airway_margin, midline_x, split_left_right


NO_MIDLINE = ("left/right judged from the lungs' relative position only: no trachea in view, the body cut at a "
              "side, and the image's origin is (0, 0, 0), so its coordinates carry no scanner isocentre (a file "
              "written without its scanner coordinates?); a lung in view alone may be split in two; check the sides")


def split_lungs(ct: Volume, lungs: np.ndarray, body: np.ndarray | None,
                trachea: np.ndarray | None = None, bronchi: np.ndarray | None = None,
                find_airways: bool = True, midline: tuple[float | None, str] | None = None,
                notes: list[str] | None = None) -> tuple[np.ndarray, np.ndarray, float, list[str]]:
    """(left, right, midline RAS x in mm, warnings): the lungs split left/right without the airways.

    ct: CT in HU, any orientation/spacing; lungs, body: boolean [k, j, i] masks on its grid;
    trachea, bronchi: the airway tree when already segmented (else found here, unless
    ``find_airways`` is False: a caller that already tried, or a mask that holds no airways,
    such as a model's lung classes on a grid that is not a CT; ``body`` may then be None and
    the midline is the isocentre). left, right:
    boolean [k, j, i], patient's right is +x in RAS; neither holds an airway voxel (nor its
    wall's partial volume). Without a trachea in view (a scan below the carina, a crop) the
    lungs are split as they are, about the body's midline or the isocentre, and a warning says
    so. midline: (RAS x or None, source) from `lungs.midline_x` on these ``body`` and
    ``trachea`` when the caller has it (not computed again). Raises InputError when the lung
    mask is empty. notes: where the split's own doubt (`split_left_right`'s notes) goes, when
    not in the warnings returned."""
    warn: list[str] = []
    if trachea is None and find_airways:
        try:
            trachea, bronchi, _ = aw.airway_masks(ct, body)
        except InputError as e:
            warn.append(f"{e}; left and right lung split without removing the central airways "
                        "(a main bronchus may be given to the other lung)")
    if trachea is not None:
        tree = trachea if bronchi is None else trachea | bronchi
        lungs = lungs & ~airway_margin(ct, tree)
    mid, src = midline_x(ct, body, trachea) if midline is None else midline
    if src == "isocentre":
        warn.append("left/right judged from the scanner's isocentre (x = 0): no trachea in view "
                    "and the body cut at a side")
    elif src == "unknown":
        warn.append(NO_MIDLINE)
    left, right = split_left_right(ct, lungs, midline=mid, notes=warn if notes is None else notes)
    return left, right, mid, warn
