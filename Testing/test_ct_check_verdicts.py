"""`ct_check.hu_problem` keeps its answer per image (issue 20: the rule-based segmentation and
each one-click lesion with its check clicks checked the same CT 16 times in `imagio demo`,
0.3-0.5 CPU-s each). Truth: the answer is `ct_check._hu_problem`'s (the judgement itself) for
every image, kept or not; a new copy of the same values is judged once; any change of what the
judgement reads (a value written in place, the affine, DICOM Modality, the reader's padding flag)
is judged again, never answered from an older image."""

import numpy as np
from conftest import phantom_once

from imagio import ct_check
from imagio.volume import Volume


def _counting(monkeypatch):
    calls = []
    inner = ct_check._hu_problem

    def judged(vol):
        calls.append(1)
        return inner(vol)

    monkeypatch.setattr(ct_check, "_hu_problem", judged)
    monkeypatch.setattr(ct_check, "_VERDICTS", {})
    return calls


def _copy(vol, array=None, ijk_to_ras=None, meta=None):
    return Volume(np.array(vol.array if array is None else array), np.array(vol.ijk_to_ras if ijk_to_ras is None
                                                                            else ijk_to_ras),
                  vol.name, dict(vol.labels), meta=dict(vol.meta if meta is None else meta))


def test_the_same_ct_is_judged_once_and_any_change_again(monkeypatch):
    ct = phantom_once(spacing=3.0, seed=0).ct
    calls = _counting(monkeypatch)
    first = ct_check.hu_problem(ct)
    assert first is None and len(calls) == 1                      # a CT in HU
    assert ct_check.hu_problem(_copy(ct)) is None                 # a new copy of the same values
    assert ct_check.hu_problem(ct) is None
    assert len(calls) == 1

    # in place: stored as HU + 1024, the same array object
    a = np.array(ct.array)                                        # the same values, a new object
    vol = _copy(ct, array=a)
    assert ct_check.hu_problem(vol) is None and len(calls) == 1
    vol.array += 1024
    why = ct_check.hu_problem(vol)
    assert len(calls) == 2 and why is not None and "HU + 1024" in why
    assert why == ct_check._hu_problem(_copy(vol))                 # (counted: 3)

    # the other things it reads: Modality, the padding flag, the affine
    mr = ct_check.hu_problem(_copy(ct, meta={**ct.meta, "Modality": "MR"}))
    assert mr is not None and "Modality MR" in mr and len(calls) == 4   # (the direct judgement above counted)
    ct_check.hu_problem(_copy(ct, meta={**ct.meta, "padding_set_to_air": True}))
    assert len(calls) == 5
    big = np.array(ct.ijk_to_ras, float)
    big[:3, :3] *= 10.0                                          # 30 mm voxels: not a CT's
    assert ct_check.hu_problem(_copy(ct, ijk_to_ras=big)) == ct_check._hu_problem(_copy(ct, ijk_to_ras=big))
    assert len(calls) == 7


def test_kept_answers_are_bounded_and_equal_the_judgement(monkeypatch):
    ct = phantom_once(spacing=3.0, seed=0).ct
    calls = _counting(monkeypatch)
    vols = [_copy(ct, array=ct.array + np.int16(100 * n)) for n in range(ct_check.VERDICTS_KEPT + 2)]
    got = [ct_check.hu_problem(v) for v in vols]
    assert len(ct_check._VERDICTS) == ct_check.VERDICTS_KEPT
    assert got == [ct_check._hu_problem(v) for v in vols]
    n = len(calls)
    assert ct_check.hu_problem(vols[-1]) == got[-1] and len(calls) == n       # kept
    assert ct_check.hu_problem(vols[0]) == got[0] and len(calls) == n + 1     # dropped: judged again
