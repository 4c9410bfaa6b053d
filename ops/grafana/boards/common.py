"""Building blocks shared by the four dashboards: datasources, variables, panels, links, thresholds.

Every panel queries the Prometheus datasource through the `$datasource` variable, carries a unit
and a description, and colours from thresholds read by name from ops/prometheus/thresholds.py.
"""

import os
from pathlib import Path

import thresholds as t  # ops/prometheus/thresholds.py, on sys.path via generate.py
import yaml
from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus, stat, table, timeseries
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as pm

GRAFANA_DIR = Path(__file__).resolve().parents[1]
PANELS_FILE = GRAFANA_DIR / "panels.yml"

# Provisioned datasources (ops/grafana/provisioning/datasources): fixed uids, so links survive.
PROMETHEUS_NAME, PROMETHEUS_UID = "Prometheus", "prometheus"
ALERTMANAGER_NAME, ALERTMANAGER_UID = "Alertmanager", "alertmanager"
TAG = "django-celery-ops"  # every dashboard carries it; the dashboard links list them by it

DS = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")

# Grafana colours a threshold step from its value on (>=); alerts written `> N` on counts fire
# strictly above N, so their step sits just above it (a zero count stays green).
_STRICTLY_ABOVE = 0.001


def above(value):
    """Return the step value for an alert that fires when the value is strictly above `value`."""
    return value + _STRICTLY_ABOVE


def runbook_base():
    """Return the runbook base URL the rule generator uses (RUNBOOK_BASE_URL overrides it)."""
    return (os.environ.get("RUNBOOK_BASE_URL") or t.runbook_base_url).rstrip("/")


def contract(uid):
    """Return {panel id: panel} of one dashboard of panels.yml (titles and alert links are fixed there)."""
    for dashboard in yaml.safe_load(PANELS_FILE.read_text())["dashboards"]:
        if dashboard["uid"] == uid:
            return {panel["id"]: panel for panel in dashboard["panels"]}
    raise SystemExit(f"panels.yml: no dashboard {uid}")


# --- dashboard ------------------------------------------------------------------------------

def dashboard(uid, title, description, variables):
    """Return a dashboard builder with the datasource variable, the shared links and settings."""
    builder = (
        db.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG])
        .editable()
        .time("now-1h", "now")
        .refresh("30s")
        .timezone("browser")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .with_variable(
            db.DatasourceVariable("datasource")
            .label("Prometheus")
            .type("prometheus")
            .current(dm.VariableOption(selected=True, text=PROMETHEUS_NAME, value=PROMETHEUS_UID))
        )
        .link(db.DashboardLink("Dashboards").type(dm.DashboardLinkType.DASHBOARDS).tags([TAG])
              .as_dropdown(True).keep_time(True))  # no vars: job means a different tier on each
    )
    for variable in variables:
        builder = builder.with_variable(variable)
    return builder


def runbook_links(builder, alerts):
    """Add a dashboard link to the runbook of each alert."""
    for name in alerts:
        builder = builder.link(
            db.DashboardLink(f"Runbook: {name}").type(dm.DashboardLinkType.LINK)
            .url(f"{runbook_base()}/{name}.md").icon("doc").target_blank(True)
            .tooltip(f"What to do when {name} fires")
        )
    return builder


def variable(name, label, metric, label_name, parent=""):
    """Return a multi-value query variable over label_values(metric{parent}, label_name), All = `.*`."""
    selector = f"{metric}{{{parent}}}" if parent else metric
    return (
        db.QueryVariable(name)
        .label(label)
        .datasource(DS)
        .query({"query": f"label_values({selector}, {label_name})", "refId": f"{name}-values"})
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(dm.VariableOption(selected=True, text="All", value="$__all"))
    )


def row(title, id_):
    """Return an expanded row."""
    return db.Row(title).id(id_)


# --- panels ---------------------------------------------------------------------------------

def q(expr, legend="", ref="A", instant=False):
    """Return a Prometheus query of the panel."""
    query = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(DS)
    if legend:
        query = query.legend_format(legend)
    if instant:
        query = query.instant().format(pm.PromQueryFormat.TABLE)
    else:
        query = query.range()
    return query


