"""Building blocks shared by the dashboards: the config's selectors and variables, panels, links.

Every panel queries Prometheus through the `$datasource` variable and carries the configured
selectors of its component, the common selector and the scope variables (`$cluster`,
`$namespace`, `$job`); thresholds and `for:` durations are read by name from the config.
"""

from functools import cached_property

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus, stat, table, timeseries
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as pm

from .. import lib

DS = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
# Labels that scope a dashboard to one deployment; each gets a variable, shown when the config
# keeps the label in its aggregations (group_by), hidden otherwise (it then matches everything).
SCOPE_LABELS = ("cluster", "namespace")

# Grafana colours a threshold step from its value on (>=); alerts written `> N` on counts fire
# strictly above N, so their step sits just above it (a zero count stays green).
_STRICTLY_ABOVE = 0.001


def above(value):
    """Return the step value for an alert that fires when the value is strictly above `value`."""
    return value + _STRICTLY_ABOVE


def matchers(selector):
    """Return the label matchers of a selector body (`job="x", namespace=~"a|b"`) as strings."""
    return [f'{label}{op}"{value}"' for label, op, value in lib.matchers(selector or "")]


class Ctx:
    """What every dashboard reads from the config (config.load()), with the helpers that use it."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.group_by = list(dict.fromkeys(cfg.get("group_by") or ["job"]))
        self.common = matchers(cfg.get("common_selector", ""))
        self.selectors = {name: matchers(sel) for name, sel in (cfg.get("selectors") or {}).items()}
        self.components = list(cfg.get("components") or [])
        dashboards = cfg.get("dashboards") or {}
        self.uid_prefix = dashboards.get("uid_prefix", "") or ""
        self.datasource = dashboards.get("datasource") or "prometheus"
        self.tags = list(dashboards.get("tags") or ["django-celery-ops"])
        self.scope = list(dict.fromkeys([*SCOPE_LABELS, *(label for label in self.group_by if label != "job")]))

    # --- config values --------------------------------------------------------------------

    def th(self, name):
        """Return the threshold `name` (thresholds.<name>)."""
        return self.cfg["thresholds"][name]

    def slo(self, name):
        """Return the SLO value `name` (slo.<name>: availability, latency_seconds, page_1h_burn_rate...)."""
        return self.cfg["slo"][name]

    def held(self, alert, severity="warning"):
        """Return the `for:` duration of an alert in words (`10 minutes`); `at once` without one."""
        value = (self.cfg.get("for") or {}).get(alert)
        if isinstance(value, dict):  # one duration per severity (the burn-rate alerts)
            value = value.get(severity)
        return lib.human_duration(value) if value else "at once"

    def runbook(self, alert):
        """Return the runbook URL of an alert (links.runbook_url), as the rules link it."""
        return lib.runbook_url(self.cfg, alert)

    def uid(self, name):
        """Return the uid of a dashboard: the configured prefix and its name."""
        return f"{self.uid_prefix}{name}"

    def has(self, component):
        return not self.components or component in self.components

    @cached_property
    def panels(self):
        """{dashboard name: {panel id: panel}} of panels.yml (titles and alert links are fixed there)."""
        return {d["uid"]: {p["id"]: p for p in d["panels"]} for d in lib.panels_contract()}

    # --- PromQL ---------------------------------------------------------------------------

    def variables(self):
        """Return the matchers of the scope variables and `$job`."""
        return [f'{label}=~"${label}"' for label in (*self.scope, "job")]

    def sel(self, component, *extra):
        """Return the matcher list of a raw series of `component`, with the variables and `extra`."""
        found = [*self.selectors.get(component, []), *self.common, *self.variables(), *extra]
        return ", ".join(dict.fromkeys(found))

    def scoped(self, component, *extra):
        """Return the matcher list of `component` with the scope variables but not `$job`.

        For series of another component than the dashboard's job variable lists (its jobs differ).
        """
        found = [*self.selectors.get(component, []), *self.common, *self.variables()[:-1], *extra]
        return ", ".join(dict.fromkeys(found))

    def by_across(self):
        """Return the `by (...) ` clause of a sum across components: group_by without `job` ('' if none)."""
        labels = [label for label in self.group_by if label != "job"]
        return f"by ({', '.join(labels)}) " if labels else ""

    # A recorded series keeps the group_by labels and those its component's selectors name (the
    # rules aggregate by them), so a recording rule takes the same matchers as a raw series.
    rec = sel

    def by(self, component, *labels):
        """Return a `by (...)` clause as the rules aggregate: group_by, the selectors' labels, `labels`."""
        named = [*lib.label_names(self.cfg["selectors"].get(component, "")),
                 *lib.label_names(self.cfg.get("common_selector", ""))]
        return f"by ({', '.join(dict.fromkeys([*self.group_by, *named, *labels]))})"

    # --- dashboard ------------------------------------------------------------------------

    def scope_variables(self, metric, component):
        """Return the cluster/namespace and job variables, chained, over `metric` of `component`."""
        base = [*self.selectors.get(component, []), *self.common]
        result, parents = [], []
        for label in self.scope:
            result.append(variable(label, label.capitalize(), metric, label, ", ".join([*base, *parents]),
                                   hidden=label not in self.group_by))
            parents.append(f'{label}=~"${label}"')
        result.append(variable("job", "Job", metric, "job", ", ".join([*base, *parents])))
        return result

    def dashboard(self, name, title, description, variables):
        """Return a dashboard builder with the datasource variable, the shared links and settings."""
        builder = (
            db.Dashboard(title)
            .uid(self.uid(name))
            .description(description)
            .tags(self.tags)
            .editable()
            .time("now-1h", "now")
            .refresh("30s")
            .timezone("browser")
            .tooltip(dm.DashboardCursorSync.CROSSHAIR)
            .with_variable(
                db.DatasourceVariable("datasource")
                .label("Prometheus")
                .type("prometheus")
                .current(dm.VariableOption(selected=True, text=self.datasource, value=self.datasource))
            )
            .link(db.DashboardLink("Dashboards").type(dm.DashboardLinkType.DASHBOARDS).tags(self.tags[:1])
                  .as_dropdown(True).keep_time(True))  # no vars: job means a different tier on each
        )
        for var in variables:
            builder = builder.with_variable(var)
        return builder

    def runbook_links(self, builder, alerts):
        """Add a dashboard link to the runbook of each alert."""
        for name in alerts:
            builder = builder.link(
                db.DashboardLink(f"Runbook: {name}").type(dm.DashboardLinkType.LINK)
                .url(self.runbook(name)).icon("doc").target_blank(True)
                .tooltip(f"What to do when {name} fires")
            )
        return builder

    def panel_links(self, alerts):
        return [db.DashboardLink(f"Runbook: {name}").url(self.runbook(name)).target_blank(True) for name in alerts]


