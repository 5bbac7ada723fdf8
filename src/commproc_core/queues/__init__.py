"""Queue adapters of the :class:`~commproc_core.ports.MessageQueue` port.

:class:`SQSQueue` talks to Amazon SQS (or any SQS-compatible endpoint) through
boto3, imported on first use; :class:`MemoryQueue` keeps SQS semantics in
memory for tests, benchmarks and single-process use.
"""

from commproc_core.queues.memory import MemoryQueue
from commproc_core.queues.sqs import QueueUnavailable, SQSQueue, region_from_queue_url

__all__ = ["MemoryQueue", "QueueUnavailable", "SQSQueue", "region_from_queue_url"]
