from prompt_sidecar.main import run

raise SystemExit(run())
