from django.apps import AppConfig


class CommprocRecordsConfig(AppConfig):
    name = "commproc_records"
    verbose_name = "Communication records (commproc)"
