"""The Lambda function of deploy/template.yaml: commproc's handler for one channel.

The channel comes from ``COMMPROC_CHANNEL``, its config from
``COMMPROC_CHANNEL_CONFIG`` (JSON), the database from ``COMMPROC_DATABASE_URL``
and ``COMMPROC_SCHEMA``. The processor is built here, in the container's init
phase, and reused by every invocation the container serves.
"""

from commproc_core.lambda_handler import make_handler

handler = make_handler()
