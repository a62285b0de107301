"""Entry point: ``python -m api_svc`` (configuration from the environment)."""

import asyncio
import os

from api_svc.config import load_config
from api_svc.server import serve
from facegrid import heap, memory_report
from facegrid.logs import configure


def main() -> None:
    """Loads the configuration, sets up logging and serves until a signal."""
    config = load_config(os.environ)
    configure("api_svc", config.log_format)
    heap.start_trimming(config.malloc_trim_s)
    memory_report.start(config.memory_report_s)
    asyncio.run(serve(config))


if __name__ == "__main__":
    main()
