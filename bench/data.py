"""Where the benchmark data lives and how each public set is read (docs/benchmarks.md).

Every folder comes from a command-line argument or an environment variable; nothing names one
machine's paths. The sets themselves (../shared/DATASETS.md) stay outside the repository.

| set | variable | default |
|---|---|---|
| the project's small photo set | ``FACEGRID_FACES_DIR`` | ``../shared/faces`` beside the checkout |
| CelebA (``Celeb/`` + ``identity_CelebA.txt``) | ``FACEGRID_BENCH_CELEBA`` | none |
| CFP (``cfp-dataset/``) | ``FACEGRID_BENCH_CFP`` | none |
| WIDER FACE val (``WIDER_val/``, ``widerface_evaluate/``) | ``FACEGRID_BENCH_WIDER`` | none |
| UTKFace (``UTKFace/``) | ``FACEGRID_BENCH_UTKFACE`` | none |
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Results kept between runs (gitignored): detections, landmarks and embeddings per image.
CACHE = REPO / "build" / "bench-cache"

#: Seed of the CelebA pair generator; changing it changes every CelebA figure.
CELEBA_SEED = 20240808
#: CelebA protocol: folds, and genuine and impostor pairs per fold.
CELEBA_FOLDS = 10
CELEBA_PAIRS_PER_CLASS = 300


def faces_dir(explicit: Path | None = None) -> Path:
    """The project's small photo set: ``explicit``, else ``FACEGRID_FACES_DIR``, else
    ``../shared/faces`` beside the checkout (where CI has it) or, in a git worktree, beside the
    main checkout."""
    if explicit is not None:
        return explicit
    configured = os.environ.get("FACEGRID_FACES_DIR")
    if configured:
        return Path(configured)
    beside = REPO.parent / "shared" / "faces"
    marker = REPO / ".git"
    if not beside.is_dir() and marker.is_file():
        # A worktree's .git file reads "gitdir: <main>/.git/worktrees/<name>".
        gitdir = Path(marker.read_text().removeprefix("gitdir:").strip())
        if gitdir.parent.name == "worktrees":
            return gitdir.parents[2].parent / "shared" / "faces"
    return beside


def dataset_dir(explicit: Path | None, variable: str) -> Path | None:
    """A data set's folder from the argument or the environment variable, or None."""
    if explicit is not None:
        return explicit
    configured = os.environ.get(variable)
    return Path(configured) if configured else None


@dataclass(frozen=True)
class Pair:
    """Two photos and whether they show the same person."""

    a: str
    """First photo, relative to the set's folder."""
    b: str
    """Second photo."""
    same: bool
    """Same person."""


@dataclass(frozen=True)
class PairSet:
    """A verification protocol: pairs in folds."""

    name: str
    """Name printed in the results."""
    root: Path
    """Folder the photo paths are relative to."""
    folds: list[list[Pair]]
    """Pairs of each fold."""

    def photos(self) -> list[str]:
        """Every photo used, sorted."""
        return sorted({p for fold in self.folds for pair in fold for p in (pair.a, pair.b)})

    def digest(self) -> str:
        """Short fingerprint of the pair list (to compare runs)."""
        text = "\n".join(f"{p.a} {p.b} {int(p.same)}" for fold in self.folds for p in fold)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def celeba_identities(root: Path) -> dict[str, str]:
    """File name (under ``Celeb/``) -> identity, for the photos present."""
    present = {p.name for p in (root / "Celeb").glob("*.jpg")}
    labels = {}
    for line in (root / "identity_CelebA.txt").read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in present:
            labels[parts[0]] = parts[1]
    return labels


