"""Bounded retries for the calls that may be repeated, and only those.

Plain module. The official SDK sends each request once: no retry on 429 (it
ignores Retry-After), on 5xx or on a timeout, and no read timeout by default.
The deploy adds both here: every call gets a timeout, and an *idempotent*
call (a read, a wait, a stop or a delete of a named thing) is tried again a
bounded number of times on 429 (after Retry-After, capped), on 5xx and on
network errors/timeouts. A create is never repeated blindly: a repeated POST
could make a second instance; the deploy is a plan re-read from the platform,
so running it again picks up where it stopped.
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5  # tries in all, the first included
    base_delay: float = 0.25  # seconds; doubled each time
    max_delay: float = 8.0
    max_retry_after: float = 30.0  # a Retry-After above this is capped, not obeyed blindly
    call_timeout: float = 30.0  # seconds for a call that is not a wait

    def delay(self, attempt: int, status: int | None, retry_after: float | None) -> float:
        """Seconds to sleep before try ``attempt + 1`` (``attempt`` counts from 1)."""
        backoff = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        if status == 429 and retry_after is not None:
            return max(0.0, min(self.max_retry_after, retry_after))
        return backoff


def retryable(status: int | None, network: bool) -> bool:
    """Worth another try, if the call is idempotent: a network error or a timeout
    (no answer), or a 429/5xx answer."""
    return network or status in RETRYABLE_STATUS


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
