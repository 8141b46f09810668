"""Detection on real nodules (../shared/data): each reference nodule is found within its radius
(the LUNA16 hit rule); the rank of the first hit and the false positives per scan are printed
(run with -s), not asserted. References and slabs: :mod:`imagio.detection.references` (full
chests cut to +-40 mm around the nodule to keep the runtime small; the LIDC cases are slabs
already, so the lung mask must cope with a volume that cuts the lungs). lung2 (a 45 mm mass on
the chest wall) and the perihilar mass of Lung-PET-CT-Dx are found by the juxta-pleural channel
(concavities of the lung outline), not by the dot filter."""

import numpy as np
import pytest

from imagio.detection import detect
from imagio.detection.references import real_cases

pytestmark = [pytest.mark.data, pytest.mark.slow]
NAMES = ["LIDC-IDRI-0001", "LIDC-IDRI-0003", "lung1", "lung2", "Lung_Dx-A0001"]


@pytest.fixture(scope="module")
def cases():
    from conftest import SHARED_DATA

    return {c[0]: c for c in real_cases(SHARED_DATA)} if SHARED_DATA.exists() else {}


@pytest.mark.parametrize("name", NAMES)
def test_reference_nodule_found(shared_data, cases, name):
    case = cases.get(name)
    if case is None:
        pytest.skip(f"{name} not in {shared_data}")
    _, ct, centre, diameter = case
    cands = detect(ct)
    d = np.array([np.linalg.norm(c.center_ras - centre) for c in cands])
    hit = d < diameter / 2.0
    rank = int(np.argmax(hit)) + 1 if hit.any() else None
    print(f"\n{name}: {len(cands)} candidates, nearest {d.min() if len(d) else np.nan:.1f} mm "
          f"(radius {diameter / 2:.1f}), first hit at rank {rank}, false positives {int((~hit).sum())}")
    assert hit.any(), (name, d.min() if len(d) else None)
