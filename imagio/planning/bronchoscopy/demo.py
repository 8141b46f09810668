"""The demo's bronchoscopy step: every lung nodule of the phantom, with the rule-based airways."""

from __future__ import annotations

import json
from pathlib import Path

from ...outputs import write_text
from ...volume import Volume


def run(labels: Volume, nodules: list[str], out: Path, scene=None, scope: str = "thin", progress=None) -> dict:
    """Plan each nodule; writes bronch_<nodule>.json, flythrough_<first>.png; adds scene nodes."""
    from ...mrml.bronchoscopy import bronchoscopy_to_scene
    from .tunnel import lung_envelope
    from . import AIRWAY_NAMES, Target, airway_mask, extract_tree, plan
    from .flythrough import key_positions, render_strip

    if not nodules or not any(n in labels.labels.values() for n in AIRWAY_NAMES):
        return {}
    mask = airway_mask(labels)
    # the demo's synthetic patient may be on a coarse grid: planned anyway, with the warning
    tree = extract_tree(labels, mask, coarse_ok=True)
    lungs, vessels = lung_envelope(labels)
    out_doc = {"tree": tree.summary()}
    for k, name in enumerate(nodules):
        if progress:
            progress(k / len(nodules), f"bronchoscopic route to {name}")
        bp = plan(tree, Target.from_mask(labels, labels.mask(name)), scope, lungs=lungs, vessels=vessels, others=labels)
        doc = {"target": name, "tree": tree.summary(), **bp.to_dict()}
        f = out / f"bronch_{name}.json"
        write_text(f, json.dumps(doc, indent=1, default=float))
        entry = {"file": str(f), **bp.to_dict()["route"], "tunnels": len(bp.tunnels),
                 "tunnel_problem": bp.tunnel_problem}
        if k == 0 and bp.camera_positions is not None:
            idx = key_positions(bp.route.points, tree.branch_of[bp.route.point_ids], bp.camera_positions)
            entry["picture"] = str(render_strip(mask, labels.ijk_to_ras, bp.camera_positions, bp.camera_directions,
                                                idx, out / f"flythrough_{name}.png"))
        if scene is not None:
            bronchoscopy_to_scene(scene, tree, bp, prefix=name)
        out_doc[name] = entry
    return out_doc