def celeba_pairs(root: Path, seed: int = CELEBA_SEED) -> PairSet:
    """CelebA verification pairs: identities shuffled and split into 10 disjoint folds; in each
    fold 300 genuine pairs (two distinct photos of one person, people drawn in turn so every
    person contributes) and 300 impostor pairs (photos of two people of the fold), no pair
    twice. Deterministic for a seed (Python's ``random``, stable across versions)."""
    labels = celeba_identities(root)
    by_person: dict[str, list[str]] = defaultdict(list)
    for name, person in sorted(labels.items()):
        by_person[person].append(f"Celeb/{name}")
    rng = random.Random(seed)
    people = sorted(p for p, photos in by_person.items() if len(photos) >= 2)
    rng.shuffle(people)
    folds = []
    for k in range(CELEBA_FOLDS):
        members = people[k::CELEBA_FOLDS]
        seen: set[tuple[str, str]] = set()
        genuine: list[Pair] = []
        turn = 0
        while len(genuine) < CELEBA_PAIRS_PER_CLASS:
            person = members[turn % len(members)]
            turn += 1
            a, b = sorted(rng.sample(by_person[person], 2))
            if (a, b) not in seen:
                seen.add((a, b))
                genuine.append(Pair(a, b, True))
        impostor: list[Pair] = []
        while len(impostor) < CELEBA_PAIRS_PER_CLASS:
            first, second = rng.sample(members, 2)
            a, b = sorted((rng.choice(by_person[first]), rng.choice(by_person[second])))
            if (a, b) not in seen:
                seen.add((a, b))
                impostor.append(Pair(a, b, False))
        folds.append(genuine + impostor)
    return PairSet("CelebA", root, folds)


def cfp_pairs(root: Path, protocol: str) -> PairSet:
    """CFP's official pairs: ``FF`` (frontal-frontal) or ``FP`` (frontal-profile), 10 folds of
    350 same + 350 different. The pair lists say ``Data/Images/NNN/...``; the photos of people
    001-450 are under ``Data/Images/train/``, 451-500 under ``Data/Images/test/``."""
    protocol_dir = root / "Protocol"

    def listing(name: str) -> dict[int, str]:
        out = {}
        for line in (protocol_dir / name).read_text().split("\n"):
            parts = line.split()
            if len(parts) == 2:
                relative = parts[1].removeprefix("../")  # Data/Images/NNN/frontal/NN.jpg
                person = int(relative.split("/")[2])
                split = "train" if person <= 450 else "test"
                out[int(parts[0])] = relative.replace("Data/Images/", f"Data/Images/{split}/", 1)
        return out

    frontal = listing("Pair_list_F.txt")
    second = frontal if protocol == "FF" else listing("Pair_list_P.txt")
    folds = []
    for fold_dir in sorted((protocol_dir / "Split" / protocol).iterdir()):
        fold = []
        for file, same in (("same.txt", True), ("diff.txt", False)):
            for line in (fold_dir / file).read_text().split():
                i, j = (int(v) for v in line.split(","))
                fold.append(Pair(frontal[i], second[j], same))
        folds.append(fold)
    name = "CFP frontal-frontal" if protocol == "FF" else "CFP frontal-profile"
    return PairSet(name, root, folds)


@dataclass(frozen=True)
class Labelled:
    """A UTKFace photo and its labels."""

    path: str
    """Relative to the set's folder."""
    age: int
    """Years."""
    male: bool
    """Gender label (0 male, 1 female in the file name)."""


def utkface_photos(root: Path) -> list[Labelled]:
    """UTKFace photos with well-formed names ``age_gender_race_date.jpg.chip.jpg``, sorted."""
    out = []
    for path in sorted(root.glob("*.jpg")):
        parts = path.name.split("_")
        if len(parts) < 4 or not (parts[0].isdigit() and parts[1] in ("0", "1")):
            continue
        out.append(Labelled(path.name, int(parts[0]), parts[1] == "0"))
    return out


def faces_manifest(root: Path) -> dict[str, object]:
    """``manifest.json`` of the small photo set."""
    manifest: dict[str, object] = json.loads((root / "manifest.json").read_text())
    return manifest