def variable(name, label, metric, label_name, parent="", hidden=False):
    """Return a multi-value query variable over label_values(metric{parent}, label_name), All = `.*`."""
    selector = f"{metric}{{{parent}}}" if parent else metric
    builder = (
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
    if hidden:
        builder = builder.hide(dm.VariableHide.HIDE_VARIABLE)
    return builder


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


def refs(exprs_and_legends):
    """Return queries A, B, C... of (expr, legend) pairs."""
    return [q(expr, legend, ref=chr(ord("A") + i)) for i, (expr, legend) in enumerate(exprs_and_legends)]


def steps(base="green", *pairs):
    """Return absolute thresholds: `base` below the first step, then (value, colour) pairs."""
    return db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(
        [dm.Threshold(value=None, color=base)] + [dm.Threshold(value=v, color=c) for v, c in pairs])


def alert_at(value):
    """Return thresholds that turn red at the alert threshold `value`."""
    return steps("green", (value, "red"))


def _common(ctx, builder, id_, title, description, targets, unit, thresholds, links, width, height):
    builder = (
        builder.id(id_).title(title).description(description).datasource(DS)
        .unit(unit).span(width).height(height)
        .thresholds(thresholds or steps("green"))
    )
    for target in targets:
        builder = builder.with_target(target)
    if links:
        builder = builder.links(ctx.panel_links(links))
    return builder


def timeseries_panel(ctx, id_, title, description, targets, unit, *, thresholds=None, alerts=(), width=12,
                     height=8, min_=0, max_=None, bars=False, stack=False, dashed=()):
    """Return a time series; with thresholds, they are drawn as a dashed line (the alert's level)."""
    builder = _common(ctx, timeseries.Panel(), id_, title, description, targets, unit, thresholds, alerts,
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
    for ref in dashed:  # e.g. last week's line under this week's
        builder = builder.override_by_query(ref, [dm.DynamicConfigValue(
            id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]})])
    if max_ is not None:
        builder = builder.max(max_)
    return builder


def stat_panel(ctx, id_, title, description, targets, unit, *, thresholds=None, alerts=(), width=6, height=6,
               mappings=None, decimals=None):
    """Return a stat panel coloured by its thresholds (the last value of each series)."""
    builder = _common(ctx, stat.Panel(), id_, title, description, targets, unit, thresholds, alerts, width,
                      height)
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


def table_panel(ctx, id_, title, description, targets, unit, *, thresholds=None, alerts=(), width=12, height=8,
                sort_by=None, hide=(), merge=False, rename=None, units=None):
    """Return a table of instant query results (the `Time` column and `hide` columns hidden).

    With `merge`, the results of every query become one row per label set (a column per query);
    `rename` names those columns ({"Value #A": "success"}), `units` sets their units.
    """
    builder = _common(ctx, table.Panel(), id_, title, description, targets, unit, thresholds, alerts, width,
                      height)
    builder = builder.align(cm.FieldTextAlignment.AUTO).cell_height(cm.TableCellHeight.SM).filterable(True)
    if merge:
        builder = builder.with_transformation(dm.DataTransformerConfig(id_val="merge", options={}))
    builder = builder.with_transformation(dm.DataTransformerConfig(id_val="organize", options={
        "excludeByName": {"Time": True, **{name: True for name in hide}},
        **({"renameByName": dict(rename)} if rename else {}),
    }))
    for column, column_unit in (units or {}).items():
        builder = builder.override_by_name(column, [dm.DynamicConfigValue(id_val="unit", value=column_unit)])
    if sort_by:
        builder = builder.sort_by([cb.TableSortByFieldState().display_name(sort_by).desc(True)])
    return builder


def up_down_mappings():
    """Return value mappings 1 -> UP (green), 0 -> DOWN (red)."""
    return [dm.ValueMap(options={
        "0": dm.ValueMappingResult(text="DOWN", color="red", index=0),
        "1": dm.ValueMappingResult(text="UP", color="green", index=1),
    })]
