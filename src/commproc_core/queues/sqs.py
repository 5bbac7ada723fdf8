"""The Amazon SQS adapter of the :class:`~commproc_core.ports.MessageQueue` port.

boto3 is imported on first use, not with this module: importing it costs
about 180 ms, which a Lambda cold start or a CLI ``--help`` should not pay.
Any SQS-compatible endpoint works through boto3's own settings
(``AWS_ENDPOINT_URL_SQS``, ``AWS_ENDPOINT_URL``, the config file); this module
only passes ``endpoint_url`` and ``region_name`` when it is given them.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import attrs

from commproc_core.errors import (
    QueueCredentialsError,
    QueueError,
    QueueNotFound,
    QueueUnavailable,
    ThrottledError,
)
from commproc_core.model import QueueMessage
from commproc_core.ports import BatchResult, VisibilityChange

__all__ = [
    "MAX_BATCH",
    "MAX_VISIBILITY_TIMEOUT",
    "QueueUnavailable",
    "SQSQueue",
    "SendOutcome",
    "region_from_queue_url",
    "unsupported_operation",
]

logger = logging.getLogger("commproc.queue")

#: Entries per SQS batch call, and messages per ReceiveMessage.
MAX_BATCH = 10
#: The longest visibility timeout SQS accepts (12 hours).
MAX_VISIBILITY_TIMEOUT = 43_200
MAX_WAIT_SECONDS = 20

_RECEIVE_ATTRIBUTES = ("ApproximateReceiveCount", "SentTimestamp", "ApproximateFirstReceiveTimestamp")
_FIFO_ATTRIBUTES = ("MessageGroupId", "MessageDeduplicationId", "SequenceNumber")

_NOT_FOUND = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})
_CREDENTIALS = frozenset(
    {
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "AccessDenied",
        "AccessDeniedException",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidSecurity",
    }
)
_THROTTLED = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "RequestThrottled",
        "AWS.SimpleQueueService.RequestThrottled",
        "OverLimit",
        "SlowDown",
        "KMS.ThrottlingException",
    }
)

#: Error codes (and HTTP statuses) of an endpoint that does not implement an API (SQS look-alikes).
_UNSUPPORTED = frozenset(
    {
        "InvalidAction",
        "UnsupportedOperation",
        "UnknownOperationException",
        "NotImplemented",
        "NotImplementedError",
    }
)

_REGION = r"[a-z]{2}(?:-[a-z]+)+-\d+"
_REGION_IN_HOST = re.compile(rf"^(?:sqs(?:-fips)?\.(?P<a>{_REGION})\.|(?P<b>{_REGION})\.queue\.)")


def region_from_queue_url(queue_url: str) -> str | None:
    """The region named in an SQS queue URL's host (``sqs.<region>.amazonaws.com``), if any."""
    host = queue_url.split("://", 1)[-1].split("/", 1)[0].lower()
    match = _REGION_IN_HOST.match(host)
    if match is None:
        return None
    return match.group("a") or match.group("b")


