"""``python -m facegrid_import FOLDER --api-key KEY``: enrol ``FOLDER/<subject>/<photo>`` files.

Prints a progress bar while it runs and, at the end, a line per file that was not stored with
the reason. Rerunning the same command resumes: files already stored (listed in the state file)
are skipped. Ctrl-C stops sending, waits for the photos in flight, and saves the state.

Exit status: 0 every file stored, 1 some files failed, 2 the call was refused or broke off,
130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path

from tqdm import tqdm

from facegrid_import.files import scan
from facegrid_import.state import ImportState, default_path
from facegrid_import.upload import CallFailed, FileError, Outcome, target_of, upload


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m facegrid_import",
        description="Enrol a folder of subject/photo.jpg files into a Facegrid collection.",
    )
    parser.add_argument("folder", type=Path, help="folder of <subject>/<photo> files")
    parser.add_argument("--api-key", required=True, help="API key of a RECOGNITION service")
    parser.add_argument(
        "--url",
        default="127.0.0.1:8000",
        help="gRPC address of Facegrid (Envoy or an api_svc node), default 127.0.0.1:8000",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=8,
        help="photos in flight (sent, result not yet back), default 8",
    )
    parser.add_argument(
        "--state",
        type=Path,
        help="state file of stored files (default FOLDER/.facegrid-import-<key digest>.jsonl)",
    )
    parser.add_argument("--report", type=Path, help="also write the failed files as JSON here")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.concurrency < 1:
        parser.error("--concurrency must be 1 or more")
    if not args.folder.is_dir():
        parser.error(f"{args.folder} is not a folder")
    return args


async def _run(args: argparse.Namespace, state: ImportState, bar: tqdm) -> tuple[Outcome, bool]:
    photos, orphans = scan(args.folder)
    pending = [photo for photo in photos if photo.key not in state.done]
    bar.reset(total=len(pending))
    skipped = len(photos) - len(pending)
    if skipped:
        bar.write(f"{skipped} files already stored (state {state.path}): skipped")
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
    failures = 0

    def on_result(ok: bool) -> None:
        nonlocal failures
        failures += not ok
        bar.update()
        bar.set_postfix(failed=failures, refresh=False)

    outcome = await upload(
        pending,
        state,
        target=target_of(args.url),
        api_key=args.api_key,
        concurrency=args.concurrency,
        on_result=on_result,
        stop=stop,
    )
    outcome.errors.extend(
        FileError(key, "NOT_IN_A_SUBJECT_FOLDER", 0, "put it in a folder named after its subject")
        for key in orphans
    )
    return outcome, stop.is_set()


def main(argv: list[str] | None = None) -> int:
    """Runs the importer; the exit status."""
    args = _arguments(argv)
    state = ImportState(args.state or default_path(args.folder, args.api_key))
    bar = tqdm(unit="photo", disable=args.no_progress, dynamic_ncols=True)
    try:
        outcome, interrupted = asyncio.run(_run(args, state, bar))
    except CallFailed as failure:
        bar.close()
        print(f"import stopped: {failure}", file=sys.stderr)
        print(f"{len(state.done)} files stored so far; rerun to resume", file=sys.stderr)
        return 2
    finally:
        state.close()
    bar.close()
    for error in sorted(outcome.errors, key=lambda e: e.key):
        code = f" (code {error.code})" if error.code else ""
        print(f"FAILED {error.key}: {error.reason}{code}: {error.message}")
    if args.report is not None:
        args.report.write_text(json.dumps([_as_dict(e) for e in outcome.errors], indent=1))
    print(
        f"stored {outcome.stored}, failed {len(outcome.errors)},"
        f" {len(state.done)} in all in the state file {state.path}"
    )
    if interrupted:
        print("interrupted: rerun the same command to resume", file=sys.stderr)
        return 130
    return 1 if outcome.errors else 0


def _as_dict(error: FileError) -> dict[str, object]:
    return {"key": error.key, "reason": error.reason, "code": error.code, "message": error.message}


if __name__ == "__main__":
    sys.exit(main())
