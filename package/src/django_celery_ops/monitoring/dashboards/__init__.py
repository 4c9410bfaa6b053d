"""The Grafana dashboards, as code: one module per dashboard, built from a monitoring config.

    from django_celery_ops.monitoring import config, dashboards
    files = dashboards.build_all(config.load("monitoring.yml"))   # {"celery-queues.json": {...}, ...}
    text = dashboards.render(files["celery-queues.json"])

Every panel query carries the configured selectors, the common selector and the $cluster,
$namespace and $job variables; thresholds and `for:` durations come from the config; the panels
that alerts link to keep the ids of panels.yml (see alert_panels()).
"""

import json

from grafana_foundation_sdk.cog.encoder import JSONEncoder

from . import celery_queues, django_requests, gunicorn_saturation, service_overview
from .common import Ctx
from .provisioning import provisioning

__all__ = ["alert_panels", "build_all", "provisioning", "render"]

# (module, component it needs; None: always built)
_BOARDS = (
    (service_overview, None),
    (django_requests, "django"),
    (gunicorn_saturation, "gunicorn"),
    (celery_queues, "celery"),
)


def build_all(cfg):
    """Return {file name: dashboard JSON data} of every dashboard the config's components call for."""
    ctx = Ctx(cfg)
    built = {}
    for board, component in _BOARDS:
        if component is None or ctx.has(component):
            data = json.loads(json.dumps(board.build(ctx).build(), cls=JSONEncoder))
            built[f"{data['uid']}.json"] = data
    return built


def render(data):
    """Return the text of one dashboard file."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def alert_panels(cfg):
    """Return {alert name: (dashboard uid, panel id)}: where each alert's dashboard_url points."""
    ctx = Ctx(cfg)
    return {alert: (ctx.uid(name), panel_id)
            for name, panels in ctx.panels.items()
            for panel_id, panel in panels.items()
            for alert in panel["alerts"]}
