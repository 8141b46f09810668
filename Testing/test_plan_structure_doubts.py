"""New-user trial 79 (finding 2): at 5 mm slices `imagio segment` warned that 17.2 mL labelled bone
"may be a vein with undiluted contrast", but a plan whose proposal passed 2.8 mm from that 'bone'
(a vein would need 7.7 mm) said nothing of it in plan.json or the report. The doubt now travels
with the label map (`outline_doubts.structure_record`, in the .labels.json sidecar and the
.seg.nrrd header) and every plan whose proposals pass closer than the doubted structure's own
clearance would be says it (`outline_doubts.proposal_doubts`)."""

import numpy as np

from imagio import anatomy, io, phantom
from imagio.outline_doubts import structure_record
from imagio.planning.planner import plan
from imagio.planning.problem import PlanningProblem


def test_a_doubted_structure_near_the_proposals_is_said_and_survives_the_files(tmp_path):
    ph = phantom.generate(spacing=3.0, seed=0)
    lab, ct = ph.labels, ph.ct
    point = np.asarray([x for x in ph.lesions if x.kind == "lung_nodule"][0].center_ras, float)
    first = plan(PlanningProblem.build(ct, lab, point))
    assert first.proposals and not [w for w in first.warnings if "imagio segment said" in w]
    need = anatomy.get("great_vessels").margin_mm + first.problem.needle.widening_mm
    # the structure the proposals pass closest to (by their own clearances), if it were a vessel
    near = min(((c, n) for m in first.proposals for n, c in m.clearance_mm.items()
                if n in lab.labels.values() and anatomy.get(n).role != "target"), default=None)
    assert near is not None and near[0] < need, near
    name = near[1]
    said = f"bones: 1.0 mL of tissue labelled {name} may be a vein with undiluted contrast"
    lab.outline_doubts = {name: structure_record("great_vessels", [said])}
    for fname in ("l.nii.gz", "l.seg.nrrd"):   # the record survives both label formats
        back = io.read_labels(io.write_labels(lab, tmp_path / fname))
        assert back.outline_doubts[name] == lab.outline_doubts[name], fname
    result = plan(PlanningProblem.build(ct, back, point))
    which = [n for n, m in enumerate(result.proposals, 1) if m.clearance_mm.get(name, np.inf) < need]
    hit = [w for w in result.warnings if "imagio segment said may hold great_vessels" in w]
    assert which and len(hit) == 1, result.warnings
    assert said in hit[0] and f"proposal(s) {', '.join(map(str, which))} pass near {name} (" in hit[0]
    # where the record says the doubtful part lies, only proposals passing near it are named
    # (trial 80: a path 120 mm below the doubtful pieces was told of them); the clearances of the
    # plan are the same (the record changes no geometry)
    far = [list(point + [0.0, 0.0, 300.0]) + [10.0]]
    at = [list(point) + [1.0]]
    for pieces, said_any in ((far, False), (at, True)):
        back.outline_doubts = {name: structure_record("great_vessels", [said], pieces)}
        got = [w for w in plan(PlanningProblem.build(ct, back, point)).warnings if "imagio segment said" in w]
        assert bool(got) == said_any, (pieces, got)

