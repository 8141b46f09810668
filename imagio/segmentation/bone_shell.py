"""Bone is a closed shell: cortex around cancellous bone and marrow. A vessel's contrast is a lumen:
blood-pool HU inside a soft-tissue wall. Used by `bones.bone_mask` to tell the two apart where
their densities overlap.

Anatomy and physics:

- Cortical bone forms a continuous shell around the cancellous (trabecular) bone and the marrow
  of every bone: the vertebral body is a shell of compact bone (0.2-0.8 mm thick at the body's
  waist, thicker at the endplates) filled with trabecular bone; the ribs, sternum and long bones
  likewise (Gray's Anatomy, 42nd ed., "Bone"; Ritzel H et al., The thickness of human vertebral
  cortical bone and its changes in aging and osteoporosis, Calcif Tissue Int 1997;61:1-4). On CT
  the shell is the densest part of the bone (cortex 1.9 g/cm3, well above 1,000 HU at full
  volume; Schneider W et al., Phys Med Biol 2000;45:459-478), and cancellous bone (150-400 HU)
  is enclosed by it in the axial plane: a line from a point of cancellous bone meets the shell
  before it leaves the bone, in every direction (a nutrient foramen is a gap of ~1 mm).
- A contrast-filled vessel is a tube of blood whose density (arterial or portal-venous phase,
  150-500 HU: Bae KT, Intravenous contrast medium administration and scan timing at CT,
  Radiology 2010;256:32-61) overlaps cancellous bone. Its wall is soft tissue (40-80 HU): a line
  from its lumen leaves it through the wall, not through bone. Calcification of the wall
  (atherosclerotic plaque) is a thin curved plate at the lumen's edge, dense like cortex but
  covering only part of the circumference (Agatston AS et al., J Am Coll Cardiol 1990;15:827-832;
  intimal calcification of the aorta: Gray's Anatomy and any CT atlas). A lumen lying on a
  vertebral body (the aorta on the left anterolateral face of the thoracic and lumbar bodies)
  meets the body's cortex on that one side only.

Rule (`lumens`): among the bone candidates below cortical density, the thick parts (holding a ball
of radius ``blood_thick_mm``: lumens of >= 8 mm; the aorta is >= 20 mm, the venae cavae 15-25
mm) are decided per connected piece by how many of the four in-plane axis directions (left,
right, anterior, posterior in the array plane nearest to axial) meet denser-than-cortex-seed
tissue before leaving the candidates (`cortex_enclosure`). Cancellous bone is met by cortex in
most of them; a lumen in fewer than half (its calcified plates and a bone it lies on at most one
or two sides). The lumen, its partial-volume edge, and the plates lying at its edge (at least
half their voxels within one common-resolution voxel of it) are not bone.
"""

from __future__ import annotations

import contextlib

import numpy as np

from ..caching import ThreadKept
from .common import bbox_slices, components, dilate_mm, open_mm, rule

LUMEN_MIN_RADIUS_MM = rule("blood_thick_mm")  # the ball a lumen of >= 8 mm holds
ENCLOSED_DIRECTIONS = 2  # of 4: cancellous bone is met by cortex in more than half of them


def cortex_enclosure(inside: np.ndarray, cortex: np.ndarray, plane_axes) -> np.ndarray:
    """uint8 [k, j, i]: for each voxel, in how many of the four directions along the two array
    axes ``plane_axes`` (both signs) a voxel of ``cortex`` (bool [k, j, i]) comes before the first
    voxel outside ``inside`` (bool [k, j, i]; the face of the array counts as outside). A voxel of
    ``cortex`` counts 4 if it is inside. Vectorised: the index of the next cortex and the next
    outside voxel along each line by a reversed running minimum (numpy.minimum.accumulate)."""
    out = np.zeros(inside.shape, np.uint8)
    sl = bbox_slices(inside)
    if sl is None:
        return out
    ins, cor = inside[sl], cortex[sl] & inside[sl]
    cnt = np.zeros(ins.shape, np.uint8)
    for ax in plane_axes:
        n = ins.shape[ax]
        shape = [1, 1, 1]
        shape[ax] = n
        # indices 0..n: int16 on any line shorter than 2^15 voxels (half the memory of int32:
        # issue 20, the demo's peak; the same comparisons)
        idx = np.arange(n, dtype=np.int16 if n < 2 ** 15 - 1 else np.int32).reshape(shape)
        for flip in (False, True):
            # walking in -ax: reversed indices, so that the nearest voxel has the smallest value
            i2 = np.broadcast_to(n - 1 - idx if flip else idx, ins.shape)
            nc = np.where(cor, i2, n)
            ne = np.where(~ins, i2, n)
            # the first index at or beyond each voxel, walking in +ax (flip: -ax, indices reversed)
            nc = np.flip(np.minimum.accumulate(np.flip(nc, ax), axis=ax), ax) if not flip else \
                np.minimum.accumulate(nc, axis=ax)
            ne = np.flip(np.minimum.accumulate(np.flip(ne, ax), axis=ax), ax) if not flip else \
                np.minimum.accumulate(ne, axis=ax)
            cnt += (nc < ne).astype(np.uint8)
    out[sl] = cnt
    return out


