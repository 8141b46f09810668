"""One prepared run for a lent GPU machine (issue 20's GPU goal, issue 17's deep-path time).

Parts (command-line words; all by default):
- ``engine``: IMAGIO's nnU-Net-compatible engine against nnU-Net v2's own predictor on CUDA
  (bench_engine's model: random-weight 3 mm PlainConvUNet, 118 classes, patch 96^3, on the
  phantom at 1.5 mm), twice (the first includes CUDA/cuDNN start-up), then ours on the CPU;
  rows: time (baseline nnU-Net), peak GPU memory, fraction of identical labels.
- ``scoring``: ``score_paths`` for 10^5 and 10^6 paths on the 3 mm and 1 mm phantoms, torch on
  the device against numpy (the reference) in the same run: time, ratio, and agreement (fraction
  of paths with the same feasibility / violation bits / nearest structure; largest slack,
  clearance and score differences); the torch path's one-time setup (nearest-structure maps,
  upload) as its own row.
- ``parity``: where the engine's labels differ from nnU-Net's on CUDA: nnU-Net once, then ours
  with its defaults (fp16 autocast, fp16 accumulator, interpolate export), with fp32 throughout,
  and with nnU-Net's per-class export; each against nnU-Net and against ours in fp32, so the
  part of the difference that is fp16 rounding at near-ties of a random-weight model's logits is
  told apart from a difference of method.
- ``deep``: the deep nodule path (``detect_deep``) on a 512 x 512 x 300 CT at 0.7 x 0.7 x 1.25 mm
  with a random-weight model shaped like TotalSegmentator's lung_nodules (1.5 mm, patch 128^3).

Rows go to ``$OUT/gpu_rows.json`` as they come (a run stopped at its limit keeps what it had).
``--device cpu --small`` (or ``DEV=cpu SMALL=1``) runs the same code on the CPU with small sizes
(a smoke test before spending device time; no CUDA needed). ``benchmarks/gpu_check.sh`` is the
device command; the packages the device image lacks travel as one archive (see that script).
Measured figures: docs/GPU.md."""
import argparse, json, os, sys, time, tempfile
from pathlib import Path
import numpy as np, torch
ap = argparse.ArgumentParser(description="prepared GPU checks (see module doc)")
ap.add_argument("parts", nargs="*", choices=["engine", "scoring", "parity", "deep"],
                help="default: engine, scoring, deep")
ap.add_argument("--device", default=os.environ.get("DEV", "cuda"), help="torch device (default cuda)")
ap.add_argument("--small", action="store_true", default=bool(os.environ.get("SMALL")),
                help="small sizes (a CPU smoke test of the script)")
args = ap.parse_args()
if args.device.startswith("cuda") and not torch.cuda.is_available():
    print("gpu_check: CUDA is not available here (use --device cpu --small for a CPU smoke test)", file=sys.stderr)
    sys.exit(2)
