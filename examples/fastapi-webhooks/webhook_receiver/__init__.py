"""A webhook receiver for commproc: providers call it, it verifies and queues, commproc processes."""

from webhook_receiver.app import confirm_subscription, create_app
from webhook_receiver.forwarding import FORWARDED_HEADERS, ForwardError, SqsForwarder, api_gateway_event
from webhook_receiver.settings import ReceiverSettings, SettingsError

__all__ = [
    "FORWARDED_HEADERS",
    "ForwardError",
    "ReceiverSettings",
    "SettingsError",
    "SqsForwarder",
    "api_gateway_event",
    "confirm_subscription",
    "create_app",
]