def lumens(bone: np.ndarray, a: np.ndarray, cortex_hu: float, spacing_kji, s_ax: int,
           edge_mm: float, raw: np.ndarray | None = None,
           body: np.ndarray | None = None) -> np.ndarray:
    """Boolean [k, j, i]: the voxels of the bone candidates ``bone`` that are a contrast lumen, its
    partial-volume edge within ``edge_mm`` (mm) or a calcified plate at its edge (see the module
    docstring). ``a``: CT [k, j, i] (HU) at the bones' common resolution; ``cortex_hu``: the
    density above which a voxel is cortex (the bone seeds' threshold); ``s_ax``: the array axis
    nearest to superior (the other two span the axial plane). ``raw``: the CT [k, j, i] itself
    (HU), ``body``: the body mask; given both (and ``raw`` is not ``a``), a lumen must also be
    as homogeneous as soft tissue (`homogeneous`)."""
    sk = np.asarray(spacing_kji, float)
    cortex = bone & (a > cortex_hu)
    soft = bone & ~cortex
    core = open_mm(soft, LUMEN_MIN_RADIUS_MM, sk)
    none = np.zeros(bone.shape, bool)
    if not core.any():
        return none
    plane = [ax for ax in range(3) if ax != s_ax]
    enc = cortex_enclosure(bone, cortex, plane)
    lab, n, cnt = components(core, connectivity=26)
    mean = np.bincount(lab[core], weights=enc[core].astype(np.float64), minlength=n + 1) / np.maximum(cnt, 1)
    lum = mean < ENCLOSED_DIRECTIONS
    lum[0] = False
    if lum.any() and raw is not None and body is not None and raw is not a:
        lum &= homogeneous(lab, n, raw, a, body, sk)
    if not lum.any():
        return none
    lc = lum[lab]
    # the lumen's partial-volume edge: below cortex density, within edge_mm, reached from the
    # lumen without crossing cortex (a component of the grown region that holds lumen voxels)
    grown = (dilate_mm(lc, edge_mm, sk) & soft) | lc
    gl, gn, _ = components(grown, connectivity=6)
    hit = np.zeros(gn + 1, bool)
    hit[gl[lc]] = True
    hit[0] = False
    out = hit[gl]
    # calcified plates at the lumen's edge
    return out | at_the_edge(bone & ~out, out, edge_mm, sk)


