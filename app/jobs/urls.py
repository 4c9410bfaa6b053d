from django.urls import path

from app.jobs import views

app_name = "jobs"
urlpatterns = [
    path("imports/", views.import_create, name="import-create"),
    path("exports/", views.export_create, name="export-create"),
    path("jobs/<str:job_id>/", views.job_detail, name="detail"),
    path("jobs/<str:job_id>/result/", views.job_result, name="result"),
]
