"""docs/sarcoma_biopsy.png and docs/sarcoma_viable.png: the sarcoma biopsy on the thigh phantom, as
the README shows it, made with the command-line tools a user runs:

    imagio phantom OUT/phantom --anatomy thigh --spacing 2.5
    imagio plan OUT/phantom/ct.nii.gz --labels OUT/phantom/labels.nii.gz --target sarcoma_1 \
        --procedure sarcoma-biopsy --out OUT/plan

sarcoma_biopsy.png: the plan's axial picture (compartments coloured) next to its 3D view.
sarcoma_viable.png: the sagittal plane through the tumour's centre: the tumour (yellow), the
planner's viable map (cyan), the phantom's true necrotic core (red, dashed; never seen by the
planner) and the cores projected (entry x, fired tip o, specimen solid). Prints the report's main
rows as Markdown for the README. Run: ``python docs/make_sarcoma_figure.py [OUT]``.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def side_by_side(paths, out, height=420):
    from PIL import Image

    ims = [Image.open(p).convert("RGB") for p in paths]
    ims = [im.resize((round(im.width * height / im.height), height), Image.LANCZOS) for im in ims]
    canvas = Image.new("RGB", (sum(im.width for im in ims), height), "white")
    x = 0
    for im in ims:
        canvas.paste(im, (x, 0))
        x += im.width
    canvas.quantize(colors=96, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)


def viable_picture(out_dir: Path, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from imagio import io
    from imagio.report import _plane_grid, slice_figure

    ct = io.read_image(out_dir / "phantom" / "ct.nii.gz")
    lab = io.read_labels(out_dir / "phantom" / "labels.nii.gz")
    nec = io.read_labels(out_dir / "phantom" / "truth_necrosis.nii.gz")
    via = io.read_labels(out_dir / "plan" / "viable_tumour.seg.nrrd")
    geo = json.loads((out_dir / "phantom" / "geometry.json").read_text(encoding="utf-8"))
    doc = json.loads((out_dir / "plan" / "plan.json").read_text(encoding="utf-8"))
    c = np.asarray(geo["tumour"]["center_ras"], float)
    u, v = np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0])
    fig, ax = slice_figure(ct, None, c, u, v, title="sagittal through the tumour: viable map vs true necrosis",
                           half_mm=70.0)
    pts, s = _plane_grid(c, u, v, 70.0, 0.5)
    ext = (s[0], s[-1], s[0], s[-1])
    tum = lab.sample(pts, order=0) == {n: k for k, n in lab.labels.items()}["sarcoma_1"]
    for m, colour, ls in ((tum, "#ffff00", "-"), (via.sample(pts, order=0) > 0, "#00ffff", "-"),
                          (nec.sample(pts, order=0) > 0, "#ff3030", "dashed")):
        if m.any():
            ax.contour(m, levels=[0.5], colors=[colour], linewidths=1.2, linestyles=ls, extent=ext, origin="lower")
    for k, core in enumerate(doc["sarcoma"]["cores"]):
        e = np.asarray(doc["sarcoma"]["tattoo_entry"]["ras"], float) - c
        t, f = np.asarray(core["target_ras"], float) - c, np.asarray(core["fire_from_ras"], float) - c
        ax.plot([e @ u, f @ u], [e @ v, f @ v], color="#20e0ff", lw=0.8, ls=":")
        ax.plot([f @ u, t @ u], [f @ v, t @ v], color="#20e0ff", lw=2.0)
        ax.plot([t @ u], [t @ v], "o", color="#ffff00", ms=3)
    ax.plot([e @ u], [e @ v], "x", color="#20e0ff", ms=6, mew=1.5)
    ax.set_title("sagittal, tumour centre: cyan viable map, red dashed TRUE necrosis,\n"
                 "yellow tumour; cores projected (specimen solid, o fired tip)", fontsize=8)
    fig.savefig(path)
    plt.close(fig)


def report_markdown(doc: dict) -> str:
    s = doc["sarcoma"]
    v = s["viable"]
    lines = [f"- tumour {s['tumour']}: occupies {', '.join(s['involved_compartments'])}; viable map: "
             f"{v['viable_ml']} of {v['tumour_ml']} mL ({v['viable_pct']}%) above {v['threshold_hu']} HU "
             f"({v['method']}: necrosis {v['levels_hu'].get('necrosis')} HU, solid {v['levels_hu'].get('solid')} HU)",
             f"- entry to tattoo: RAS {s['tattoo_entry']['ras']} mm; " + "; ".join(
                 f"{d['distance_mm']} mm from the {k.replace('_', ' ')} ({abs(d['along_limb_mm'])} mm "
                 f"{'proximal' if d['along_limb_mm'] > 0 else 'distal'} along the limb)"
                 for k, d in s["tattoo_entry"]["landmarks"].items()),
             f"- incision: {s['incision']['source']}, entry within {s['incision']['tolerance_mm']} mm", "",
             "| core | target RAS (mm) | tract (mm) | depth in viable (mm) | specimen not viable | compartments crossed | rules |",
             "|---|---|---|---|---|---|---|"]
    for i, c in enumerate(s["cores"]):
        met = [k for k, r in c["rules"].items() if r["met"] is True]
        lines.append(f"| {i + 1} | {c['target_ras']} | {c['length_mm']} | {c['depth_mm']} | "
                     f"{c['specimen_nonviable_pct']}% | {', '.join(c['compartments_crossed']) or 'none (skin, fat, fascia, tumour)'} | "
                     f"{len(met)}/{len(c['rules'])} met |")
    return "\n".join(lines)


def main(out=None) -> int:
    from imagio.cli import main as imagio

    out = Path(out or tempfile.mkdtemp(prefix="imagio_sarcoma_"))
    if not (out / "phantom" / "ct.nii.gz").exists():
        assert imagio(["phantom", str(out / "phantom"), "--anatomy", "thigh", "--spacing", "2.5"]) == 0
    if not (out / "plan" / "plan.json").exists():
        assert imagio(["plan", str(out / "phantom" / "ct.nii.gz"), "--labels", str(out / "phantom" / "labels.nii.gz"),
                       "--target", "sarcoma_1", "--procedure", "sarcoma-biopsy", "--out", str(out / "plan"),
                       "--quiet"]) == 0
    side_by_side([out / "plan" / "plan_compartments_axial.png", out / "plan" / "plan.png"],
                 ROOT / "docs" / "sarcoma_biopsy.png")
    viable_picture(out, out / "viable.png")
    side_by_side([out / "viable.png"], ROOT / "docs" / "sarcoma_viable.png")
    print(report_markdown(json.loads((out / "plan" / "plan.json").read_text(encoding="utf-8"))))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