def uncortexed_lumens(bone: np.ndarray, raw: np.ndarray, a: np.ndarray, lungs: np.ndarray,
                      spacing_kji, edge_mm: float) -> np.ndarray:
    """Boolean [k, j, i]: the 26-connected pieces of ``bone`` (bool [k, j, i]) that are a
    contrast-filled vessel with no cortex around it, for a field of view inside a lung
    (`body.lung_field_air`), where neither the blood pool's histogram mode
    (`bones.contrast_blood_band`: the view holds too little of the pool) nor the density of the
    cortex (`lumens`: the seed threshold is not raised above the pool) can be had.

    A piece is such a lumen when all hold (see the module docstring):
    1. it is thick: its core, the voxels deeper than ``blood_thick_mm`` (the ball of a lumen of
       >= 8 mm) from its surface, is not empty. A face of the view is not a surface (the vessel
       goes on beyond it);
    2. it has no cortex: its core is denser (median HU of ``raw``) than its surface layer, the
       voxels within ``edge_mm`` (one common-resolution voxel) of its surface. In bone the
       densest tissue is the cortical shell at the surface around cancellous bone; in a lumen the
       contrast fills the tube evenly and only the partial volume of the wall lowers its edge;
    3. it is homogeneous: the robust SD of its core's fine detail (``raw - a``, ``a`` the CT at
       the common resolution) is at most ``lumen_max_texture_ratio`` times that of the lung
       parenchyma in view (``lungs`` voxels below the body threshold, -500 HU, more than
       ``edge_mm`` inside the lungs; the core needs 10 voxels for its SD): blood is a fluid, its fine detail is noise; cancellous bone adds its trabeculae.
       The view holds no deep soft tissue to compare with (`homogeneous`); the parenchyma's fine
       detail is noise plus sub-resolution vessels, so it errs towards keeping bone.
    Measured (the chest CTA, 80 mm cubes centred on each lung, 1.5 mm; fov5): the right pulmonary
    artery's piece, 21.6 mL, core/surface median 515/475 HU, core fine-detail SD 15.4 HU against
    the parenchyma's 16.9; the left's thick piece, 8.2 mL, 542/534 HU, SD 14.0 against 17.5 (its
    thinner 7.4 mL branch, with no core to judge, is left to `bones.split_bones`' mediastinal
    rule). Ribs in those views hold no core (none is 8 mm thick) and are kept."""
    from .common import BODY_HU, _edt, erode_mm

    sk = np.asarray(spacing_kji, float)
    out = np.zeros(bone.shape, bool)
    sl = bbox_slices(bone)
    if sl is None:
        return out
    b = bone[sl]
    depth = _edt(b, sk, black_border=False)   # the array's face is not the piece's surface
    lab, n, _ = components(b, connectivity=26)
    core = b & (depth > LUMEN_MIN_RADIUS_MM)
    if not core.any():
        return out
    surface = b & (depth <= edge_mm)
    r = raw[sl].astype(np.float64)
    fine = r - a[sl]
    parenchyma = erode_mm(lungs, edge_mm, sk) & (a < BODY_HU)
    if parenchyma.sum() < 1000:
        return out
    limit = rule("lumen_max_texture_ratio") * robust_sd(raw[parenchyma].astype(np.float64) - a[parenchyma])
    lum = np.zeros(n + 1, bool)
    for i in np.unique(lab[core]):
        c, s = core & (lab == i), surface & (lab == i)
        lum[i] = (s.any() and np.median(r[c]) > np.median(r[s]) and c.sum() >= 10
                  and robust_sd(fine[c]) <= limit)
    out[sl] = lum[lab]
    return out


def robust_sd(v: np.ndarray) -> float:
    """Standard deviation from the interquartile range (IQR / 1.349; an edge or a speck in the
    sample is an outlier, not spread)."""
    q25, q75 = np.percentile(v, [25, 75])
    return float(q75 - q25) / 1.349


def homogeneous(lab: np.ndarray, n: int, raw: np.ndarray, a: np.ndarray, body: np.ndarray,
                spacing_kji) -> np.ndarray:
    """Boolean [n + 1] per label of ``lab`` (int [k, j, i], 0 = none): True where the region is as
    homogeneous as the scan's deep soft tissue: the robust SD of its fine detail (``raw - a``:
    the CT [k, j, i] minus its blur to the common resolution ``a``) at most
    ``lumen_max_texture_ratio`` times that of soft tissue (``body`` voxels whose blurred HU lies
    in ``resolution.SOFT_TISSUE_RANGE_HU``, more than one common-resolution voxel inside such
    tissue). Blood is a fluid: its fine detail is noise, as in muscle and liver; cancellous bone
    adds the texture of its trabeculae (segmentation_rules.json). No soft tissue to compare
    with: every region counts as homogeneous."""
    from scipy import ndimage

    from .common import erode_mm
    from .resolution import SOFT_TISSUE_RANGE_HU

    out = np.ones(n + 1, bool)
    lo, hi = SOFT_TISSUE_RANGE_HU
    f = 1
    while a.size / f ** 3 > 4_000_000:
        f += 1
    sub = (slice(None, None, f),) * 3
    tissue = erode_mm(body[sub] & (a[sub] > lo) & (a[sub] < hi), rule("bone_common_resolution_mm"),
                      np.asarray(spacing_kji, float) * f)
    if tissue.sum() < 1000:
        return out
    ref = robust_sd(raw[sub][tissue].astype(np.float64) - a[sub][tissue])
    if ref <= 0:
        return out
    limit = rule("lumen_max_texture_ratio") * ref
    for i, sl in enumerate(ndimage.find_objects(lab), start=1):
        if sl is not None:
            m = lab[sl] == i
            out[i] = robust_sd(raw[sl][m].astype(np.float64) - a[sl][m]) <= limit
    return out


