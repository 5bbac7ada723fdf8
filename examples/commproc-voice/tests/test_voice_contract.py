"""The voice channel meets commproc's channel contract, on the in-memory store and on SQLite."""

from __future__ import annotations

from commproc_voice import VoiceProcessor
from voice_support import call, recording, sid, transcription

from commproc_core.stores.sql import SQLStore
from commproc_core.testing.channel_contract import ChannelContract

PLACED = sid("CA")


class TestVoiceContract(ChannelContract):
    processor_class = VoiceProcessor

    def valid_bodies(self):
        return [
            call("ringing", call_sid=PLACED),
            call("completed", call_sid=PLACED, CallDuration="12"),
            call("no-answer"),
            call("busy", direction="outbound-api"),
            recording("completed", PLACED),
            transcription("completed", PLACED, "call me back"),
        ]

    def invalid_bodies(self):
        return [call("ringin"), {"CallStatus": "completed"}, recording("completed", "not-a-sid"), "{not json"]


class TestVoiceContractOnSQLite(TestVoiceContract):
    def new_store(self, directory):
        return SQLStore(f"sqlite:///{directory / 'voice.db'}", auto_upgrade=True)
