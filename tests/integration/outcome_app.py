"""An app whose outcomes depend on the prompt it serves, for the analysis tests.

    python outcome_app.py PROMPT_DIR KEY METRICS_PORT

Every 0.1s it serves KEY to 20 users (each user's variant chosen by the
client's ``variant_key`` split, as in a per-user rollout) and logs one outcome
per use through ``log_usage``, exporting ``prompt_usage_total`` on
METRICS_PORT. A text stands in for a model's quality with a marker
``[quality N/10]``: of every 10 uses of that text, N end ``resolved`` and the
rest ``escalated``, so a variant's share of good outcomes is N/10 exactly.
"""

from __future__ import annotations

import re
import sys
import time
from collections import Counter

from prometheus_client import start_http_server

from prompt_client import PromptRegistry

USERS = 20
TICK = 0.1
_QUALITY = re.compile(r"\[quality (\d+)/10\]")


def main(directory: str, key: str, port: int) -> None:
    registry = PromptRegistry(directory, outcomes=("resolved", "escalated"))
    start_http_server(port, addr="127.0.0.1")
    uses: Counter[str] = Counter()
    while True:
        snapshot = registry.snapshot()  # one revision for the whole tick
        for i in range(USERS):
            user = f"user-{i}"
            text = snapshot.render(key, variant_key=user)
            match = _QUALITY.search(text)
            quality = int(match.group(1)) if match else 10
            outcome = "resolved" if uses[text] % 10 < quality else "escalated"
            uses[text] += 1
            snapshot.log_usage(key, variant_key=user, outcome=outcome)
        time.sleep(TICK)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