def undiluted_lumen(dense: np.ndarray, trunk: np.ndarray, spacing_kji, radius_mm: float,
                    finest: bool = False) -> np.ndarray:
    """Boolean [k, j, i]: a contrast-filled vessel denser than the blood pool, followed from its
    trunk into its thinner branches: the 26-connected components of ``dense`` (bool [k, j, i]:
    tissue denser than the pool's band, i.e. undiluted contrast or cortex) opened by a ball of
    ``radius_mm`` (mm; at least one voxel) that hold a voxel of ``trunk`` (bool [k, j, i]: the
    thick lumen of that density joined to the blood pool's core, e.g. the superior vena cava and
    brachiocephalic vein on the injection side).

    Why: contrast is injected into an arm vein and reaches the heart undiluted through the
    axillary, subclavian and brachiocephalic veins and the superior vena cava (Bae KT,
    Radiology 2010;256:32-61: venous inflow; Gray's Anatomy, 42nd ed., "Root of the neck"), so
    on the injection side that vein is one continuous tube of contrast denser than the pool and
    as dense as cortex (> 1,000 HU), narrowing away from the heart; the thick-lumen rule
    (``blood_thick_mm``) keeps only its trunk. The tube's lumen is solid contrast from wall to
    wall, at least one common-resolution voxel wide (``radius_mm``: half of it) over its course,
    whereas the cortex of the ribs, scapula and vertebrae that it lies on or passes beside (the
    subclavian vein on the first rib, under the clavicle) is a 0.5-2 mm shell (Hostetler ZS et
    al., Comput Biol Med 2019;111:103330) that the ball does not fit in, so it does not carry
    the tube into the bone it touches. The chest CTA (1.5 mm): the right subclavian/axillary vein
    (29.7 mL above 1,200 HU) had 1,520 voxels labelled bone; this lumen holds 1,350 of them and
    50 bone-labelled voxels farther than one voxel from its > 1,200 HU part (its 700-800 HU rim).

    ``finest``: the ball holds at least one voxel of the finest axis instead of the coarsest (on a
    grid of thick slices, a ball one slice thick: in-plane discs). Why: on thick slices the ball
    of one slice's radius (5 mm at 5 mm slices) does not fit a 10-12 mm vein that runs within two
    slices (the brachiocephalic and subclavian veins run nearly in the axial plane), so the lumen
    stops at the trunk and the vein beyond is labelled bone (the chest CTA at 1.5 x 1.5 x 5 mm:
    12.9 mL of the 29.7 mL vein, no lumen beyond the trunk); the in-plane disc follows it, but
    also into rib and clavicle cortex that reads above the pool in a thick slice, so its lumen is
    a suspect to be warned of (`bones.thick_slice_note`), not removed from bone."""
    out = np.zeros(dense.shape, bool)
    if not trunk.any():
        return out
    sk = np.asarray(spacing_kji, float)
    r = max(float(radius_mm), 1.01 * float(np.min(sk) if finest else np.max(sk)))
    lab, n, _ = components(open_mm(dense, r, sk), connectivity=26)
    hit = np.zeros(n + 1, bool)
    hit[lab[trunk]] = True
    hit[0] = False
    return hit[lab]


def at_the_edge(bone: np.ndarray, lumen: np.ndarray, edge_mm: float, spacing_kji) -> np.ndarray:
    """Boolean [k, j, i]: the 26-connected components of ``bone`` (bool [k, j, i]) that lie at
    the edge of ``lumen`` (bool [k, j, i]): at least half of their voxels within ``edge_mm`` (mm)
    of it. A calcified plate in a vessel's wall, or the partial-volume rim of undiluted contrast
    left around a removed blood pool, is a thin shell on the lumen; a bone beside a vessel (a
    vertebral body under the aorta) has most of its volume away from it."""
    near = dilate_mm(lumen, edge_mm, spacing_kji)
    rl, rn, rc = components(bone, connectivity=26)
    edge = np.bincount(rl[bone & near], minlength=rn + 1) >= 0.5 * rc
    edge[0] = False
    return edge[rl]



