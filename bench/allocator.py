"""Throughput of the mesh with one set of memory settings against another, measured in one run.

    python -m bench.allocator [--faces /work/shared/faces] [--clients 4] [--seconds 60]
                              [--rounds 3] [--variant K=V ...] [--baseline K=V ...]

Two meshes run side by side (the real launcher, free ports, scratch data dirs), each with its
own variables added to the launcher's environment (inherited by every process it starts): by
default the mesh as the launcher starts it against one without malloc trimming
(FACEGRID_MALLOC_TRIM_S=0); e.g. ``--variant MALLOC_ARENA_MAX=2 --baseline MALLOC_ARENA_MAX=16``
for glibc's arena count. Rounds of the load test's mix at --clients alternate between them (only
one is loaded at a time), so the machine's noise falls on both; the ratio is the variant's
requests/s over the baseline's, summed over the rounds.
"""

from __future__ import annotations

import argparse
import os
import platform
from contextlib import ExitStack
from pathlib import Path

from bench.load import run_step, summarise
from bench.mesh import started_mesh
from bench.workload import Client, default_faces, photos


def assignments(pairs: list[str]) -> dict[str, str]:
    """``["K=V", ...]`` as a mapping."""
    return dict(pair.split("=", 1) for pair in pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=Path, default=default_faces())
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variant", nargs="*", default=[])
    parser.add_argument("--baseline", nargs="*", default=["FACEGRID_MALLOC_TRIM_S=0"])
    args = parser.parse_args()
    singles, groups = photos(args.faces)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs; {args.clients} clients,"
        f" {args.rounds} rounds of {args.seconds:g} s per mesh"
    )
    setups = {
        "variant " + (" ".join(args.variant) or "(launcher)"): assignments(args.variant),
        "baseline " + (" ".join(args.baseline) or "(launcher)"): assignments(args.baseline),
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
                    f"round {round_ + 1} {name:44} {step.rate:6.2f} req/s, errors {step.errors},"
                    f" p50 {step.p50_ms:.0f} ms, p99 {step.p99_ms:.0f} ms",
                    flush=True,
                )
        for name in meshes:
            for client in clients[name]:
                client.clean_up()
    variant, baseline = done.values()
    print(f"requests/s ratio, variant / baseline: {variant / max(baseline, 1):.3f}")


if __name__ == "__main__":
    main()
