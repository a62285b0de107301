"""Throughput with the services' memory settings (the launcher's MALLOC_ARENA_MAX=2 for the
Python services, malloc_trim every FACEGRID_MALLOC_TRIM_S) against glibc's own arena limit
without trimming, measured in one run.

    python -m bench.allocator [--faces /work/shared/faces] [--clients 4] [--seconds 60]
                              [--rounds 3] [--baseline-arenas N]

Two meshes run side by side (the real launcher, free ports, scratch data dirs): one as the
launcher starts it, one with MALLOC_ARENA_MAX=N (default 8 per CPU, glibc's own limit on 64-bit
machines) and FACEGRID_MALLOC_TRIM_S=0. Rounds of the load test's mix at --clients alternate
between them (only one is loaded at a time), so the machine's noise falls on both; the ratio is
the launcher's mesh's requests/s over the baseline's, summed over the rounds.
"""

from __future__ import annotations

import argparse
import os
import platform
from contextlib import ExitStack
from pathlib import Path

from bench.load import run_step, summarise
from bench.mesh import started_mesh
from bench.workload import Client, photos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--faces", type=Path, default=Path(os.environ.get("FACEGRID_FACES", "/work/shared/faces"))
    )
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline-arenas", type=int, default=8 * (os.cpu_count() or 1))
    args = parser.parse_args()
    singles, groups = photos(args.faces)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs; {args.clients} clients,"
        f" {args.rounds} rounds of {args.seconds:g} s per mesh"
    )
    setups = {
        "launcher (2 arenas, trim 30 s)": {},
        f"baseline ({args.baseline_arenas} arenas, no trim)": {
            "MALLOC_ARENA_MAX": str(args.baseline_arenas),
            "FACEGRID_MALLOC_TRIM_S": "0",
        },
    }
    with ExitStack() as stack:
        meshes = {
            name: stack.enter_context(started_mesh(extra_env=env)) for name, env in setups.items()
        }
        clients = {
            name: [
                Client(mesh.rest, mesh.keys, singles, groups, seed=i) for i in range(args.clients)
            ]
            for name, mesh in meshes.items()
        }
        for name in meshes:  # warm-up: models loaded, first connections made
            run_step(clients[name], min(10.0, args.seconds))
        done = {name: 0 for name in meshes}
        for round_ in range(args.rounds):
            for name in meshes:
                step = summarise(args.clients, run_step(clients[name], args.seconds), args.seconds)
                done[name] += step.requests - step.errors
                print(
                    f"round {round_ + 1} {name:34} {step.rate:6.2f} req/s, errors {step.errors},"
                    f" p50 {step.p50_ms:.0f} ms, p99 {step.p99_ms:.0f} ms",
                    flush=True,
                )
        for name in meshes:
            for client in clients[name]:
                client.clean_up()
    capped, baseline = done.values()
    print(f"requests/s ratio, launcher / baseline: {capped / max(baseline, 1):.3f}")


if __name__ == "__main__":
    main()