def two_plane_cavities(bone: np.ndarray, voxel_ml: float, max_ml: float) -> np.ndarray:
    """Boolean [k, j, i]: marrow of any density (fatty marrow is -100 to 0 HU): the cavities not
    in ``bone`` (bool [k, j, i]) enclosed by it in at least two of the three orthogonal array
    planes, each (6-connected) of at most ``max_ml`` mL (``voxel_ml``: one voxel's volume). The
    spinal canal is a tube open along the superior-inferior axis (enclosed in axial slices only),
    so it stays open; a vertebral body or a rib's medulla is closed by cortex in two planes or
    more (Gray's Anatomy, 42nd ed., "Vertebral column", "Bone")."""
    from .common import fill_holes_per_slice

    two = sum((fill_holes_per_slice(bone, ax) & ~bone).astype(np.uint8) for ax in range(3)) >= 2
    if two.any():
        el, en, ec = components(two, connectivity=6)
        ok = ec * voxel_ml <= max_ml
        ok[0] = False
        two = ok[el]
    return two


def cancellous_in_ring(shell: np.ndarray, bone: np.ndarray, a: np.ndarray, marrow_hu: float,
                       spacing_kji, s_ax: int, margin_mm: float, canal_min_mm: float,
                       max_area_mm2: float) -> np.ndarray:
    """Boolean [k, j, i]: cancellous bone and red marrow enclosed by the cortical ring ``shell``
    (bool [k, j, i], e.g. the vertebrae closed over their foramina) in an axial slice, that
    ``bone`` (bool [k, j, i], every bone label) leaves out: the voxels of the 2-D holes of
    ``shell`` (per slice normal to array axis ``s_ax``, each hole smaller than ``max_area_mm2``)
    denser than ``marrow_hu`` (``a``: CT [k, j, i] at the bones' common resolution, HU) and
    farther than ``margin_mm`` (mm, in-plane) from the hole's soft tissue below that density:
    the spinal canal's CSF, cord and epidural fat (0-40 HU; -100 HU), whose partial-volume edge
    is left out with it. Soft-tissue patches narrower than ``canal_min_mm`` (equivalent
    diameter; the bony canal is >= 10 mm, Verbiest 1954) are noise in the marrow, not a canal.

    Why: a vertebral body is a cortical shell filled with cancellous bone (Gray's Anatomy, 42nd
    ed., "Vertebral column"), 80-300 HU on CT depending on age (lower in osteoporosis), which on
    a contrast scan lies below the bone threshold raised above the enhanced tissue; only the
    shell was labelled and a target inside the body was named 'body' (trial 14 M4, chest CTA:
    25 mL enclosed and unlabelled). The spinal canal is also enclosed in an axial slice (by the
    vertebral arch; where the basivertebral veins leave the body's posterior wall it joins the
    body's hole), so it is told apart by density, not by enclosure, and kept open with a margin.
    Vectorised per slice plane (fill_voids per slice, in-plane ball erosion and dilation)."""
    from scipy import ndimage

    from .common import erode_mm, fill_holes_per_slice, plane_structure

    sk = np.asarray(spacing_kji, float)
    sp2 = sk.copy()
    sp2[s_ax] = 1e6  # in-plane distances only: no distance is measured across slices
    filled = fill_holes_per_slice(shell, s_ax)
    holes = filled & ~shell
    # the closed shell's own voxels that are not bone count when deeper than margin_mm inside its
    # outline (cancellous bone the closing covered), not in a concavity of its outer surface
    box = bbox_slices(filled)
    if box is not None:
        deep = np.zeros(shell.shape, bool)
        # the image border is background too (edt's black border): one background layer
        deep[box] = erode_mm(np.pad(filled[box], 1), margin_mm, sp2)[1:-1, 1:-1, 1:-1]
        holes |= shell & deep
    holes &= ~bone
    if not holes.any():
        return holes
    ps = plane_structure(s_ax)
    plane = [ax for ax in range(3) if ax != s_ax]
    px = float(np.prod(sk[plane]))
    hl, hn = ndimage.label(holes, structure=ps)
    small = np.bincount(hl[holes], minlength=hn + 1) * px < max_area_mm2
    small[0] = False
    holes &= small[hl]
    hl = small = None   # (full-volume int32 maps, one at a time: issue 20)
    soft = holes & (a <= marrow_hu)
    sl, sn = ndimage.label(soft, structure=ps)
    wide = np.bincount(sl[soft], minlength=sn + 1) * px >= np.pi * (0.5 * canal_min_mm) ** 2
    wide[0] = False
    soft = wide[sl]
    sl = None
    # farther than margin_mm in-plane from that soft tissue
    return holes & (a > marrow_hu) & ~dilate_mm(soft, margin_mm, sp2)


