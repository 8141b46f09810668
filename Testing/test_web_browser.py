"""IMAGIO Web in a real browser: Playwright (PyPI) drives Debian's chromium (/usr/bin/chromium,
never a downloaded browser) against ``python -m imagio.web`` on the phantom. Screenshots of each
step go to $IMAGIO_SCREENSHOTS (default: the test's tmp folder)."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("IMAGIO_CHROMIUM", "/usr/bin/chromium")

sync_api = pytest.importorskip("playwright.sync_api")
pytest.importorskip("trame_slicer")
if not shutil.which(CHROMIUM):
    pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from _serve(tmp_path_factory.mktemp("web_out"))


def _serve(out, *args):
    """`python -m imagio.web ARGS --port P --out OUT` until the generator is closed: {"url", "out",
    "t0", "proc", "log"} once the server says it runs."""
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "imagio.web", *args, "--port", str(port), "--out", str(out)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, ready = [], threading.Event()

    def pump():
        for line in proc.stdout:
            lines.append(line)
            if "App running at" in line:
                ready.set()

    threading.Thread(target=pump, daemon=True).start()
    try:
        while not ready.wait(0.5):
            assert proc.poll() is None, "".join(lines[-30:])
        yield {"url": f"http://127.0.0.1:{port}/", "out": out, "t0": t0, "proc": proc, "log": lines}
    finally:   # also when the generator is closed (a test's own server) or the start failed
        proc.terminate()
        proc.wait(30)


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    d = Path(os.environ.get("IMAGIO_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def view_pixels(page, index: int) -> np.ndarray:
    from io import BytesIO

    from PIL import Image

    img = page.locator("img.image-display-area").nth(index)
    return np.asarray(Image.open(BytesIO(img.screenshot())).convert("L"), dtype=float)


def wait_text(page, selector: str, pattern: str, timeout_s: float = 120.0) -> str:
    end = time.time() + timeout_s
    while time.time() < end:
        text = page.inner_text(selector)
        if re.search(pattern, text):
            return text
        page.wait_for_timeout(200)
    raise AssertionError(f"{selector} never matched {pattern!r}; last: {text!r}")


def progress_values(page, until, timeout_s: float = 60.0) -> list[float]:
    """aria-valuenow of the progress bar, polled until ``until(value)``."""
    seen, end = [], time.time() + timeout_s
    while time.time() < end:
        v = page.evaluate("(() => { const e = document.querySelector('#progress');"
                          " return e ? Number(e.getAttribute('aria-valuenow')) : -1; })()")
        seen.append(v)
        if until(v):
            return seen
        page.wait_for_timeout(50)
    raise AssertionError(f"progress never advanced: {seen[-5:]}")


def drag_tip(page, view: dict, dx: float = 20.0, dy: float = 10.0):
    """Press on the path's tip where the server says it is drawn in a view (render-window
    pixels scaled to the picture in the page) and drag it by (dx, dy) page pixels."""
    box = page.locator("img.image-display-area").nth(0).bounding_box()
    sx, sy = box["width"] / view["size"][0], box["height"] / view["size"][1]
    x, y = box["x"] + view["target"][0] * sx, box["y"] + view["target"][1] * sy
    page.mouse.move(x - 6, y - 3)
    page.wait_for_timeout(200)
    page.mouse.move(x, y, steps=3)
    page.wait_for_timeout(800)
    page.mouse.down()
    page.wait_for_timeout(200)
    for k in range(1, 11):
        page.mouse.move(x + dx * k / 10, y + dy * k / 10)
        page.wait_for_timeout(150)  # a busy server renders some of the moves only
    page.wait_for_timeout(300)
    page.mouse.up()


def path_ras(page):
    nums = [float(v) for v in re.findall(r"-?\d+\.\d+", page.inner_text("#path"))]
    assert len(nums) == 6, nums
    return np.array(nums[:3]), np.array(nums[3:])


def metrics_numbers(text: str) -> dict:
    return {"length_mm": float(re.search(r"length ([\d.]+) mm", text).group(1)),
            "closest_clearance_mm": float(re.search(r"closest \S+ (-?[\d.]+) mm", text).group(1)),
            "craniocaudal_deg": float(re.search(r"craniocaudal ([\d.]+) deg", text).group(1)),
            "feasible": text.startswith("Path: feasible")}


def test_planning_workstation_in_chromium(server, shots):
    from imagio import phantom
    from imagio.planning.evaluate import Evaluator
    from imagio.planning.problem import PlanningProblem

    figures = {}
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1500, "height": 900})
        # the first load waits for the trame server's first render: on a loaded 2-core machine
        # (the suite's other files beside it) that has taken more than Playwright's default 30 s
        page.goto(server["url"], timeout=180_000)
        # 1. the case: three MRML views with a picture in each
        wait_text(page, "#status", "Choose the target")
        # the browser tab names IMAGIO and the case, not trame's default (new-user trial 50 L3)
        page.wait_for_function("document.title.startsWith('IMAGIO')", timeout=30000)
        assert page.title() == "IMAGIO: phantom", page.title()
        page.wait_for_function("Array.from(document.querySelectorAll('img.image-display-area'))"
                               ".filter(i => i.naturalWidth > 0).length >= 3", timeout=120000)
        figures["first_picture_s"] = time.perf_counter() - server["t0"]
        # the phantom (liver, lungs, a lung nodule): every procedure's section is offered
        assert page.locator("#ablation-box").is_visible() and page.locator("#bronchoscopy-box").is_visible()
        page.wait_for_timeout(1500)
        page.screenshot(path=str(shots / "1_case.png"))
        for i in range(3):
            px = view_pixels(page, i)
            assert px.std() > 10 and (px > 40).mean() > 0.02, f"view {i} looks blank (std {px.std():.1f})"

        # 2. plan with a progress bar; Cancel stops it and adds nothing
        page.click("#plan")
        seen = progress_values(page, until=lambda v: v > 0)
        page.click("#cancel")
        wait_text(page, "#status", "cancelled by the user")
        assert page.locator("#proposals tr.proposal-row").count() == 0
        assert max(seen) > 0

        # ... and again to the end: ranked proposals with their metrics
        t0 = time.perf_counter()
        page.click("#plan")
        page.wait_for_selector("#proposals tr.proposal-row", timeout=180000)
        figures["click_to_proposals_s"] = time.perf_counter() - t0
        lines = page.inner_text("#proposals").splitlines()
        head, rows = lines[0].split("\t"), [r.split("\t") for r in lines[1:]]
        assert len(rows) >= 3
        ok, why = head.index("ok"), head.index("ranked last for")
        assert all(r[ok] == "true" for r in rows)
        # best first, except that a proposal with a finding comes after every one without (and the
        # table says which finding)
        flagged = [r[why].strip() not in ("", "-") for r in rows]
        assert flagged == sorted(flagged)
        for f in (False, True):
            scores = [float(r[1]) for r, g in zip(rows, flagged) if g == f]
            assert scores == sorted(scores)
        first = wait_text(page, "#metrics", r"^Path: feasible")
        assert page.inner_text("#plan-warnings").startswith("WARNING: ")   # the plan's doubts are shown
        page.wait_for_timeout(1000)
        page.screenshot(path=str(shots / "2_proposals.png"))

        # 3. drag the tip in the axial view: the metrics change and match imagio.planning
        entry0, tip0 = path_ras(page)
        moved_at = None
        for attempt in range(3):  # a busy server may miss the hover that activates the point
            disp = json.loads(page.evaluate("document.querySelector('#path-display').textContent"))
            drag_tip(page, disp["0"])
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < 10 and np.allclose(path_ras(page)[1], tip0):
                page.wait_for_timeout(50)
            if not np.allclose(path_ras(page)[1], tip0):
                moved_at = time.perf_counter()
                break
        assert moved_at is not None, "the drag did not move the tip"
        figures["drag_to_metrics_in_page_s"] = moved_at - t0
        page.wait_for_timeout(1000)  # the last move's metrics
        entry1, tip1 = path_ras(page)
        assert np.allclose(entry1, entry0, atol=0.01), "the entry moved: the drag took the wrong point"
        # how far depends on how many of the moves a busy server rendered before the release;
        # that it moved at all is asserted above, what matters below is that metrics follow it
        assert np.linalg.norm(tip1 - tip0) > 0.3, "the drag did not move the tip"
        shown = metrics_numbers(page.inner_text("#metrics"))
        assert shown != metrics_numbers(first)
        page.screenshot(path=str(shots / "3_dragged_tip.png"))
        assert abs(shown["length_mm"] - np.linalg.norm(tip1 - entry1)) < 0.06
        ph = phantom.generate(spacing=2.0, seed=0)
        expected = Evaluator(PlanningProblem.build(ph.ct, ph.labels, "liver_tumor_1")).evaluate(entry1, tip1)
        assert abs(shown["closest_clearance_mm"] - expected.closest_clearance_mm) < 0.1
        assert abs(shown["craniocaudal_deg"] - expected.craniocaudal_deg) < 0.1
        assert shown["feasible"] == bool(expected.feasible)
        figures["rescore_ms_server"] = float(re.search(r"in ([\d.]+) ms", page.inner_text("#rescore")).group(1))

        # 4. switch device: the zone, coverage and minimal ablative margin
        page.click("#device", force=True)
        items = page.locator(".v-overlay .v-list-item")
        items.first.wait_for(timeout=10000)
        assert items.count() >= 2
        items.nth(1).click()
        page.wait_for_timeout(500)
        page.click("#ablate")
        text = wait_text(page, "#ablation", r"tumour covered [<>\d.]+%.*minimal ablative margin -?[\d.]+ mm")
        device, setting = text.split()[:2]
        assert device != "emprint" or items.count() == 1
        # trial 95 F3: the zone is centred on the path's end as the CLI centres it on the target,
        # and the page says how far past it the probe's tip goes (or how far short it stays)
        from imagio.planning.ablation import get_device

        offset = get_device(device).setting(setting.rstrip(":")).centre_offset_mm
        full = re.search(r"advance the probe tip ([\d.]+) mm past it", text)
        short = re.search(r"advanced ([\d.]+) of ([\d.]+) mm past the target", text)
        assert full or short, text
        assert float((full or short).group(1 if full else 2)) == pytest.approx(offset)
        zone_short_mm = 0.0 if full else offset - float(short.group(1))
        page.wait_for_timeout(1000)
        page.screenshot(path=str(shots / "4_ablation_zone.png"))

        # 5. export: the PDF report and the scene for Slicer
        page.click("#export")
        wait_text(page, "#exported", r"report\.pdf and .*scene\.mrb", 180)
        pdf, mrb = server["out"] / "report.pdf", server["out"] / "scene.mrb"
        assert pdf.read_bytes()[:5] == b"%PDF-"
        with zipfile.ZipFile(mrb) as z:
            names = z.namelist()
        assert any(n.endswith(".mrml") for n in names) and any(n.endswith(".seg.nrrd") for n in names), names
        # the exported zone (slicer-core's own readers): centred on the path's end, or as far short
        # of it as the page said
        from imagio import mrml

        with zipfile.ZipFile(mrb) as z:
            z.extractall(server["out"] / "mrb")
        scene = mrml.load_scene(next((server["out"] / "mrb").rglob("*.mrml")))
        zone = [n for n in mrml.nodes_by_class(scene, "vtkMRMLModelNode") if n.GetName() == "Ablation zone 1"]
        paths = [n for n in mrml.nodes_by_class(scene, "vtkMRMLMarkupsLineNode") if n.GetName() == "Needle path"]
        assert len(zone) == 1 and len(paths) == 1
        b = [0.0] * 6
        zone[0].GetPolyData().GetBounds(b)
        e_path, t_path = (np.array(paths[0].GetNthControlPointPosition(i)) for i in (0, 1))
        u = (t_path - e_path) / np.linalg.norm(t_path - e_path)
        np.testing.assert_allclose(np.array(b).reshape(3, 2).mean(1), t_path - zone_short_mm * u, atol=0.3)
        # trial 96 F4: a hollow viscus in the zone is said on the page (the criterion no_hollow_viscus);
        # my count: the phantom's hollow-viscus voxel centres inside the exported zone surface (VTK's
        # vtkSelectEnclosedPoints), against the page's words
        import vtk

        from imagio.planning.ablation.criteria import is_hollow_viscus

        hollow = [v for v, n in ph.labels.labels.items() if is_hollow_viscus(n)]
        ras = ph.labels.kji_to_world(np.argwhere(np.isin(ph.labels.array, hollow)).astype(float))
        lo, hi = np.array(b).reshape(3, 2).T
        ras = ras[np.all((ras >= lo - 2.0) & (ras <= hi + 2.0), axis=1)]
        pts = vtk.vtkPoints()
        for p in ras:
            pts.InsertNextPoint(*map(float, p))
        probe = vtk.vtkPolyData()
        probe.SetPoints(pts)
        enclosed = vtk.vtkSelectEnclosedPoints()
        enclosed.SetInputData(probe)
        enclosed.SetSurfaceData(zone[0].GetPolyData())
        enclosed.Update()
        n_in = sum(enclosed.IsInside(i) for i in range(len(ras)))
        if n_in >= 2:     # clearly inside (two voxel centres): not met, named on the page
            assert "no hollow viscus in the zone: NOT MET" in text and "hydrodissection" in text, text
        elif n_in == 0 and "not verifiable" not in text:
            assert "no hollow viscus in the zone" not in text, text
        page.screenshot(path=str(shots / "5_exported.png"))

        # 6. bronchoscopic route to a lung nodule, then the fly-through moves the 3-D camera
        page.click("#route-plan")
        route = wait_text(page, "#route", r"(reaches the nodule|ends [\d.]+ mm from the nodule) at generation \d+", 180)
        assert route.split(":")[0] == "thin"
        page.wait_for_timeout(1500)
        before = view_pixels(page, 1)
        page.locator("#fly-box").scroll_into_view_if_needed()
        box = page.locator("#fly-box .v-slider-track").bounding_box()
        page.mouse.click(box["x"] + 0.5 * box["width"], box["y"] + box["height"] / 2)
        # the server renders and streams the new view: polled (a loaded machine took > 2.5 s)
        change, end = 0.0, time.time() + 60
        while change <= 10 and time.time() < end:
            page.wait_for_timeout(1000)
            change = float(np.abs(view_pixels(page, 1) - before).mean())
        assert change > 10, f"the fly-through did not move the 3-D camera (mean change {change:.2f})"
        page.screenshot(path=str(shots / "6_flythrough.png"))

        # 7. click the target in the axial view (place mode), plan to that point
        disp = json.loads(page.evaluate("document.querySelector('#path-display').textContent"))["0"]
        page.locator("#click-target").scroll_into_view_if_needed()
        page.click("#click-target")
        wait_text(page, "#status", "Click the target in a view")
        box = page.locator("img.image-display-area").nth(0).bounding_box()
        x = box["x"] + disp["target"][0] * box["width"] / disp["size"][0]
        y = box["y"] + disp["target"][1] * box["height"] / disp["size"][1]
        page.mouse.move(x, y, steps=3)
        page.wait_for_timeout(500)
        page.mouse.click(x, y)
        status = wait_text(page, "#status", r"Target point R,A,S -?[\d.]+,-?[\d.]+,-?[\d.]+")
        clicked = np.array([float(v) for v in re.search(r"R,A,S (\S+)\.", status).group(1).split(",")])
        _, tip_now = path_ras(page)
        assert np.linalg.norm(clicked - tip_now) < 3.0, (clicked, tip_now)  # where the click landed
        page.click("#plan")
        wait_text(page, "#status", r"candidate paths feasible; \d+ proposals", 180)
        assert page.locator("#proposals tr.proposal-row").count() >= 1
        page.screenshot(path=str(shots / "7_clicked_target.png"))
        browser.close()
    status = Path(f"/proc/{server['proc'].pid}/status")
    if status.exists():  # memory of this user's session process (Linux)
        kb = dict(ln.split(":", 1) for ln in status.read_text().splitlines() if ":" in ln)
        figures["session_peak_rss_mb"] = int(kb["VmHWM"].split()[0]) / 1024
    print("figures", json.dumps({k: round(v, 3) for k, v in figures.items()}))


def test_a_limb_case_offers_no_ablation_and_no_bronchoscopy(tmp_path_factory, shots):
    """New-user trial 96 F7: the sarcoma page of a thigh offered an ablation device and a
    bronchoscopy "Nodule" box. A limb case (quadriceps, GTV_Mass: `test_target_not_outline`'s
    synthetic case) hides both sections; the sarcoma biopsy stays."""
    from test_target_not_outline import _write_case

    case = tmp_path_factory.mktemp("thigh")
    _write_case(case, "labels.labels.json")
    run = _serve(case / "out", str(case / "ct.nii.gz"), "--labels", str(case / "labels.nii.gz"))
    srv = next(run)
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1500, "height": 900})
            page.goto(srv["url"], timeout=180_000)
            wait_text(page, "#status", "Choose the target")
            page.wait_for_timeout(1000)
            page.screenshot(path=str(shots / "limb_case.png"))
            assert page.locator("#sarcoma-plan").is_visible()
            assert not page.locator("#ablation-box").is_visible() and not page.locator("#device").is_visible()
            assert not page.locator("#bronchoscopy-box").is_visible() and not page.locator("#nodule").is_visible()
            browser.close()
    finally:
        run.close()
