"""The IMAGIO Web workstation: one process per user session (trame's launcher starts one per
user; see README), one MRML scene, Slicer's views streamed as images (trame-rca).

The page is built in ``ui.py``, the panel's data in ``content.py``, the views in ``views.py``.
All work goes through ``imagio.mrml`` as in the Slicer modules: ``problem_from_nodes`` +
``planner.plan`` (worker thread) + ``plan_to_scene``, ``observe_path``, ``ablation_from_nodes`` /
``observe_ablation``, ``bronchoscopy_plan_from_nodes``, the rule-based segmenters through
``rule_inputs`` / ``add_rule_segments``.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..errors import ImagioError, InputError
from .content import (ablation_text, case_name, chosen_first, default_target, device_choices, nodule_choices,
                      page_title, procedure_sections, proposal_rows, scope_choices, setting_choices, target_choices)
from .ui import build_ui
from .views import layout_views, display_xy, planning_layouts, software_gl

# segments that hold the others (body wall layers): outlines only in the slices, hidden in 3-D
CONTAINER_SEGMENTS = ("body", "skin", "subcutaneous_fat", "skeletal_muscle", "muscle")
POINT = "clicked point"


class PlanningWorkstation:
    """trame server + trame-slicer SlicerApp + the planning state of one user."""

    def __init__(self, server=None, phantom_spacing: float = 2.0, ct_path: str | None = None,
                 labels_path: str | None = None, out_dir: str | None = None, ct_volume=None):
        from trame.app import get_server
        from trame_slicer.core import LayoutManager, SlicerApp
        from trame_slicer.rca_view import register_rca_factories

        self.server = server or get_server(client_type="vue3")
        self.state = self.server.state
        self.slicer_app = SlicerApp()
        self.scene = self.slicer_app.scene
        register_rca_factories(self.slicer_app.view_manager, self.server)
        self.layout_manager = LayoutManager(self.scene, self.slicer_app.view_manager, self.server)
        self.layout_manager.register_layout_dict(planning_layouts())
        self.ct = self.segmentation = self.plan = None
        self.path_node = None
        self._path_observer = None
        self.timings: dict[str, float] = {}
        self.phantom_spacing = phantom_spacing
        self.ct_path, self.labels_path = ct_path, labels_path
        self.ct_volume = ct_volume   # the CT at ct_path as `io.read_ct` read it (`cmd_web` checks it first)
        self.out_dir = Path(out_dir or "imagio_web_out")
        self.metrics = None
        self._ablation = None
        self._t_move = None
        self._target_node = None
        self._cancel = False
        self._plan_ids: dict = {}
        self.bronch = None
        self._init_state()
        build_ui(self)
        self.layout_manager.set_layout("IMAGIO planning")
        self._software_gl_setup()
        self.server.controller.on_server_ready.add_task(self._on_ready)

    # state and UI --------------------------------------------------------------------------
    def _init_state(self):
        s = self.state
        s.trame__title = page_title()   # the browser tab (trial 50 L3: trame's default)
        s.case_loaded = False
        s.targets = []
        s.target = None
        s.proposals = []
        s.selected_rank = 1
        s.metrics = ""
        s.plan_warnings = ""
        s.status = "Loading the case..."
        s.busy = False
        s.plan_seconds = None
        s.rescore_ms = None
        s.devices = []
        s.device = None
        s.settings = []
        s.setting = None
        s.ablation = ""
        s.exported = ""
        s.path_display = {}
        s.path_text = ""
        s.progress = 0
        s.nodules = []
        s.sections = {"ablation": True, "bronchoscopy": True}   # until a case says which apply
        s.nodule = None
        s.scopes = []
        s.scope = None
        s.route = ""
        s.fly_max = 0
        s.fly = 0
        s.sarcoma = ""

    def _software_gl_setup(self):
        """trame-slicer turns depth peeling on in the 3-D view; Mesa's software GL renders
        translucent surfaces black or not at all with it, so it is switched off there."""
        for view in self.slicer_app.view_manager.get_threed_views():
            if software_gl(view.render_window()):
                view.renderer().SetUseDepthPeeling(False)
                view.renderer().SetUseDepthPeelingForVolumes(False)
                print("IMAGIO Web: software OpenGL (Mesa): depth peeling off in the 3-D view", flush=True)

    # the job ---------------------------------------------------------------------------------
    async def _on_ready(self, **_):
        t0 = time.perf_counter()
        try:
            await self.load_case()
        except ImagioError as e:
            with self.state:
                self.state.status = f"Could not load the case: {e}"
                self.state.busy = False
            return
        self.timings["load_s"] = time.perf_counter() - t0

    async def in_worker(self, fn):
        """Run ``fn(progress)`` in a worker thread (numpy work only: no MRML, no VTK rendering)
        while the page shows its progress; ``progress`` returns False once Cancel is pressed,
        which imagio turns into errors.Cancelled."""
        import asyncio

        loop = asyncio.get_running_loop()
        self._cancel = False

        def progress(fraction, message):
            loop.call_soon_threadsafe(self._show_progress, fraction, message)
            return not self._cancel

        with self.state:
            self.state.busy = True
            self.state.progress = 0
        try:
            return await loop.run_in_executor(None, fn, progress)
        finally:
            with self.state:
                self.state.busy = False

    def _show_progress(self, fraction, message):
        with self.state:
            self.state.progress = round(100 * float(fraction))
            if message:
                self.state.status = message

    def on_cancel(self):
        self._cancel = True

    async def load_case(self):
        """The CT and its structures: a CT file or DICOM folder (+ label file, else the rule-based
        segmenters with a progress bar), or the digital patient."""
        from .. import io, mrml
        from ..mrml.sample import phantom_to_scene

        if not self.ct_path:
            _, self.ct, self.segmentation = phantom_to_scene(self.scene, spacing=self.phantom_spacing)
            self.show_case()
            return
        if str(self.ct_path).lower().endswith((".mrb", ".mrml")):
            self.load_scene_file(self.ct_path)
            self.show_case()
            return
        ct = self.ct_volume if self.ct_volume is not None else io.read_ct(self.ct_path, task="IMAGIO Web")
        self.ct = mrml.volume_to_node(ct, self.scene, Path(self.ct_path).name)
        if self.labels_path:
            self.segmentation, _ = mrml.labels_to_segmentation(io.read_labels(self.labels_path), self.scene,
                                                               reference_node=self.ct)
        else:
            from ..mrml.logic import add_rule_segments, rule_inputs
            from ..segmentation import segment

            structures = ("body", "bones", "lungs", "airways", "vessels")
            vol, organs = rule_inputs(self.ct, structures)
            labels = await self.in_worker(lambda progress: segment(vol, structures, progress=progress, organs=organs))
            self.segmentation = add_rule_segments(self.scene, self.ct, labels)
        self.show_case()

    def load_scene_file(self, path):
        """A Slicer scene (.mrb/.mrml, e.g. exported by IMAGIO Web or the modules): its first
        scalar volume is the CT, its first segmentation holds the structures."""
        if not self.slicer_app.io_manager.load_scene(path):
            raise InputError(f"{path}: not a readable Slicer scene")
        self.ct = self.scene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
        self.segmentation = self.scene.GetFirstNodeByClass("vtkMRMLSegmentationNode")
        if self.ct is None or self.segmentation is None:
            raise InputError(f"{path}: the scene needs a CT volume and a segmentation with the structures")

    def show_case(self):
        from ..mrml import segment_names

        self.state.trame__title = page_title(case_name(self.ct_path))

        dm = self.slicer_app.display_manager
        dm.show_volume_in_slice_background(self.ct)
        vd = self.ct.GetDisplayNode()
        if vd is not None:  # soft-tissue window (W 400, L 40 HU)
            vd.AutoWindowLevelOff()
            vd.SetWindowLevel(400.0, 40.0)
        self.segmentation.CreateClosedSurfaceRepresentation()
        d = self.segmentation.GetDisplayNode()
        if d is not None:
            d.SetOpacity3D(0.5)
            d.SetOpacity2DFill(0.2)
            seg = self.segmentation.GetSegmentation()
            for i in range(seg.GetNumberOfSegments()):
                if seg.GetNthSegment(i).GetName() in CONTAINER_SEGMENTS:
                    # the skin would hide everything in 3-D; in the slices these segments hold the
                    # organs, so their fills would stack over them and hide the CT's grey values
                    # (new-user trial 4: lung, mediastinum and vertebra drawn alike): outline only
                    d.SetSegmentVisibility3D(seg.GetNthSegmentID(i), False)
                    d.SetSegmentVisibility2DFill(seg.GetNthSegmentID(i), False)
        import slicer

        for view in self.slicer_app.view_manager.get_views():
            view.set_orientation_marker(slicer.vtkMRMLAbstractViewNode.OrientationMarkerTypeCube,
                                        slicer.vtkMRMLAbstractViewNode.OrientationMarkerSizeSmall)
            view.set_ruler(slicer.vtkMRMLAbstractViewNode.RulerTypeThin,
                           slicer.vtkMRMLAbstractViewNode.RulerColorWhite)
        for view in self.slicer_app.view_manager.get_slice_views():  # no CT planes hiding the 3-D scene
            view.set_visible_in_3d(False)
        dm.reset_views()
        names = target_choices(segment_names(self.segmentation))
        with self.state:
            self.state.targets = names
            self.state.target = default_target(names)
            self.state.case_loaded = True
            self.state.status = (f"{self.ct.GetName()}: {len(names)} structures. Choose the target and press Plan.")
            self.state.devices = device_choices()
            self.state.nodules = nodule_choices(names)
            self.state.sections = procedure_sections(segment_names(self.segmentation))
            self.state.nodule = self.state.nodules[0] if self.state.nodules else None
            self.state.scopes = scope_choices()
            self.state.scope = "thin" if "thin" in self.state.scopes else (self.state.scopes or [None])[0]
            self.state.device = self.state.devices[0]["value"] if self.state.devices else None

    def target_point_node(self):
        """The markups point the user clicks as the target (created on first use)."""
        if self._target_node is None:
            import slicer

            self._target_node = self.scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "Target")
            self._target_node.CreateDefaultDisplayNodes()
            self._target_node.AddObserver(slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent, self._on_target_clicked)
        return self._target_node

    def on_click_target(self):
        """Place mode: the next click in a slice or 3-D view is the target."""
        node = self.target_point_node()
        node.RemoveAllControlPoints()
        self.slicer_app.markups_logic.place_node(node)
        self.state.status = "Click the target in a view"

    def _on_target_clicked(self, caller=None, event=None):
        from ..mrml.planning import target_from_point_node

        ras = target_from_point_node(caller)
        with self.state:
            self.state.targets = [t for t in self.state.targets if t != POINT] + [POINT]
            self.state.target = POINT
            self.state.status = "Target point R,A,S " + ",".join(f"{v:.1f}" for v in ras) + ". Press Plan."

    def on_plan(self):
        """The Plan button: planning runs as its own task so that the page sees its progress
        (a trame trigger holds the state until it returns)."""
        from trame.app import asynchronous

        asynchronous.create_task(self.plan_task())

    async def plan_task(self):
        """Plan: the problem read from the nodes here, the search in a worker thread with a
        progress bar, the proposals and the editable path added to the scene here
        (imagio.mrml.planning: problem_from_nodes, planner.plan, plan_to_scene)."""
        from ..mrml.planning import plan_to_scene, problem_from_nodes
        from ..planning.planner import plan

        t0 = time.perf_counter()
        point = self.state.target == POINT
        try:
            problem = problem_from_nodes(self.ct, self.segmentation, None if point else self.state.target,
                                         self._target_node if point else None)
            result = await self.in_worker(lambda progress: plan(problem, progress=progress))
        except ImagioError as e:
            with self.state:
                self.state.status = f"Planning failed: {e}"
                self.state.plan_warnings = ""
            return
        self.remove_plan_nodes()
        ids = plan_to_scene(self.scene, result)
        self._plan_ids = ids
        self.timings["plan_s"] = time.perf_counter() - t0
        self.plan = result
        for pid in ids.get("proposals", []):  # ranks in the table, not overlapping labels in the views
            d = self.scene.GetNodeByID(pid).GetDisplayNode()
            d.SetPropertiesLabelVisibility(False)
            d.SetPointLabelsVisibility(False)
        if "path" in ids:
            self.path_node = self.scene.GetNodeByID(ids["path"])
            self.path_node.GetDisplayNode().SetPointLabelsVisibility(False)
            self.observe(self.path_node)
            best = result.proposals[0]
            self.set_path(best.entry_ras, best.target_ras)
        with self.state:
            self.state.proposals = proposal_rows(result)
            self.state.selected_rank = 1
            self.state.ablation = ""  # the previous plan's zone went with its path
            self.state.plan_seconds = round(self.timings["plan_s"], 2)
            # every doubt of the plan, as plan.json and the report list them (trial 21: none shown)
            self.state.plan_warnings = "\n".join(f"WARNING: {w}" for w in result.warnings)
            n = int(result.table.feasible.sum())
            self.state.status = (f"{n} of {len(result.table)} candidate paths feasible; "
                                 f"{len(result.proposals)} proposals in {self.timings['plan_s']:.1f} s")
            if not result.feasible:
                from ..planning.planner import format_report

                self.state.metrics = format_report(result.report)

    def remove_plan_nodes(self):
        """A new plan replaces the previous one's proposals, path, risk map and table in the views."""
        if self.path_node is not None:
            for tag in (self._path_observer, self._ablation):
                if tag is not None:
                    self.path_node.RemoveObserver(tag)
            self._path_observer = self._ablation = None
        for v in self._plan_ids.values():
            for node_id in (v if isinstance(v, list) else [v]):
                node = self.scene.GetNodeByID(node_id)
                if node is not None:
                    self.scene.RemoveNode(node)
        self._plan_ids = {}
        self.path_node = None

    def observe(self, node):
        """Re-score ``node`` live (imagio.mrml.planning.observe_path); a first observer (higher
        priority) stamps the move so that the re-score time is measured server side."""
        import slicer

        from ..mrml.planning import observe_path

        if self._path_observer is not None:
            node.RemoveObserver(self._path_observer)
        node.AddObserver(slicer.vtkMRMLMarkupsNode.PointModifiedEvent, self._stamp, 10.0)
        self._path_observer = observe_path(node, self.plan.evaluator, self.on_metrics)

    def _stamp(self, caller=None, event=None):
        self._t_move = time.perf_counter()

    def on_metrics(self, m):
        """Live metrics of the editable path (called by imagio.mrml.planning.observe_path)."""
        state = "feasible" if m.feasible else "NOT feasible: " + ", ".join(m.violations)
        self.metrics = m
        if self._t_move is not None:
            self.timings.setdefault("rescore_ms", []).append(1000 * (time.perf_counter() - self._t_move))
        with self.state:
            self.state.rescore_ms = round(self.timings["rescore_ms"][-1], 1) if self._t_move else None
            self.state.path_display = self.path_display()
            from ..mrml.planning import line_points

            e, tip = line_points(self.path_node)
            self.state.path_text = ("entry R,A,S " + ",".join(f"{v:.2f}" for v in e) + " -> tip R,A,S "
                                    + ",".join(f"{v:.2f}" for v in tip))
            self.state.metrics = (f"Path: {state}; length {m.length_mm:.1f} mm; closest {m.closest_structure} "
                                  f"{m.closest_clearance_mm:.1f} mm; craniocaudal {m.craniocaudal_deg:.1f} deg")

    def on_select_proposal(self, selected_rank=None, **_):
        """Move the editable path onto the chosen proposal (re-scored by its observer)."""
        if self.plan is None or self.path_node is None or not selected_rank:
            return
        m = self.plan.proposals[int(selected_rank) - 1]
        self.set_path(m.entry_ras, m.target_ras)

    def set_path(self, entry_ras, target_ras):
        """Move the editable path (as a drag in a view does); returns the re-score time (ms)."""
        t0 = time.perf_counter()
        self.path_node.SetNthControlPointPosition(0, *map(float, entry_ras))
        self.path_node.SetNthControlPointPosition(1, *map(float, target_ras))
        self.center_slices(target_ras)
        return 1000 * (time.perf_counter() - t0)

    def center_slices(self, ras):
        """Every slice view through ``ras`` (RAS mm), centred on it."""
        for view in self.slicer_app.view_manager.get_slice_views():
            self.view_node(view).JumpSliceByCentering(*map(float, ras))
        self.state.path_display = self.path_display()

    def path_display(self) -> dict:
        """Where the editable path's entry and tip are drawn in each view: {view index: {"entry":
        [x, y], "target": [x, y], "size": [w, h]}} in render-window pixels, y from the top (what
        a mouse in the page needs, after scaling to the picture's size)."""
        if self.path_node is None:
            return {}
        from ..mrml.planning import line_points

        out = {}
        pts = dict(zip(("entry", "target"), line_points(self.path_node)))
        for i, view in enumerate(self.views()):
            w, h = view.render_window().GetSize()
            node = self.view_node(view)
            item = {"size": [w, h], "kind": node.GetClassName()}
            for k, ras in pts.items():
                item[k] = display_xy(view, node, ras)
            out[str(i)] = item
        return out

    def view_node(self, view):
        """The MRML view node (vtkMRMLSliceNode or vtkMRMLViewNode) of a trame-slicer view."""
        return self.scene.GetNodeByID(view.get_view_node_id())

    def views(self):
        """The views in page order (axial, 3-D, coronal)."""
        vm = self.slicer_app.view_manager
        order = [d.singleton_tag for d in layout_views()]
        by_tag = {v.get_singleton_tag(): v for v in vm.get_views()}
        return [by_tag[t] for t in order if t in by_tag]

    # ablation, export -----------------------------------------------------------------------
    def on_device(self, device=None, **_):
        rows = setting_choices(device) if device else []
        with self.state:
            self.state.settings = rows
            self.state.setting = rows[0]["value"] if rows else None

    def on_ablation(self):
        """Zone of the chosen device/setting on the editable path, coverage and minimal margin,
        followed live while the path moves (imagio.mrml.ablation)."""
        from ..mrml.ablation import ablation_from_nodes, chosen_setting, observe_ablation, placement_note, probe_note
        from ..planning.ablation import get_device
        from ..planning.ablation.commands import setting_choice_words

        if self.state.target == POINT:
            self.state.ablation = "Ablation needs the tumour as a segment: choose it as the target and plan"
            return
        dev = get_device(self.state.device)
        try:
            result, ids, ctx = ablation_from_nodes(self.scene, self.ct, self.segmentation, self.path_node,
                                                   self.state.target, dev.name, self.state.setting, plan=self.plan)
        except ImagioError as e:
            self.state.ablation = f"Ablation failed: {e}"
            return
        zone = self.scene.GetNodeByID(ids["zones"][0])
        if self._ablation is not None:
            self.path_node.RemoveObserver(self._ablation)
        # the placed probe's own setting and position, followed live (IMAGIO may have chosen another
        # than asked to keep hollow viscera out: said in the note)
        setting, shift = chosen_setting(result)
        choice = setting_choice_words(result.hollow_viscus, result.device)
        live = (f"{choice}; " if choice else "") + probe_note(setting, live=True)
        self._ablation = observe_ablation(self.path_node, ctx, setting, dev.name, dev.modality, zone, None,
                                          lambda c: self.on_coverage(c, live, setting.id), shift_mm=shift)
        self.on_coverage(result.coverage, placement_note(result), setting.id)

    def on_coverage(self, c, note: str = "", setting: str | None = None):
        """The page's ablation line (`content.ablation_text`) for coverage ``c`` of the placed
        probe's own ``setting`` (default the panel's)."""
        self.state.ablation = ablation_text(self.state.device, setting or self.state.setting, c, note)
        self.state.flush()

    def on_route(self):
        """Bronchoscopic route to the nodule (imagio.mrml.bronchoscopy): airway tree, route,
        tunnels, fly-through camera path; the fly-through slider then drives the 3-D camera."""
        from ..mrml.bronchoscopy import bronchoscopy_plan_from_nodes as bronchoscopy_from_nodes

        t0 = time.perf_counter()
        try:
            plan, nodes = bronchoscopy_from_nodes(self.scene, self.ct, self.segmentation, self.state.nodule, None,
                                                  self.state.scope)
        except ImagioError as e:
            self.state.route = f"Route failed: {e}"
            return
        self.timings["route_s"] = time.perf_counter() - t0
        self.bronch = plan
        r = plan.route
        reach = ({True: "reaches the nodule", None: "reaches the nodule in the airway mask, UNVERIFIED on the CT"}
                 .get(r.reached_said, f"ends {r.remaining_mm:.1f} mm from the nodule"))
        tunnels = (f"; {len(plan.tunnels)} tunnel(s)" if plan.tunnels else
                   (f"; {plan.tunnel_problem}" if plan.tunnel_problem else ""))
        doubts = plan.all_warnings   # the same doubts as bronch.json, never fewer
        self.state.route = (f"{r.scope}: {reach} at generation {r.generation}, route {r.length_mm:.0f} mm"
                            f"{tunnels} ({self.timings['route_s']:.1f} s)"
                            + "".join(f"\nWARNING: {w}" for w in doubts))
        n = 0 if plan.camera_positions is None else len(plan.camera_positions)
        self.state.fly_max = max(0, n - 1)
        self.state.fly = 0

    def on_sarcoma(self):
        """Sarcoma core-needle biopsy of the chosen target segment (imagio.mrml.sarcoma): cores,
        entry to tattoo, default incision, viable tumour segment, rules table."""
        from ..mrml.sarcoma import sarcoma_plan_from_nodes
        from ..planning.planner import format_report

        try:
            sp, _ = sarcoma_plan_from_nodes(self.scene, self.ct, self.segmentation, self.state.target)
        except ImagioError as e:
            self.state.sarcoma = f"Sarcoma biopsy failed: {e}"
            return None
        if not sp.feasible:
            self.state.sarcoma = "No compliant tract: " + (sp.failure or format_report(sp.plan.report))
            return sp
        c0 = sp.to_dict()["sarcoma"]["cores"][0]
        bad = [k for k, v in c0["rules"].items() if v["met"] is False]
        self.state.sarcoma = (f"{len(sp.cores)} cores from entry R,A,S " + ",".join(f"{v:.1f}" for v in sp.entry_ras)
                              + f" (tattoo); tract {c0['length_mm']} mm in {', '.join(sp.involved) or 'no compartment'}; "
                              + ("rules met" if not bad else "VIOLATED: " + ", ".join(bad))
                              + (f"; {len(sp.warnings)} warning(s)" if sp.warnings else ""))
        return sp

    def on_fly(self, fly=0, **_):
        """Endoluminal view: the 3-D camera at fly-through position ``fly`` looking along the route."""
        import numpy as np

        if self.bronch is None or self.bronch.camera_positions is None:
            return
        i = int(min(max(0, int(fly)), len(self.bronch.camera_positions) - 1))
        pos = np.asarray(self.bronch.camera_positions[i], float)
        d = np.asarray(self.bronch.camera_directions[i], float)
        up = np.cross(d, [1.0, 0.0, 0.0])
        up = up / np.linalg.norm(up) if np.linalg.norm(up) > 1e-6 else np.array([0.0, 1.0, 0.0])
        for view in self.slicer_app.view_manager.get_threed_views():
            view.set_ruler(0)
            view.set_render_mode_to_perspective()
            cam = view.get_camera_node()
            if cam is None:
                continue
            cam.SetPosition(*pos)
            cam.SetFocalPoint(*(pos + 20.0 * d))
            cam.SetViewUp(*up)
            cam.SetViewAngle(70.0)
            cam.ResetClippingRange()
            view.schedule_render()

    def on_export(self):
        """The report (PDF + HTML) of the plan with the chosen path, and the scene as .mrb."""
        from ..mrml import node_to_volume, segmentation_to_labels
        from ..report import build_report

        self.out_dir.mkdir(parents=True, exist_ok=True)
        doc = chosen_first(self.plan.to_dict(), self.metrics.to_dict() if self.metrics is not None else None)
        ct = node_to_volume(self.ct)
        labels = segmentation_to_labels(self.segmentation, reference=ct)
        html_path, pdf = build_report(doc, self.out_dir / "report.pdf", ct, labels)
        mrb = self.out_dir / "scene.mrb"
        self.slicer_app.io_manager.save_scene(mrb)
        self.state.exported = f"{pdf} and {mrb}"
        return pdf, mrb


def main(argv=None):
    import argparse
    import sys

    from ..errors import ImagioError
    from .commands import add_arguments, cmd_web

    ap = argparse.ArgumentParser(prog="python -m imagio.web", description=__doc__.splitlines()[0])
    add_arguments(ap)
    try:
        return cmd_web(ap.parse_args(argv))
    except ImagioError as e:
        print(f"imagio web: error: {e}", file=sys.stderr)
        return 2