def lung_hull_planes(lungs: np.ndarray, s_ax: int, spacing_kji, depth_mm: float) -> np.ndarray:
    """Boolean [k, j, i]: per array plane normal to ``s_ax`` (the plane nearest to axial), the
    voxels of the convex hull of ``lungs`` (bool [k, j, i]) in that plane that lie more than
    ``depth_mm`` (mm, in-plane) inside the hull's border. Between the two lungs this is the
    mediastinum: the region between the pleural sacs, from the sternum in front to the vertebral
    column behind (Gray's Anatomy, 42nd ed., "Mediastinum"); the sternum, ribs and scapulae lie
    on or outside the hull (the chest wall), the vertebral bodies at its back. Planes with fewer
    than 3 lung voxels are empty. scikit-image's ``convex_hull_image`` per plane (on the plane's
    lung box: `common.convex_hull_2d`).

    Within `keep_lung_hulls` a result is kept and a later call with equal ``lungs`` (compared
    voxel for voxel), axis, spacing and depth gets a copy of it instead of recomputing."""
    kept = _HULLS.entries
    if kept is None:
        return _lung_hull_planes(lungs, s_ax, spacing_kji, depth_mm)
    lungs = np.asarray(lungs, bool)
    key = (int(s_ax), tuple(float(s) for s in spacing_kji), float(depth_mm), lungs.shape)
    packed = np.packbits(lungs, axis=None)
    for k, p, hull in kept:
        if k == key and np.array_equal(p, packed):
            return np.unpackbits(hull, count=lungs.size).view(bool).reshape(lungs.shape)
    out = _lung_hull_planes(lungs, s_ax, spacing_kji, depth_mm)
    kept.append((key, packed, np.packbits(out, axis=None)))
    return out


_HULLS = ThreadKept(list)   # `keep_lung_hulls`: per thread, its results while in the context


@contextlib.contextmanager
def keep_lung_hulls():
    """Context in which `lung_hull_planes` keeps each result (per thread) for equal lungs, axis,
    spacing and depth; all dropped when the outermost context exits. Nestable. Issue 20: one
    rule-based segmentation (`rules.segment_masks`) computed the same hull twice, for the blood
    pool in `bones.bone_mask` (`bones.pool_mediastinum`) and for `bones.split_bones`' mediastinal
    pieces (398 per-plane convex hulls and distance maps, 0.8 CPU-s each time on the 1.5 mm demo
    phantom). Held meanwhile: the lungs and the hull, packed 8 voxels a byte."""
    with _HULLS.keep():
        yield


def _lung_hull_planes(lungs: np.ndarray, s_ax: int, spacing_kji, depth_mm: float) -> np.ndarray:
    """`lung_hull_planes`, computed."""
    from .common import _edt, convex_hull_2d

    out = np.zeros(lungs.shape, bool)
    sk = np.asarray(spacing_kji, float)
    plane_sp = np.delete(sk, s_ax)
    box = bbox_slices(lungs)
    if box is None:
        return out
    for k in range(box[s_ax].start, box[s_ax].stop):
        idx = [slice(None)] * 3
        idx[s_ax] = k
        lung = lungs[tuple(idx)]
        if lung.sum() < 3:
            continue
        hull = convex_hull_2d(lung)
        out[tuple(idx)] = _edt(hull, plane_sp, black_border=True) > depth_mm
    return out


