"""New-user trial 105: `imagio segment` on an image where no thin bone lies near the lungs (a T1
MR mapped to HU by a gamma curve) ended in a traceback (numpy: zero-size array to reduction
operation minimum, in `bones.bone_segments` via `rib_pieces`) instead of a result."""
import numpy as np

from imagio.segmentation.bones import bone_segments


def test_no_thin_bone_gives_no_segment():
    seg, n = bone_segments(np.zeros((0, 3), np.int64), np.zeros(0, np.int64), (1.0, 0.8, 0.8))
    assert n == 0 and seg.shape == (0,)
    # the counts the callers take of it stay well-formed
    assert np.bincount(seg, minlength=n + 1).tolist() == [0]


def test_one_bar_is_one_segment():
    p = np.array([[5, 5, i] for i in range(2, 20)])
    seg, n = bone_segments(p, np.ones(len(p), np.int64), (1.0, 1.0, 1.0))
    assert n >= 1 and len(np.unique(seg)) == 1