OUT = Path(os.environ.get("OUT", "/tmp/out")); OUT.mkdir(exist_ok=True)
rows = []
DEV = args.device; SMALL = args.small
def emit(**r):
    rows.append(r); print(json.dumps(r), flush=True)
    (OUT / "gpu_rows.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
emit(name="device", value=torch.cuda.get_device_name(0) if DEV == "cuda" else "cpu", torch=torch.__version__, cpus=os.cpu_count())
sys.path.insert(0, str(Path.cwd()))
part = args.parts or ["engine", "scoring", "deep"]   # "parity" on request

if "engine" in part:
    from benchmarks import bench_engine as be
    from imagio import io, phantom
    from imagio.segmentation.engine import synthetic
    tmp = Path(tempfile.mkdtemp())
    t0 = time.perf_counter()
    folder = synthetic.make_model_folder(tmp / "model", labels=be.LABELS, patch_size=(96, 96, 96),
                                         spacing=(3.0, 3.0, 3.0), features=(32, 64, 128, 256, 320))
    ph = phantom.generate(spacing=3.0 if SMALL else 1.5, seed=0)
    ct_path = tmp / "ct.nii.gz"; io.write_image(ph.ct, ct_path)
    emit(name="engine setup (phantom 1.5 mm + model folder)", value=time.perf_counter() - t0, unit="s")
    for rep in range(1 if SMALL else 2):   # first run includes cudnn autotune / lazy init; second is steady
        ours = be._run("ours", folder, ct_path, tmp / "ours.npy", DEV, 16)
        ref = be._run("nnunet", folder, ct_path, tmp / "ref.npy", DEV, 16)
        a, b = np.load(tmp / "ours.npy"), np.load(tmp / "ref.npy")
        same = float((a == b).mean()) if a.shape == b.shape else 0.0
        tag = f"cuda run {rep + 1}, phantom 1.5 mm {tuple(ph.ct.shape)}, 3 mm model, 118 classes"
        emit(name=f"engine predict time ({tag})", value=ours["seconds"], unit="s", baseline=ref["seconds"],
             ratio=ref["seconds"] / ours["seconds"])
        if ours["peak_gpu_mib"]:
            emit(name=f"engine peak GPU memory ({tag})", value=ours["peak_gpu_mib"], unit="MiB",
                 baseline=ref["peak_gpu_mib"], ratio=ref["peak_gpu_mib"] / ours["peak_gpu_mib"])
        emit(name=f"engine identical labels vs nnU-Net ({tag})", value=same, unit="fraction",
             classes_present=int(len(np.unique(b))))
    ours_cpu = be._run("ours", folder, ct_path, tmp / "ours_cpu.npy", "cpu", 16)
    c = np.load(tmp / "ours_cpu.npy")
    emit(name="engine ours cpu (16 threads) for the same input", value=ours_cpu["seconds"], unit="s",
         baseline=ours["seconds"], identical_labels_cuda_vs_cpu=float((c == a).mean()))

if "scoring" in part:
    # numpy (the reference) against torch on DEV, same paths, same process: 3 mm and 1 mm
    # phantoms, 10^5 and 10^6 paths (--small: 3 mm, 10^3 and 10^4). The one-time device setup
    # (the nearest-structure voxel maps, `PlanningMaps.nearest_map`, and the upload) is its own row.
    from imagio import phantom
    from imagio.planning import PlanningProblem
    from imagio.planning.candidates import skin_candidates
    from imagio.planning.distance_maps import precompute
    from imagio.planning.scoring import score_paths
    sync = (lambda: torch.cuda.synchronize()) if DEV.startswith("cuda") else (lambda: None)
    for sp in ((3.0,) if SMALL else (3.0, 1.0)):
        t0 = time.perf_counter()
        ph = phantom.generate(spacing=sp, seed=0)
        les = next(l for l in ph.lesions if l.kind == "liver_tumor")
        prob = PlanningProblem.build(ph.ct, ph.labels, les.name)
        maps = precompute(prob)
        cand = skin_candidates(maps, prob.target.point_ras, prob.needle.length_mm, 1.0)
        emit(name=f"scoring setup, {sp:g} mm phantom (phantom, maps, candidates)", value=time.perf_counter() - t0,
             unit="s", crop_voxels=int(maps.code.size), candidates=len(cand))
        score_paths(prob, maps, cand.entry_ras[:1000], cand.normal_ras[:1000], device="numpy")   # k-d trees, table
        sync(); t0 = time.perf_counter()
        score_paths(prob, maps, cand.entry_ras[:1000], cand.normal_ras[:1000], device=DEV)
        sync()
        emit(name=f"torch {DEV} one-time setup, {sp:g} mm phantom (nearest-structure maps + upload)",
             value=time.perf_counter() - t0, unit="s")
        rng = np.random.default_rng(0)
        for n in ((1_000, 10_000) if SMALL else (100_000, 1_000_000)):
            idx = rng.integers(0, len(cand), n)
            e = cand.entry_ras[idx] + rng.normal(0, 0.5, (n, 3)); nr = cand.normal_ras[idx]
            res = {}
            for dev in ("numpy", DEV):
                ts = []
                for _ in range(1 if (dev == "numpy" and n >= 1_000_000) else 2):
                    sync(); t0 = time.perf_counter(); tab = score_paths(prob, maps, e, nr, device=dev); sync()
                    ts.append(time.perf_counter() - t0)
                res[dev] = (min(ts), tab)
            (tn, a), (tc, b) = res["numpy"], res[DEV]
            emit(name=f"score {n:,d} paths, {sp:g} mm phantom: torch {DEV} (baseline numpy, same machine)",
                 value=tc, unit="s", baseline=tn, ratio=tn / tc,
                 feasible_agree=float((a.feasible == b.feasible).mean()),
                 violations_agree=float((a.violations == b.violations).mean()),
                 closest_agree=float((a.closest == b.closest).mean()),
                 max_abs_slack_diff_mm=float(np.max(np.abs(a.slack_mm - b.slack_mm))),
                 max_abs_clearance_diff_mm=float(np.max(np.abs(a.clearance_mm - b.clearance_mm))),
                 max_abs_score_diff=float(np.max(np.abs(a.score - b.score))), feasible=int(a.feasible.sum()))
            del res, a, b, tab
        del ph, prob, maps, cand

if "parity" in part:
    from benchmarks import bench_engine as be
    from imagio import io, phantom
    from imagio.segmentation.engine import synthetic
    tmp = Path(tempfile.mkdtemp())
    folder = synthetic.make_model_folder(tmp / "model", labels=be.LABELS, patch_size=(96, 96, 96),
                                         spacing=(3.0, 3.0, 3.0), features=(32, 64, 128, 256, 320))
    ph = phantom.generate(spacing=3.0 if SMALL else 1.5, seed=0)
    ct_path = tmp / "ct.nii.gz"; io.write_image(ph.ct, ct_path)
    ref = be._run("nnunet", folder, ct_path, tmp / "ref.npy", DEV, 16)
    variants = {"default (fp16 autocast, fp16 accumulator)": {},
                "fp32 (no autocast, fp32 accumulator)": {"autocast": "none", "accumulate": "float32"},
                "fp16, nnU-Net's per-class export": {"fast_export": False}}
    labs = {}
    for name, opt in variants.items():
        r = be._run("ours", folder, ct_path, tmp / "v.npy", DEV, 16, opt)
        labs[name] = np.load(tmp / "v.npy")
        emit(name=f"engine parity: ours {name}", value=r["seconds"], unit="s",
             identical_vs_nnunet=float((labs[name] == np.load(tmp / "ref.npy")).mean()))
    f32 = labs["fp32 (no autocast, fp32 accumulator)"]
    for name, lab in labs.items():
        emit(name=f"engine parity: ours {name} vs ours fp32", value=float((lab == f32).mean()), unit="fraction")
    emit(name="engine parity: nnU-Net (its CUDA autocast) vs ours fp32",
         value=float((np.load(tmp / "ref.npy") == f32).mean()), unit="fraction", nnunet_seconds=ref["seconds"])

if "deep" in part:
    from imagio.detection.deep import detect_deep
    from imagio.segmentation.engine import synthetic
    tmp = Path(tempfile.mkdtemp())
    folder = synthetic.make_model_folder(tmp / "nod", labels=("background", "lung", "lung_nodules"),
                                         patch_size=(128, 128, 128), spacing=(1.5, 1.5, 1.5),
                                         features=(32, 64, 128, 256, 320, 320))
    ct = synthetic.synthetic_ct((40, 64, 64) if SMALL else (300, 512, 512), (0.7, 0.7, 1.25), seed=0)
    for dev in ((DEV,) if SMALL else ("cuda", "cuda")):
        t0 = time.perf_counter()
        c = detect_deep(ct, model=str(folder), device=dev)
        if dev == "cuda": torch.cuda.synchronize()
        emit(name=f"deep nodule path, 512x512x300 CT (0.7x0.7x1.25 mm), 1.5 mm model patch 128, {dev}",
             value=time.perf_counter() - t0, unit="s", candidates=len(c),
             peak_gpu_mib=torch.cuda.max_memory_allocated() / 2**20 if DEV == "cuda" else None)
