"""The views of the library's tests: a fast one, one that raises, one that renders a template."""
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.urls import path


class Boom(Exception):
    pass


def ok(request):
    return HttpResponse("ok")


def boom(request):
    raise Boom("on purpose")


def page(request):
    return TemplateResponse(request, "page.html", {"n": 1})


urlpatterns = [
    path("ok/", ok, name="ok"),
    path("boom/", boom, name="boom"),
    path("page/", page, name="page"),
]
