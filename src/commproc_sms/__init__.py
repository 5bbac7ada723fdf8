"""commproc-sms: Twilio SMS, MMS and WhatsApp events for commproc.

::

    from commproc_sms import SMSProcessor

    processor = SMSProcessor(queue_url="https://sqs.../sms-events", config={"agent_mode": True})
    stats = processor.process_messages(max_messages=10)
"""

from commproc_sms.events import (
    STATUS_RANKS,
    SmsEvent,
    SmsInbound,
    SmsStatusUpdate,
    advances,
    inbound_dedupe_key,
    status_dedupe_key,
    status_rank,
)
from commproc_sms.phones import Address, AddressKind, parse_address
from commproc_sms.processor import InboundContext, SMSProcessor
from commproc_sms.sender import TwilioSender
from commproc_sms.settings import SMSSettings
from commproc_sms.signature import compute_signature, verify_envelope, verify_signature
from commproc_sms.twilio import TwilioInbound, TwilioMedia, TwilioStatus, converter, parse_twilio

__all__ = [
    "STATUS_RANKS",
    "Address",
    "AddressKind",
    "InboundContext",
    "SMSProcessor",
    "SMSSettings",
    "SmsEvent",
    "SmsInbound",
    "SmsStatusUpdate",
    "TwilioInbound",
    "TwilioMedia",
    "TwilioSender",
    "TwilioStatus",
    "advances",
    "compute_signature",
    "converter",
    "inbound_dedupe_key",
    "parse_address",
    "parse_twilio",
    "status_dedupe_key",
    "status_rank",
    "verify_envelope",
    "verify_signature",
]

__version__ = "0.1.0"
