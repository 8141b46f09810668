"""One clearance per structure and proposal (new-user trial 100 F3): on lung1 with its rule-based
labels the report's trajectory table gave costal_cartilages 3.4 mm for proposal 1 (the exact
distance to its voxels, `PlanningMaps.structure_clearances`) and the warning "costal_cartilages at
3.0 mm, within 1 mm of the required clearance" (the score table's, interpolated on the planning
grid across 5 mm sections), with nothing saying which. The warning now gives the table's number,
and the scored one beside it, named, when they differ."""
import json
import re

from conftest import run_imagio, shared_case


def test_clearance_warning_quotes_the_proposals_own_clearance(tmp_path):
    ct = shared_case("pyradiomics-lung", "lung1_image.nrrd")
    seg = tmp_path / "seg.seg.nrrd"
    r = run_imagio("segment", ct, "--out", seg)
    assert r.returncode == 0, r.stderr
    import SimpleITK as sitk

    sitk.WriteImage(sitk.ReadImage(str(ct.with_name("lung1_label.nrrd"))), str(tmp_path / "nod.nii.gz"))
    (tmp_path / "nod.labels.json").write_text(json.dumps({"1": "lung_nodule_1"}))
    r = run_imagio("plan", ct, "--labels", seg, "--lesions", tmp_path / "nod.nii.gz",
                   "--target", "lung_nodule_1", "--out", tmp_path / "plan")
    assert r.returncode == 0, r.stderr
    plan = json.loads((tmp_path / "plan" / "plan.json").read_text())
    said = 0
    for w in plan["warnings"]:
        m = re.match(r"proposal (\d+): (\w+) at ([\d.]+) mm.*within [\d.]+ mm of the required clearance", w)
        if not m:
            continue
        said += 1
        p = plan["proposals"][int(m.group(1)) - 1]
        assert float(m.group(3)) == round(p["clearance_mm"][m.group(2)], 1), (w, p["clearance_mm"])
    assert said, "no clearance warning: the case no longer tests its wording"