def mediastinum_region(lungs: np.ndarray, s_ax: int, spacing_kji, edge_mm: float,
                       vertebrae: np.ndarray | None = None, a_mm: np.ndarray | None = None,
                       behind_mm: float = 10.0, hull: np.ndarray | None = None) -> np.ndarray:
    """Boolean [k, j, i]: the mediastinum as `mediastinal_pieces` reads it: more than ``edge_mm``
    (mm) inside the lungs' (bool [k, j, i]) per-plane convex hull (`lung_hull_planes`, or
    ``hull`` when given: not modified) and, with ``vertebrae`` and ``a_mm``, not more than
    ``behind_mm`` behind the most anterior vertebra voxel of each plane that holds one (the back
    of the visceral compartment; see `mediastinal_pieces` for the sources)."""
    deep = lung_hull_planes(lungs, s_ax, spacing_kji, edge_mm) if hull is None else hull.copy()
    if vertebrae is not None and a_mm is not None and vertebrae.any():
        other = tuple(ax for ax in range(3) if ax != s_ax)
        front = np.where(vertebrae, a_mm, -np.inf).max(axis=other)  # per plane; -inf: none
        shape = [1, 1, 1]
        shape[s_ax] = -1
        deep &= a_mm >= front.reshape(shape) - behind_mm
    return deep


def mediastinal_pieces(rest: np.ndarray, skeleton: np.ndarray, lungs: np.ndarray, s_ax: int,
                       spacing_kji, edge_mm: float, vertebrae: np.ndarray | None = None,
                       a_mm: np.ndarray | None = None, behind_mm: float = 10.0,
                       hull: np.ndarray | None = None) -> np.ndarray:
    """Boolean [k, j, i]: the 26-connected pieces of ``rest`` (bool [k, j, i]: dense tissue
    that is neither vertebra nor rib) that lie in the mediastinum, away from the skeleton: at
    least half of their voxels more than ``edge_mm`` (mm) inside the lungs' per-plane convex
    hull (`lung_hull_planes`), and none within ``edge_mm`` of ``skeleton`` (bool [k, j, i]: the
    vertebrae and ribs). With ``vertebrae`` (bool [k, j, i]) and ``a_mm`` (float [k, j, i] or
    broadcastable to it: `common.ras_ramp`, the world anterior coordinate of each voxel, mm), the region stops ``behind_mm`` behind the most
    anterior vertebra voxel of each plane that holds one: the back of the visceral compartment
    (descending aorta, azygos vein) is 1 cm behind the anterior margin of the vertebral bodies,
    and behind it the paravertebral compartment holds the rib heads and necks (ITMIG: Carter BW
    et al., J Thorac Oncol 2014;9(9 Suppl 2):S97-S101; the value is planning_defaults.json
    ``warnings.mediastinum_behind_vertebra_mm``).

    Why: the mediastinum holds the heart, great vessels, trachea, oesophagus, thymus, lymph
    nodes and nerves, and no bone (Gray's Anatomy, 42nd ed., "Mediastinum"; its bony borders,
    the sternum and the vertebral column, are on the hull's border or part of the skeleton).
    Dense tissue there that is not joined to the skeleton's cortex is calcification (intimal
    plaque of the aortic arch and wall, coronary arteries, valves, lymph nodes: Agatston AS et
    al., J Am Coll Cardiol 1990;15:827-832) or undiluted contrast in a vein (the superior vena
    cava and azygos arch on the side of the injection: Bae KT, Radiology 2010;256:32-61), not
    bone (issue 14: lung1's calcified aortic arch, LIDC-IDRI-0001's azygos arch).

    ``hull``: `lung_hull_planes` ``(lungs, s_ax, spacing_kji, edge_mm)`` when the caller has it
    (a second call on the same lungs: per-plane convex hulls and distance maps not recomputed);
    not modified."""
    out = np.zeros(rest.shape, bool)
    if not rest.any() or not lungs.any():
        return out
    sk = np.asarray(spacing_kji, float)
    deep = mediastinum_region(lungs, s_ax, sk, edge_mm, vertebrae, a_mm, behind_mm, hull)
    rl, rn, rc = components(rest, connectivity=26)
    inside = np.bincount(rl[rest & deep], minlength=rn + 1) >= 0.5 * rc
    if skeleton.any():
        touch = np.bincount(rl[rest & dilate_mm(skeleton, edge_mm, sk)], minlength=rn + 1) > 0
        inside &= ~touch
    inside[0] = False
    return inside[rl]
