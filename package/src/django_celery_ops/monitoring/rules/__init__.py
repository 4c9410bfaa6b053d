"""The rule modules, one per component, each with rules(cfg) -> list of rule groups."""

from . import celery, django, gunicorn, jobs, meta, nginx, redis

__all__ = ["REGISTRY", "build"]

# Component name -> its rules(cfg). The config's `components` picks from here, in its order.
REGISTRY = {
    "gunicorn": gunicorn.rules,
    "django": django.rules,
    "celery": celery.rules,
    "jobs": jobs.rules,
    "redis": redis.rules,
    "nginx": nginx.rules,
    "meta": meta.rules,
}


def build(cfg):
    """Return {component: [rule groups]} for the configured components, in the configured order."""
    return {name: REGISTRY[name](cfg) for name in cfg["components"]}
