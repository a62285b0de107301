"""Entry point: ``python -m console`` (configuration from the environment)."""

import asyncio
import os

from console.config import load_config
from console.server import serve
from facegrid.logs import configure


def main() -> None:
    """Loads the configuration, sets up logging and serves until a signal."""
    config = load_config(os.environ)
    configure("console", config.log_format)
    asyncio.run(serve(config))


if __name__ == "__main__":
    main()
