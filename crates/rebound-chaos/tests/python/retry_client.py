"""A Python client of the chaos proxy: requests with urllib3's Retry, which
honours Retry-After (seconds and HTTP-date) on 413, 429 and 503.

    python3 retry_client.py METHOD URL

Prints one JSON line: the final status (or the error), the statuses of the
failed attempts urllib3 retried, and the seconds it all took.
"""
import json
import sys
import time

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

method, url = sys.argv[1], sys.argv[2]
retry = Retry(
    total=3,
    backoff_factor=0,
    status_forcelist=[500, 502, 503, 504],
    respect_retry_after_header=True,
    raise_on_status=False,
)
session = requests.Session()
session.trust_env = False  # never through a system proxy
session.mount("http://", HTTPAdapter(max_retries=retry))

started = time.monotonic()
out = {"status": None, "error": None, "retried": []}
try:
    response = session.request(method, url, data=b"sku=17" if method == "POST" else None, timeout=30)
    out["status"] = response.status_code
    out["body"] = response.text
    out["retried"] = [h.status for h in response.raw.retries.history]
except requests.exceptions.RequestException as e:
    out["error"] = type(e).__name__
out["elapsed"] = time.monotonic() - started
print(json.dumps(out))