def unsupported_operation(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or what it was raised from) says the endpoint lacks the API called.

    SQS itself implements every action; emulators may not, and answer with
    an unknown-action error, HTTP 404 or 501, or (moto's server) an HTML 500.
    """
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, (NotImplementedError, AttributeError)):
            return True
        response = getattr(exc, "response", None)
        if isinstance(response, Mapping):
            error = response.get("Error") or {}
            code = str(error.get("Code", ""))
            status = int((response.get("ResponseMetadata") or {}).get("HTTPStatusCode", 0) or 0)
            html = "<html" in str(error.get("Message", "")).lower()
            if code in _UNSUPPORTED or status in (404, 501) or (status == 500 and html):
                return True
        exc = exc.__cause__
        seen += 1
    return False


@attrs.frozen
class SendOutcome:
    """What SendMessageBatch did: ids of the entries sent, and (id, code, message) of those that failed."""

    sent: tuple[str, ...]
    failed: tuple[tuple[str, str, str], ...]


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, int(value)))


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), MAX_BATCH):
        yield items[start : start + MAX_BATCH]


@functools.cache
def _snake(api: str) -> str:
    # ListDeadLetterSourceQueues -> list_dead_letter_source_queues, as boto3 names its methods.
    return re.sub(r"(?<!^)(?=[A-Z])", "_", api).lower()


def _short(handle: str) -> str:
    # Receipt handles run to hundreds of characters; a prefix identifies one in a log.
    return handle if len(handle) <= 20 else handle[:20] + "..."


class SQSQueue:
    """An SQS queue through boto3, created lazily and shared by threads.

    Give it a ``client`` (any boto3 SQS client) or a boto3 ``session`` from
    the host, or neither to use boto3's default configuration. ``calls``
    counts API calls by name (``ReceiveMessage``, ``DeleteMessageBatch``...).
    """

    def __init__(
        self,
        queue_url: str,
        *,
        client: Any = None,
        session: Any = None,
        region_name: str | None = None,
        endpoint_url: str | None = None,
        visibility_timeout: int | None = None,
    ) -> None:
        if client is not None and session is not None:
            raise ValueError("pass a boto3 client or a boto3 session, not both")
        self._url = queue_url
        self._client = client
        self._session = session
        self._region_name = region_name
        self._endpoint_url = endpoint_url
        self._visibility_timeout = visibility_timeout
        self._fifo = queue_url.endswith(".fifo")
        self._lock = threading.Lock()
        self._system_attribute_param: str | None = None
        self.calls: Counter[str] = Counter()

    def __repr__(self) -> str:
        return f"SQSQueue({self._url!r})"

    @property
    def url(self) -> str:
        return self._url

    @property
    def client(self) -> Any:
        """The boto3 SQS client, created on first use."""
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    try:
                        self._client = self._make_client()
                    except Exception as exc:
                        mapped = self._map_error(exc, "CreateClient")
                        if mapped is None:
                            raise
                        raise mapped from exc
                client = self._client
        return client

    def _make_client(self) -> Any:
        import boto3

        session = self._session if self._session is not None else boto3.session.Session()
        kwargs: dict[str, Any] = {}
        # An AWS queue URL names its region; calling another region's endpoint
        # with it can only fail, so the URL beats the ambient default.
        region = self._region_name or region_from_queue_url(self._url) or session.region_name
        if region:
            kwargs["region_name"] = region
        if self._endpoint_url:
            kwargs["endpoint_url"] = self._endpoint_url
        return session.client("sqs", **kwargs)

    # -- the port ---------------------------------------------------------------------

    def receive(
        self,
        max_messages: int = 10,
        wait_time_seconds: int = 20,
        visibility_timeout: int | None = None,
        *,
        attribute_names: Sequence[str] | None = None,
    ) -> list[QueueMessage]:
        """Long-poll for up to ``max_messages`` (1-10), waiting up to ``wait_time_seconds`` (0-20).

        ``attribute_names`` replaces the system attributes asked for (``["All"]``
        for everything, as the DLQ tools want).
        """
        client = self.client
        names = list(_RECEIVE_ATTRIBUTES + _FIFO_ATTRIBUTES) if self._fifo else list(_RECEIVE_ATTRIBUTES)
        if attribute_names is not None:
            names = list(attribute_names)
        params: dict[str, Any] = {
            "QueueUrl": self._url,
            "MaxNumberOfMessages": _clamp(max_messages, 1, MAX_BATCH),
            "WaitTimeSeconds": _clamp(wait_time_seconds, 0, MAX_WAIT_SECONDS),
            self._attribute_param(client): names,
            "MessageAttributeNames": ["All"],
        }
        timeout = visibility_timeout if visibility_timeout is not None else self._visibility_timeout
        if timeout is not None:
            params["VisibilityTimeout"] = _clamp(timeout, 0, MAX_VISIBILITY_TIMEOUT)
        response = self._call("ReceiveMessage", params)
        return [self._to_message(raw) for raw in response.get("Messages", ())]

    def delete_batch(self, receipt_handles: Sequence[str]) -> BatchResult:
        """Delete by receipt handle, 10 per DeleteMessageBatch call; failed entries are reported."""
        entries = [{"ReceiptHandle": handle} for handle in receipt_handles]
        return self._batch("DeleteMessageBatch", entries)

    def change_visibility_batch(self, changes: Sequence[VisibilityChange]) -> BatchResult:
        """Set visibility timeouts (clamped to 0-43200 s), 10 per call; failed entries are reported."""
        entries = [
            {
                "ReceiptHandle": change.receipt_handle,
                "VisibilityTimeout": _clamp(change.timeout_seconds, 0, MAX_VISIBILITY_TIMEOUT),
            }
            for change in changes
        ]
        return self._batch("ChangeMessageVisibilityBatch", entries)

    def approximate_depth(self) -> int | None:
        """``ApproximateNumberOfMessages``, or None when SQS cannot tell us."""
        try:
            response = self._call(
                "GetQueueAttributes",
                {"QueueUrl": self._url, "AttributeNames": ["ApproximateNumberOfMessages"]},
            )
            return int(response["Attributes"]["ApproximateNumberOfMessages"])
        except Exception as exc:
            logger.warning("could not read the depth of queue %s: %s", self._url, exc)
            return None

    # -- conveniences -----------------------------------------------------------------

    def delete_message(self, receipt_handle: str) -> None:
        """Delete one message; raises a QueueError subclass if SQS refuses."""
        self._call("DeleteMessage", {"QueueUrl": self._url, "ReceiptHandle": receipt_handle})

    def change_visibility(self, receipt_handle: str, timeout: int) -> None:
        """Set one message's visibility timeout (clamped to 0-43200 s)."""
        self._call(
            "ChangeMessageVisibility",
            {
                "QueueUrl": self._url,
                "ReceiptHandle": receipt_handle,
                "VisibilityTimeout": _clamp(timeout, 0, MAX_VISIBILITY_TIMEOUT),
            },
        )

    def send(
        self,
        body: str,
        *,
        message_attributes: Mapping[str, Any] | None = None,
        group_id: str | None = None,
        deduplication_id: str | None = None,
        delay_seconds: int = 0,
    ) -> str:
        """Send one message; returns its message id. Attributes use SQS's own shape."""
        params: dict[str, Any] = {"QueueUrl": self._url, "MessageBody": body}
        if message_attributes:
            params["MessageAttributes"] = dict(message_attributes)
        if group_id is not None:
            params["MessageGroupId"] = group_id
        if deduplication_id is not None:
            params["MessageDeduplicationId"] = deduplication_id
        if delay_seconds:
            params["DelaySeconds"] = _clamp(delay_seconds, 0, 900)
        return str(self._call("SendMessage", params)["MessageId"])

    def check(self) -> dict[str, str]:
        """Every attribute of the queue; QueueNotFound (or another QueueError) if it does not answer."""
        response = self._call("GetQueueAttributes", {"QueueUrl": self._url, "AttributeNames": ["All"]})
        return {str(k): str(v) for k, v in (response.get("Attributes") or {}).items()}

    def arn(self) -> str:
        """The queue's ARN, asked of SQS."""
        response = self._call("GetQueueAttributes", {"QueueUrl": self._url, "AttributeNames": ["QueueArn"]})
        return str(response["Attributes"]["QueueArn"])

    def send_batch(self, entries: Sequence[Mapping[str, Any]]) -> SendOutcome:
        """SendMessageBatch, 10 entries per call; each entry is SQS's own shape and carries an ``Id``.

        Failed entries are reported, never raised (SQS answers 200 with them).
        """
        sent: list[str] = []
        failed: list[tuple[str, str, str]] = []
        for chunk in _chunks(list(entries)):
            response = self._call(
                "SendMessageBatch", {"QueueUrl": self._url, "Entries": [dict(e) for e in chunk]}
            )
            sent.extend(str(item["Id"]) for item in response.get("Successful", ()))
            failed.extend(
                (str(item.get("Id", "")), str(item.get("Code", "Unknown")), str(item.get("Message", "")))
                for item in response.get("Failed", ())
            )
        return SendOutcome(sent=tuple(sent), failed=tuple(failed))

    def call(self, api: str, **params: Any) -> Any:
        """Any SQS API by its name (``ListDeadLetterSourceQueues``...), errors mapped as for the others."""
        return self._call(api, params)

    # -- internals --------------------------------------------------------------------

    def _attribute_param(self, client: Any) -> str:
        # botocore before mid-2024 knows only the deprecated AttributeNames.
        if self._system_attribute_param is None:
            name = "AttributeNames"
            try:
                members = client.meta.service_model.operation_model("ReceiveMessage").input_shape.members
                if "MessageSystemAttributeNames" in members:
                    name = "MessageSystemAttributeNames"
            except Exception:
                logger.debug("cannot inspect the SQS client's model; using AttributeNames")
            self._system_attribute_param = name
        return self._system_attribute_param

    def _to_message(self, raw: Mapping[str, Any]) -> QueueMessage:
        attributes = dict(raw.get("Attributes") or {})
        sent = attributes.get("SentTimestamp")
        return QueueMessage(
            message_id=raw["MessageId"],
            receipt_handle=raw["ReceiptHandle"],
            body=raw.get("Body", ""),
            queue_url=self._url,
            receive_count=int(attributes.get("ApproximateReceiveCount", 1)),
            sent_at=datetime.fromtimestamp(int(sent) / 1000, tz=timezone.utc) if sent else None,
            attributes=attributes,
            message_attributes=dict(raw.get("MessageAttributes") or {}),
        )

    def _batch(self, api: str, entries: list[dict[str, Any]]) -> BatchResult:
        succeeded: list[str] = []
        failed: list[tuple[str, str, str]] = []
        for chunk in _chunks(entries):
            by_id = {str(index): entry["ReceiptHandle"] for index, entry in enumerate(chunk)}
            request = [{"Id": str(index), **entry} for index, entry in enumerate(chunk)]
            response = self._call(api, {"QueueUrl": self._url, "Entries": request})
            succeeded.extend(by_id[item["Id"]] for item in response.get("Successful", ()))
            for item in response.get("Failed", ()):
                handle = by_id.get(item.get("Id", ""), item.get("Id", ""))
                code = str(item.get("Code", "Unknown"))
                message = str(item.get("Message", ""))
                failed.append((handle, code, message))
                logger.warning(
                    "%s on %s: entry %s failed: %s: %s", api, self._url, _short(handle), code, message
                )
        return BatchResult(succeeded=tuple(succeeded), failed=tuple(failed))

    def _call(self, api: str, params: dict[str, Any]) -> Any:
        client = self.client
        with self._lock:
            self.calls[api] += 1
        method = getattr(client, _snake(api))
        try:
            return method(**params)
        except Exception as exc:
            mapped = self._map_error(exc, api)
            if mapped is None:
                raise
            raise mapped from exc

    def _map_error(self, exc: Exception, api: str) -> Exception | None:
        """The commproc error for a boto3/botocore failure, or None to let it through."""
        try:
            from botocore import exceptions as bce
        except ImportError:  # a host-supplied client that is not botocore's
            return None
        where = f"SQS {api} on {self._url}"
        if isinstance(exc, bce.ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            message = str(error.get("Message", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if code in _NOT_FOUND:
                return QueueNotFound(
                    f"{where}: no such queue ({code}). Check the queue URL, the region "
                    "(AWS_DEFAULT_REGION or region_name) and the endpoint (AWS_ENDPOINT_URL_SQS)."
                )
            if code in _CREDENTIALS:
                return QueueCredentialsError(
                    f"{where}: AWS refused the credentials ({code}: {message}). Check "
                    "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, that the keys are "
                    "active and unexpired, and that their policy allows this action on the queue."
                )
            if code in _THROTTLED:
                return ThrottledError(f"{where}: throttled ({code}: {message})")
            if status >= 500 or code in {"InternalError", "InternalFailure", "ServiceUnavailable"}:
                return QueueUnavailable(f"{where}: SQS server error {status} ({code}: {message})")
            return QueueError(f"{where} failed: {code}: {message}")
        credential_errors = tuple(
            getattr(bce, name)
            for name in (
                "NoCredentialsError",
                "PartialCredentialsError",
                "CredentialRetrievalError",
                "TokenRetrievalError",
                "SSOTokenLoadError",
                "UnauthorizedSSOTokenError",
            )
            if hasattr(bce, name)
        )
        if isinstance(exc, credential_errors):
            return QueueCredentialsError(
                f"{where}: no usable AWS credentials ({exc}). Set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, use AWS_PROFILE, attach an IAM role, or pass a boto3 "
                "session or client."
            )
        if isinstance(exc, bce.ProfileNotFound):
            return QueueCredentialsError(f"{where}: {exc}. Check AWS_PROFILE and ~/.aws/config.")
        if isinstance(exc, bce.NoRegionError):
            return QueueError(
                f"{where}: no AWS region configured and none in the queue URL. "
                "Set AWS_DEFAULT_REGION or pass region_name."
            )
        if isinstance(exc, (bce.ConnectionError, bce.HTTPClientError)):
            return QueueUnavailable(f"{where}: cannot reach SQS ({type(exc).__name__}: {exc})")
        return None
