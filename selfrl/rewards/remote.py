"""A reward served over HTTP: POST the batch as JSON, read one score per completion back.

Request body (``Content-Type: application/json``)::

    {"prompts": [...], "completions": [...], "rows": [...], "group_size": k}

Expected answer::

    {"scores": [...], "metrics": {...}}      # "metrics" is optional

Values in ``rows`` that JSON cannot encode are sent as their ``str()``.  Connection
errors, timeouts, HTTP 429 and HTTP 5xx are retried ``retries`` times, waiting
``backoff * 2**i`` seconds before retry ``i``; any other HTTP error is not retried.  An
endpoint still down after the retries, or one that answers something other than a JSON
object with the right number of ``scores``, is a :class:`RewardError`.  Only the
standard library is used (``urllib``); the usual ``http_proxy``/``no_proxy`` variables
apply.

>>> reward = HttpReward("http://127.0.0.1:8000/score", timeout=10, retries=2)
>>> reward.name
'http'
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request

from selfrl.rewards.base import RewardBatch, RewardError, RewardResult, check_metrics, check_scores
from selfrl.rewards.registry import register_reward


@register_reward("http")
class HttpReward:
    """Scores completions by POSTing the batch to ``url``.

    Args:
        url: an ``http://`` or ``https://`` endpoint.
        timeout: seconds to wait for each attempt.
        retries: extra attempts after the first on connection errors, timeouts, 429, 5xx.
        backoff: seconds before the first retry; doubled before each further one.
        headers: extra request headers (e.g. ``{"Authorization": "Bearer …"}``).
        name: the name used in logs and errors.
    """

    name = "http"

    def __init__(
        self,
        url: str,
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 1.0,
        headers: dict[str, str] | None = None,
        name: str | None = None,
    ) -> None:
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise RewardError(f"HttpReward: url must start with http:// or https://, got {url!r}")
        if timeout <= 0 or retries < 0 or backoff < 0:
            raise RewardError("HttpReward needs timeout > 0, retries >= 0, backoff >= 0")
        self.url, self.timeout, self.retries, self.backoff = url, timeout, retries, backoff
        self.headers = dict(headers or {})
        if name is not None:
            self.name = name

    def _fail(self, what: str) -> RewardError:
        return RewardError(f"reward {self.name!r}: {self.url} {what}")

    def _post(self, body: bytes) -> bytes:
        headers = {"Content-Type": "application/json", "Accept": "application/json", **self.headers}
        opener = urllib.request.build_opener()  # not urlopen's shared, cached opener
        last_error = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            try:
                with opener.open(request, timeout=self.timeout) as response:
                    return response.read()
            except urllib.error.HTTPError as e:  # before OSError: HTTPError is one
                detail = e.read()[:200].decode("utf-8", "replace")
                if e.code != 429 and e.code < 500:
                    raise self._fail(f"answered HTTP {e.code} {e.reason}: {detail!r}") from e
                last_error = f"HTTP {e.code} {e.reason}"
            except (OSError, http.client.HTTPException) as e:  # refused, reset, timed out
                last_error = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
        attempts = self.retries + 1
        raise self._fail(f"failed after {attempts} attempt{'s' * (attempts > 1)} (last error: {last_error})")

    def __call__(self, batch: RewardBatch) -> RewardResult:
        payload = {
            "prompts": batch.prompts,
            "completions": batch.completions,
            "rows": batch.rows,
            "group_size": batch.group_size,
        }
        reply = self._post(json.dumps(payload, default=str).encode("utf-8"))
        try:
            data = json.loads(reply)
        except ValueError as e:
            raise self._fail(f"did not answer JSON: {reply[:200]!r}") from e
        if not isinstance(data, dict) or "scores" not in data:
            raise self._fail(f"answered without a 'scores' list: {reply[:200]!r}")
        scores = check_scores(self.name, data["scores"], len(batch))
        return RewardResult(scores, check_metrics(self.name, data.get("metrics") or {}))
