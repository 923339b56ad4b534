"""The image's HEALTHCHECK: exit 0 when /healthz answers 200, 1 otherwise (503 names the missed job).

Reads the port and token the service uses from the environment (SOXBOT_SERVICE__HEALTH_PORT, default
9108; SOXBOT_SERVICE__HEALTH_TOKEN) and asks over loopback, from inside the container.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    port = os.environ.get("SOXBOT_SERVICE__HEALTH_PORT", "9108")
    req = urllib.request.Request(f"http://127.0.0.1:{port}/healthz")
    token = os.environ.get("SOXBOT_SERVICE__HEALTH_TOKEN", "")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=4) as resp:
            return 0 if resp.status == 200 else 1
    except urllib.error.HTTPError as exc:
        print(f"/healthz answered {exc.code}: {exc.read(500).decode(errors='replace')}", file=sys.stderr)
    except OSError as exc:
        print(f"/healthz unreachable: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
