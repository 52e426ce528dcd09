"""Every event gets exactly one outcome, counted per member and day in hv.ingest_outcomes.
The day is the UTC day the network received the event (ChirpStack's `time`, never later
than our own reception: ingest.process.network_day), not the day it was processed.

An event that cannot be stored also gets a dead letter (hv.dead_letters) whose reason is
one of `DeadReason`: nothing is dropped silently, and a bare log line is never an outcome.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    STORED = "stored"                  # written to the member's tables
    DUPLICATE = "duplicate"            # already stored (redelivery or replayed frame)
    DECODE_FAILED = "decode_failed"    # raw uplink stored, but no measurements could be decoded
    UNKNOWN_DEVICE = "unknown_device"  # DevEUI not in the registry (dead letter)
    TENANT_SUSPENDED = "tenant_suspended"  # the owning member is suspended (dead letter)
    REJECTED = "rejected"              # malformed, invalid or oversized (dead letter)
    STORE_FAILED = "store_failed"      # kept failing in the database (dead letter)


class DeadReason(StrEnum):
    OVERSIZED = "oversized"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    MALFORMED_JSON = "malformed_json"
    MALFORMED_PROTOBUF = "malformed_protobuf"
    INVALID_EVENT = "invalid_event"
    TOPIC_MISMATCH = "topic_mismatch"
    # The DevEUI is a member's, the event comes from another ChirpStack tenant/application.
    WRONG_APPLICATION = "wrong_application"
    UNKNOWN_DEVICE = "unknown_device"
    DEVICE_INACTIVE = "device_inactive"
    TENANT_SUSPENDED = "tenant_suspended"
    STORE_FAILED = "store_failed"

    @property
    def outcome(self) -> Outcome:
        if self in (DeadReason.UNKNOWN_DEVICE, DeadReason.DEVICE_INACTIVE):
            return Outcome.UNKNOWN_DEVICE
        if self is DeadReason.TENANT_SUSPENDED:
            return Outcome.TENANT_SUSPENDED
        if self is DeadReason.STORE_FAILED:
            return Outcome.STORE_FAILED
        return Outcome.REJECTED
