"""The patient's sides of world directions: which of right, left, anterior, posterior, superior,
inferior a RAS direction points to.

One definition for every part of the library that names a side in words: the planner's
truncated faces and padding edges (`planning.skin`, `planning.findings`), the one-click lesion's
faces and unmeasured neighbours (`segmentation.lesion`). It depends on world (RAS) directions
only, never on how an array stores its axes.
"""

from __future__ import annotations

import numpy as np

# (name, RAS axis, sign) in side-code order: code = 2 * axis + (component < 0)
DIRECTIONS = (("right", 0, 1), ("left", 0, -1), ("anterior", 1, 1), ("posterior", 1, -1),
              ("superior", 2, 1), ("inferior", 2, -1))
SIDE_NAMES = tuple(d[0] for d in DIRECTIONS)


def side_codes(normals_ras: np.ndarray) -> np.ndarray:
    """Index into ``DIRECTIONS`` (right, left, anterior, posterior, superior, inferior) of each
    direction (n, 3) or (3,) RAS (any length; an outward normal, an offset in mm): its dominant
    axis and that component's sign. Int array (n,)."""
    n = np.atleast_2d(np.asarray(normals_ras, float))
    a = np.argmax(np.abs(n), axis=1)
    return a * 2 + (n[np.arange(len(n)), a] < 0)


def side_of(normal_ras) -> str:
    """Anatomical side name of one direction (RAS, shape (3,)), as `planning.skin.Truncation.side`
    names it."""
    return SIDE_NAMES[int(side_codes(normal_ras)[0])]
