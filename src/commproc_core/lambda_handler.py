"""AWS Lambda entry point: ``from commproc_core.lambda_handler import make_handler``.

Lambda configurations name this module, so it stays where it is; the handler
itself lives in :mod:`commproc_core.runtime.lambda_handler`.
"""

from commproc_core.runtime.lambda_handler import (
    SQSHandler,
    clear_cache,
    make_handler,
    queue_url_from_arn,
    record_to_message,
)

__all__ = ["SQSHandler", "clear_cache", "make_handler", "queue_url_from_arn", "record_to_message"]
