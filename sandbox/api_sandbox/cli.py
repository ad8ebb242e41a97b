"""Sandbox command line (skeleton)."""


def main() -> None:
    """Entry point."""
    raise SystemExit("sandbox: not implemented yet")
