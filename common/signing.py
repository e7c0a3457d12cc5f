"""Webhook signatures: ``X-Jobsched-Signature: t=<unix seconds>,v1=<hex>``
where hex = HMAC-SHA256(secret, "<t>.<raw body>"). A receiver recomputes it
over the raw body and refuses a stale ``t`` (replays)."""
from __future__ import annotations

import hashlib
import hmac

HEADER = "X-Jobsched-Signature"


def sign(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, body: bytes, header: str, now: int, tolerance_s: int = 300) -> bool:
    """What a receiver does (used by the tests as a receiver would)."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, body, timestamp).encode(),
                               header.encode("utf-8", "replace"))
