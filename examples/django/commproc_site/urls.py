"""The admin is the whole site: commproc's records, read-only."""

from django.contrib import admin
from django.urls import path

urlpatterns = [path("admin/", admin.site.urls)]
