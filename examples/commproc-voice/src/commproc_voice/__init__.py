"""commproc-voice: Twilio Voice calls, recordings and transcriptions as a commproc channel.

::

    from commproc_voice import VoiceProcessor

    processor = VoiceProcessor(queue_url="https://sqs.../voice-events", config={"auth_tokens": ["..."]})
    stats = processor.process_messages(max_messages=10)

Installed, it registers the ``voice`` channel (entry point group
``commproc.channels``): ``commproc channels`` lists it and
``ProcessorFactory.get_processor("voice", queue_url)`` builds it.
"""

from commproc_voice.events import (
    CALL_STATUSES,
    MISSED_STATUSES,
    RECORDING_STATUSES,
    TRANSCRIPTION_STATUSES,
    CallStatusEvent,
    RecordingEvent,
    TranscriptionEvent,
    VoiceEvent,
    call_rank,
    parse_voice,
)
from commproc_voice.processor import VoiceProcessor
from commproc_voice.settings import VoiceSettings

__all__ = [
    "CALL_STATUSES",
    "MISSED_STATUSES",
    "RECORDING_STATUSES",
    "TRANSCRIPTION_STATUSES",
    "CallStatusEvent",
    "RecordingEvent",
    "TranscriptionEvent",
    "VoiceEvent",
    "VoiceProcessor",
    "VoiceSettings",
    "call_rank",
    "parse_voice",
]

__version__ = "0.1.0"
