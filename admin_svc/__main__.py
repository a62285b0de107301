"""Entry point: ``python -m admin_svc`` (configuration from the environment)."""

import asyncio
import os
import sys

from admin_svc.config import load_config
from admin_svc.server import serve
from facegrid.config import ConfigError
from facegrid.logs import configure


def announce(text: str) -> None:
    """Writes an operator notice (the demo API keys) to standard output."""
    print(text, flush=True)


def main() -> None:
    """Loads the configuration, sets up logging and serves until a signal."""
    try:
        config = load_config(os.environ)
    except ConfigError as error:
        print(f"admin_svc: {error}", file=sys.stderr)
        sys.exit(2)
    configure("admin_svc", config.log_format)
    asyncio.run(serve(config, announce))


if __name__ == "__main__":
    main()
