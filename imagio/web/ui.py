"""IMAGIO Web's page: the side panel (case, target, plan, proposals, ablation, export,
bronchoscopy) next to the views; every control is bound to the workstation's state and
callbacks (imagio.web.app.PlanningWorkstation)."""

from __future__ import annotations

from .content import PROPOSAL_COLUMNS


def build_ui(ws):
    """The trame page of workstation ``ws`` (vuetify 3 single page with a drawer)."""
    from trame.ui.vuetify3 import SinglePageWithDrawerLayout
    from trame.widgets import html
    from trame.widgets import vuetify3 as v3

    with SinglePageWithDrawerLayout(ws.server, full_height=True) as ui:
        ui.title.set_text("IMAGIO Web: needle planning")
        with ui.drawer as drawer:
            drawer.width = 420
            with v3.VContainer(classes="pa-2"):
                html.Div("{{ status }}", id="status", classes="text-body-2 mb-2")
                v3.VSelect(label="Target", items=("targets",), v_model=("target",), id="target",
                           density="compact", disabled=("!case_loaded",))
                v3.VBtn("Click the target in a view", id="click-target", click=ws.on_click_target,
                        block=True, density="compact", classes="mb-2", disabled=("!case_loaded || busy",))
                v3.VBtn("Plan", id="plan", click=ws.on_plan, color="primary", block=True,
                        disabled=("!case_loaded || !target || busy",), loading=("busy",))
                v3.VProgressLinear(model_value=("progress",), v_show=("busy",), classes="my-1", height=6,
                                   id="progress")
                v3.VBtn("Cancel", id="cancel", click=ws.on_cancel, v_show=("busy",), block=True,
                        density="compact", variant="outlined")
                html.Div("{{ metrics }}", id="metrics", classes="text-caption my-2")
                html.Div("{{ path_text }}", id="path", classes="text-caption")
                html.Div("{{ JSON.stringify(path_display) }}", id="path-display", style="display:none")
                with html.Table(id="proposals", classes="text-caption", style="width:100%",
                                v_show=("proposals.length",)):
                    with html.Tr():
                        for h in ("#", "score", "length mm", "closest", "clear. mm", "CC deg", "ok", "ranked last for"):
                            html.Th(h, style="text-align:left")
                    with html.Tr(v_for="p in proposals", key="p.rank", click="selected_rank = p.rank",
                                 style=("p.rank === selected_rank ? 'background:#dbe4ff' : ''",),
                                 classes="proposal-row"):
                        html.Td("{{ p.rank }}", style=("'border-left: 6px solid ' + p.color",))
                        for c in PROPOSAL_COLUMNS[1:]:
                            html.Td("{{ p.%s }}" % c)
                html.Div("re-scored in {{ rescore_ms }} ms", id="rescore", classes="text-caption",
                         v_show=("rescore_ms !== null",))
                html.Div("{{ plan_warnings }}", id="plan-warnings", classes="text-caption my-2 text-red-darken-3",
                         style="white-space: pre-line", v_show=("plan_warnings",))
                html.Div("3-D skin risk map: green (good) to red (poor) entries, dark grey infeasible, "
                         "light grey out of the needle's reach", classes="text-caption",
                         v_show=("proposals.length",))
                # a procedure's section shows when it applies to the case (content.procedure_sections;
                # new-user trial 96 F7: a thigh's page offered an ablation device and a Nodule box)
                with html.Div(id="ablation-box", v_show=("sections.ablation",)):
                    v3.VDivider(classes="my-2")
                    html.Div("Ablation", classes="text-subtitle-2")
                    v3.VSelect(label="Device", items=("devices",), v_model=("device",), id="device",
                               density="compact", item_title="title", item_value="value")
                    v3.VSelect(label="Setting", items=("settings",), v_model=("setting",), id="setting",
                               density="compact", item_title="title", item_value="value")
                    v3.VBtn("Ablation zone", id="ablate", click=ws.on_ablation, block=True,
                            disabled=("!proposals.length || !setting || busy",))
                    html.Div("{{ ablation }}", id="ablation", classes="text-caption my-2")
                v3.VDivider(classes="my-2")
                v3.VBtn("Export report (PDF) and scene (.mrb)", id="export", click=ws.on_export, block=True,
                        disabled=("!proposals.length || busy",))
                html.Div("{{ exported }}", id="exported", classes="text-caption my-2")
                with html.Div(id="bronchoscopy-box", v_show=("sections.bronchoscopy",)):
                    v3.VDivider(classes="my-2")
                    html.Div("Bronchoscopy", classes="text-subtitle-2")
                    v3.VSelect(label="Nodule", items=("nodules",), v_model=("nodule",), id="nodule",
                               density="compact")
                    v3.VSelect(label="Scope", items=("scopes",), v_model=("scope",), id="scope", density="compact")
                    v3.VBtn("Plan route", id="route-plan", click=ws.on_route, block=True,
                            disabled=("!nodule || !scope || busy",))
                    html.Div("{{ route }}", id="route", classes="text-caption my-2", style="white-space: pre-line")
                    with html.Div(id="fly-box", v_show=("fly_max > 0",)):
                        v3.VSlider(label="Fly-through", v_model=("fly",), min=0, max=("fly_max",), step=1,
                                   density="compact", hide_details=True)
                v3.VDivider(classes="my-2")
                v3.VBtn("Sarcoma biopsy (target = tumour)", id="sarcoma-plan", click=ws.on_sarcoma, block=True,
                        disabled=("!target || busy",))
                html.Div("{{ sarcoma }}", id="sarcoma", classes="text-caption my-2")
        with ui.content:
            with html.Div(style="height: calc(100vh - 64px); width: 100%;"):
                ws.layout_manager.initialize_layout_grid(ui)
    ws.ui = ui
    ws.state.change("selected_rank")(ws.on_select_proposal)
    ws.state.change("device")(ws.on_device)
    ws.state.change("fly")(ws.on_fly)