def steps(base="green", *pairs):
    """Return absolute thresholds: `base` below the first step, then (value, colour) pairs."""
    return db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(
        [dm.Threshold(value=None, color=base)] + [dm.Threshold(value=v, color=c) for v, c in pairs])


def alert_at(value):
    """Return thresholds that turn red at the alert threshold `value`."""
    return steps("green", (value, "red"))


def _common(builder, id_, title, description, targets, unit, thresholds, links, width, height):
    builder = (
        builder.id(id_).title(title).description(description).datasource(DS)
        .unit(unit).span(width).height(height)
        .thresholds(thresholds or steps("green"))
    )
    for target in targets:
        builder = builder.with_target(target)
    if links:
        builder = builder.links([
            db.DashboardLink(f"Runbook: {name}").url(f"{runbook_base()}/{name}.md").target_blank(True)
            for name in links
        ])
    return builder


def timeseries_panel(id_, title, description, targets, unit, *, thresholds=None, alerts=(), width=12,
                     height=8, min_=0, max_=None, bars=False, stack=False):
    """Return a time series; with thresholds, they are drawn as a dashed line (the alert's level)."""
    builder = _common(timeseries.Panel(), id_, title, description, targets, unit, thresholds, alerts,
                      width, height)
    builder = (
        builder.line_width(1).fill_opacity(40 if bars else 10).show_points(cm.VisibilityMode.NEVER)
        .draw_style(cm.GraphDrawStyle.BARS if bars else cm.GraphDrawStyle.LINE)
        .span_nulls(False)
        .axis_soft_min(min_)
        .thresholds_style(cb.GraphThresholdsStyleConfig().mode(
            cm.GraphThresholdsStyleMode.DASHED if thresholds else cm.GraphThresholdsStyleMode.OFF))
        .stacking(cb.StackingConfig().mode(cm.StackingMode.NORMAL if stack else cm.StackingMode.NONE))
        .legend(cb.VizLegendOptions().display_mode(cm.LegendDisplayMode.TABLE)
                .placement(cm.LegendPlacement.BOTTOM).show_legend(True).calcs(["mean", "max", "lastNotNull"])
                .sort_by("Max").sort_desc(True))
        .tooltip(cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.DESCENDING))
    )
    if max_ is not None:
        builder = builder.max(max_)
    return builder


def stat_panel(id_, title, description, targets, unit, *, thresholds=None, alerts=(), width=6, height=6,
               mappings=None, decimals=None):
    """Return a stat panel coloured by its thresholds (the last value of each series)."""
    builder = _common(stat.Panel(), id_, title, description, targets, unit, thresholds, alerts, width, height)
    builder = (
        builder.color_mode(cm.BigValueColorMode.BACKGROUND).graph_mode(cm.BigValueGraphMode.AREA)
        .text_mode(cm.BigValueTextMode.VALUE_AND_NAME).justify_mode(cm.BigValueJustifyMode.AUTO)
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
    )
    if mappings:
        builder = builder.mappings(mappings)
    if decimals is not None:
        builder = builder.decimals(decimals)
    return builder


def table_panel(id_, title, description, targets, unit, *, thresholds=None, alerts=(), width=12, height=8,
                sort_by=None, hide=()):
    """Return a table of instant query results (the `Time` column and `hide` columns hidden)."""
    builder = _common(table.Panel(), id_, title, description, targets, unit, thresholds, alerts, width, height)
    builder = builder.align(cm.FieldTextAlignment.AUTO).cell_height(cm.TableCellHeight.SM).filterable(True)
    builder = builder.with_transformation(dm.DataTransformerConfig(
        id_val="organize", options={"excludeByName": {"Time": True, **{name: True for name in hide}}}))
    if sort_by:
        builder = builder.sort_by([cb.TableSortByFieldState().display_name(sort_by).desc(True)])
    return builder


def up_down_mappings():
    """Return value mappings 1 -> UP (green), 0 -> DOWN (red)."""
    return [dm.ValueMap(options={
        "0": dm.ValueMappingResult(text="DOWN", color="red", index=0),
        "1": dm.ValueMappingResult(text="UP", color="green", index=1),
    })]
