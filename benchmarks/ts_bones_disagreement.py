"""Where `rules.segment_masks`' bones disagree with the TotalSegmentator example's reference
(example_ct_sm, 3 mm; issue 14): per structure the reference covered, the missed voxels' HU and
depth, the extra voxels' HU and distance to the reference, and the best Dice any single HU
threshold on the one-voxel band around our mask reaches. Run:
``PYTHONPATH=. python -m benchmarks.ts_bones_disagreement``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy import ndimage

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "totalsegmentator-example"


def main(d: Path = DATA) -> None:
    from imagio import io
    from imagio.segmentation import rules
    from imagio.segmentation.common import dice

    ct = io.read_image(d / "example_ct_sm.nii.gz")
    seg = io.read_image(d / "example_seg.nii.gz").array
    names = {int(k): v for k, v in json.loads((d / "labels_total_v2.json").read_text(encoding="utf-8")).items()}
    sel = lambda *p: np.isin(seg, [k for k, v in names.items() if v.startswith(p)])  # noqa: E731
    m, _ = rules.segment_masks(ct, ["body", "bones", "lungs"])
    ours = m["vertebrae"] | m["ribs"] | m["bone"] | m["costal_cartilages"]
    ref = sel("rib_", "vertebrae_", "sternum", "costal")
    a, sp = ct.array, ct.spacing_kji
    print(f"Dice {dice(ours, ref):.4f}  ours {ours.sum()}  reference {ref.sum()} voxels")
    depth = ndimage.distance_transform_edt(ref, sampling=sp)
    out = ndimage.distance_transform_edt(~ref, sampling=sp)
    for name, p in (("ribs", "rib_"), ("vertebrae", "vertebrae_"), ("sternum", "sternum"), ("costal cartilage", "costal")):
        r = sel(p)
        if not r.any():
            continue
        fn = r & ~ours
        print(f"{name}: covered {(r & ours).sum() / r.sum():.3f}, missed {fn.sum()} voxels, HU p10/50/90 "
              f"{np.percentile(a[fn], [10, 50, 90]).round()}, on the reference's outer voxel layer {(depth[fn] <= sp.max() + 0.01).mean():.2f}")
    fp = ours & ~ref
    print(f"extra {fp.sum()} voxels, HU p10/50/90 {np.percentile(a[fp], [10, 50, 90]).round()}, "
          f"within one voxel of the reference {(out[fp] <= sp.max() + 0.01).mean():.2f}")
    for k in ("vertebrae", "ribs", "bone", "costal_cartilages"):
        print(f"  our {k}: {m[k].sum()} voxels, {(m[k] & ref).sum() / max(m[k].sum(), 1):.3f} inside the reference")
    core = ndimage.binary_erosion(ours)
    band = ndimage.binary_dilation(ours) & ~core
    best = max((dice(core | (band & (a > t)), ref), t) for t in range(20, 260, 10))
    print(f"best single HU threshold on the one-voxel band: Dice {best[0]:.4f} at {best[1]} HU; "
          f"the band chosen voxel by voxel as the reference: {dice(core | (band & ref), ref):.4f}")


if __name__ == "__main__":
    main()
