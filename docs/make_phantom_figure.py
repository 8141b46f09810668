"""docs/phantom_vs_cta.png: the realistic phantom (arterial phase, as a CTA) next to the real chest
CTA of ``../shared/data/totalsegmentator-chest-cta`` at the same anatomical levels, and both
rendered in 3-D by the same rule (surfaces of contrast-filled vessels and bone, HU > 180, and
of the aerated lung, HU < -400 inside the body).

Levels are found the same way in both CTs, from the aerated lung's craniocaudal extent: the
slice 72% of the way up from the lowest lung voxel (about the carina and pulmonary trunk) and
the one at 38% (the cardiac ventricles). Run: ``make phantom-figure`` (needs the shared data).
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from mpl_toolkits.mplot3d.art3d import Poly3DCollection  # noqa: E402
from scipy import ndimage  # noqa: E402
from skimage import measure  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CTA = ROOT.parent / "shared" / "data" / "totalsegmentator-chest-cta" / "chest_cta.nii.gz"
LEVELS = (0.72, 0.38)


def canonical(vol):
    """HU array [k, j, i] flipped so that i runs to the patient's left, j posterior, k superior
    (radiological display: patient's right on the image's left, anterior up); spacing (mm)."""
    a = vol.array
    d = vol.ijk_to_ras[:3, :3]
    if not np.allclose(d, np.diag(np.diag(d))):
        raise SystemExit("the figure needs an axis-aligned CT")
    s = np.diag(d)
    if s[0] > 0:
        a = a[:, :, ::-1]
    if s[1] > 0:
        a = a[:, ::-1, :]
    if s[2] < 0:
        a = a[::-1]
    return a, np.abs(s)


def lung_mask(hu):
    body = ndimage.binary_fill_holes(hu > -400, structure=np.ones((1, 3, 3)))
    air = (hu < -400) & body
    lab, n = ndimage.label(air)
    if n == 0:
        return air
    sizes = np.bincount(lab.ravel())[1:]
    keep = np.argsort(sizes)[::-1][:2] + 1
    return np.isin(lab, keep[sizes[keep - 1] > 0.1 * sizes.max()])


def levels(hu):
    ks = np.nonzero(lung_mask(hu).any(axis=(1, 2)))[0]
    lo, hi = ks.min(), ks.max()
    return [int(round(lo + f * (hi - lo))) for f in LEVELS]


def surface(ax, mask, spacing, color, alpha, step=2):
    if mask.sum() < 50:
        return
    m = mask[::step, ::step, ::step]
    verts, faces, _, _ = measure.marching_cubes(m.astype(np.float32), 0.5, spacing=tuple(spacing[::-1] * step))
    # verts in (k, j, i) mm -> plot x = i (patient left +), y = -j (anterior +), z = k
    v = verts[:, [2, 1, 0]] * np.array([1, -1, 1])
    mesh = Poly3DCollection(v[faces], alpha=alpha, linewidths=0)
    n = np.cross(v[faces][:, 1] - v[faces][:, 0], v[faces][:, 2] - v[faces][:, 0])
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-9
    shade = 0.45 + 0.55 * np.clip(np.abs(n @ np.array([0.3, 0.8, 0.5])), 0, 1)
    mesh.set_facecolor(np.c_[np.outer(shade, color), np.full(len(shade), alpha)])
    ax.add_collection3d(mesh)


def render3d(ax, hu, spacing, title):
    lungs = lung_mask(hu)
    ks = np.nonzero(lungs.any(axis=(1, 2)))[0]
    sl = slice(max(ks.min() - 15, 0), min(ks.max() + 10, hu.shape[0]))
    dense = (hu[sl] > 180)
    lab, n = ndimage.label(dense)
    if n:
        sizes = np.bincount(lab.ravel())[1:]
        dense = np.isin(lab, np.nonzero(sizes >= 200)[0] + 1)
    surface(ax, lungs[sl], spacing, np.array([0.55, 0.7, 0.95]), 0.18)
    surface(ax, dense, spacing, np.array([0.95, 0.85, 0.7]), 1.0, step=1)
    ext = np.array(hu[sl].shape)[::-1] * spacing
    ax.set_xlim(0, ext[0])
    ax.set_ylim(-ext[1], 0)
    ax.set_zlim(0, ext[2])
    ax.set_box_aspect(ext)
    ax.view_init(elev=8, azim=-90)
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)


def main(out=None) -> int:
    from imagio import io, phantom

    if not CTA.exists():
        print(f"missing {CTA}: the figure needs the shared chest CTA", file=sys.stderr)
        return 2
    ph = phantom.generate(1.5, seed=0, anatomy="realistic", phase="arterial", n_liver_tumors=0, n_lung_nodules=1)
    real = io.read_image(CTA)
    hu, sp = canonical(ph.ct)
    # the same display field of view as the real CTA (its i-j extent), centred on the body
    fov = np.array(real.shape[1:]) * np.abs(np.diag(real.ijk_to_ras[:3, :3]))[[1, 0]]
    jc, ic = (np.array(hu.shape[1:]) / 2).astype(int)
    hj, hi = (fov / sp[[1, 0]] / 2).astype(int)
    hu = hu[:, max(jc - hj, 0):jc + hj, max(ic - hi, 0):ic + hi]
    cases = [("phantom (realistic, arterial phase)", hu, sp),
             ("real chest CTA (TotalSegmentator test file)", *canonical(real))]
    fig = plt.figure(figsize=(12, 7.6))
    for r, (name, hu, sp) in enumerate(cases):
        for c, k in enumerate(levels(hu)):
            ax = fig.add_subplot(2, 3, 3 * r + c + 1)
            ax.imshow(hu[k], cmap="gray", vmin=-1000, vmax=600, aspect=sp[1] / sp[0])
            ax.set_title(f"{name}\nlevel {LEVELS[c]:.0%} of the lung height", fontsize=8)
            ax.axis("off")
        render3d(fig.add_subplot(2, 3, 3 * r + 3, projection="3d"), hu, sp, f"{name}: 3-D, HU > 180 and lungs")
    fig.tight_layout()
    out = Path(out or ROOT / "docs" / "phantom_vs_cta.png")
    fig.savefig(out, dpi=72)
    from PIL import Image

    Image.open(out).convert("RGB").quantize(128).save(out, optimize=True)  # small PNG for the README
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
