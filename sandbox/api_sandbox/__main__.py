"""``python -m api_sandbox`` runs the CLI (used by the test harness)."""

from api_sandbox.cli import main

main()
