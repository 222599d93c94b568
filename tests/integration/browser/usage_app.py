"""A demo app for the usage test: reads the prompt files a real sidecar wrote,
serves the `greeting` A/B test to 200 users (each user's variant chosen by the
client's variant_key split), logs an outcome per conversation, and exports
`prompt_usage_total` for Prometheus to scrape.

    python usage_app.py PROMPT_DIR METRICS_PORT

It prints one JSON line with what it logged ({variant: {outcome: count}}), then
serves metrics until it is stopped.
"""

from __future__ import annotations

import json
import sys
import threading
import time

from prometheus_client import start_http_server

from prompt_client import PromptRegistry

OUTCOMES = ("resolved", "escalated")


def main(directory: str, port: int) -> None:
    registry = PromptRegistry(directory, outcomes=OUTCOMES)
    deadline = time.monotonic() + 30
    while "greeting" not in registry:
        if time.monotonic() > deadline:
            raise SystemExit("greeting.txt never appeared")
        time.sleep(0.05)
    start_http_server(port, addr="127.0.0.1")
    logged: dict[str, dict[str, int]] = {}
    for i in range(200):
        user = f"user-{i}"
        variant = registry.info("greeting", variant_key=user).variant or ""
        # The concise variant resolves fewer conversations: a difference to see.
        resolved = i % 4 != 0 if variant == "control" else i % 4 == 0
        outcome = "resolved" if resolved else "escalated"
        registry.log_usage("greeting", variant_key=user, outcome=outcome)
        logged.setdefault(variant, {}).setdefault(outcome, 0)
        logged[variant][outcome] += 1
    # One outcome the app never declared: counted as "other", not as a new series.
    variant = registry.info("greeting", variant_key="user-0").variant or ""
    registry.log_usage("greeting", variant_key="user-0", outcome="caller hung up at 3am")
    logged[variant]["other"] = logged[variant].get("other", 0) + 1
    print(json.dumps(logged), flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
