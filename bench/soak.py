"""Soak: the mixed REST workload at steady concurrency for a long run, printing every
process's resident memory over time and each one's slope after warm-up.

    python -m bench.soak [--faces /work/shared/faces] [--minutes 10] [--clients 4]
                         [--sample-s 30] [--warm-up-min 2]

It starts its own mesh (the real launcher, free ports, a scratch data dir) and samples the
memory of every process it runs: its RSS, and the PSS of it with its children (PostgreSQL's
backends, Triton's python-backend stubs: their RSS counts the shared buffers once per process,
their PSS adds up to what they hold). Enrolments are undone as they go, so the data held stays
the same size. The goal: every slope under 1 MB/min after the warm-up (a least-squares line
through the samples after it).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import threading
import time
from pathlib import Path

from bench.mesh import started_mesh
from bench.workload import Client, Result, default_faces, ok, percentile, photos

GOAL_MB_PER_MIN = 1.0


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (minutes, MB) points, MB per minute."""
    n = len(points)
    if n < 2:
        return float("nan")
    mean_t = sum(t for t, _ in points) / n
    mean_m = sum(m for _, m in points) / n
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    return sum((t - mean_t) * (m - mean_m) for t, m in points) / spread if spread else 0.0


def floor_slope(points: list[tuple[float, float]], window_min: float = 2.0) -> float:
    """Slope through the lowest sample of each ``window_min`` window: memory a process keeps,
    without the buffers of the requests it happens to be serving at a sample."""
    if not points:
        return float("nan")
    start = points[0][0]
    windows: dict[int, tuple[float, float]] = {}
    for t, m in points:
        key = int((t - start) // window_min)
        if key not in windows or m < windows[key][1]:
            windows[key] = (t, m)
    return slope(sorted(windows.values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=Path, default=default_faces())
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--sample-s", type=float, default=30.0)
    parser.add_argument("--warm-up-min", type=float, default=2.0)
    parser.add_argument(
        "--keep-logs", type=Path, help="copy the mesh's process logs here before it stops"
    )
    args = parser.parse_args()
    singles, groups = photos(args.faces)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs; {args.clients} clients for"
        f" {args.minutes:g} min, samples every {args.sample_s:g} s"
    )
    with started_mesh() as mesh:
        clients = [
            Client(mesh.rest, mesh.keys, singles, groups, seed=i) for i in range(args.clients)
        ]
        results: list[Result] = []
        lock = threading.Lock()
        start = time.monotonic()
        stop = start + args.minutes * 60

        def loop(client: Client) -> None:
            while time.monotonic() < stop:
                result = client.one()
                with lock:
                    results.append(result)

        threads = [threading.Thread(target=loop, args=(c,)) for c in clients]
        for thread in threads:
            thread.start()
        rss: dict[str, list[tuple[float, float]]] = {}
        pss: dict[str, list[tuple[float, float]]] = {}
        names: list[str] = []
        while time.monotonic() < stop:
            minute = (time.monotonic() - start) / 60
            sizes = mesh.memory_mb()
            if not names:
                names = sorted(sizes)
                print("PSS of each process and its children, MB")
                print("min     requests  " + "  ".join(f"{n:>12}" for n in names))
            for name, (own, tree) in sizes.items():
                rss.setdefault(name, []).append((minute, own))
                pss.setdefault(name, []).append((minute, tree))
            with lock:
                done = len(results)
            print(
                f"{minute:5.1f}  {done:9d}  "
                + "  ".join(f"{sizes.get(n, (0, 0))[1]:10.1f}MB" for n in names),
                flush=True,
            )
            time.sleep(min(args.sample_s, max(0.0, stop - time.monotonic())))
        for thread in threads:
            thread.join()
        for client in clients:
            client.clean_up()
        minute = (time.monotonic() - start) / 60
        for name, (own, tree) in mesh.memory_mb().items():
            rss.setdefault(name, []).append((minute, own))
            pss.setdefault(name, []).append((minute, tree))
        if args.keep_logs is not None and mesh.launcher_log is not None:
            logs = mesh.launcher_log.parent / "mesh" / "logs"
            shutil.copytree(logs, args.keep_logs, dirs_exist_ok=True)
    good = [r for r in results if ok(r)]
    print(
        f"requests: {len(results)}, errors: {len(results) - len(good)},"
        f" p50 {percentile([r.seconds * 1000 for r in good], 0.5):.0f} ms,"
        f" p99 {percentile([r.seconds * 1000 for r in good], 0.99):.0f} ms"
    )
    print(
        f"slopes after {args.warm_up_min:g} min of warm-up (goal < {GOAL_MB_PER_MIN} MB/min):"
        " process: RSS first -> last (least squares, floor) | PSS of its tree (the same)"
    )
    worst = 0.0
    for name in sorted(rss):
        line = f"  {name:12}"
        for series in (rss[name], pss[name]):
            after = [(t, m) for t, m in series if t >= args.warm_up_min]
            rate, floor = slope(after), floor_slope(after)
            worst = max(worst, rate)
            first, last = (after[0][1], after[-1][1]) if after else (0.0, 0.0)
            line += f"  {first:7.1f} -> {last:7.1f} MB ({rate:+5.2f}, {floor:+5.2f} MB/min)"
        print(line)
    print("goal met" if worst < GOAL_MB_PER_MIN else f"goal missed: {worst:.2f} MB/min")


if __name__ == "__main__":
    main()
