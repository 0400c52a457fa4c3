"""Dataset registry: known datasets, where to fetch them, checksums, the cache.

``get(name)`` returns a folder holding the dataset's files, fetching it on
first use:

1. the cache, ``~/.cache/recfuse/<name>`` (``RECFUSE_DATA_DIR`` moves the root);
2. each registered source in order (a URL, or a file inside a PyPI wheel
   fetched with ``pip download``), verified by sha256 where the checksum is
   known (an unknown checksum is recorded and warned about);
3. a local copy, explicitly announced: ``$RECFUSE_LOCAL_DATA/<name>`` or a
   ``shared/data/<name>`` folder found walking up from the working directory.

Every folder the registry fills carries a ``.recfuse.json`` marker: the
format, the source and the sha256 of every file, so a cached dataset says
where it came from.  ``recfuse data get NAME --from PATH`` installs a copy the
user already has.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from recfuse.data.dataset import DataError, Interactions
from recfuse.data.readers import MARKER, detect_format, load

#: Environment variable that moves the cache root (default ``~/.cache/recfuse``).
DATA_DIR_ENV = "RECFUSE_DATA_DIR"
#: Environment variable naming folders (``os.pathsep``-separated) that hold local copies, ``<root>/<name>``.
LOCAL_DATA_ENV = "RECFUSE_LOCAL_DATA"

_console = Console(stderr=True)
_CHUNK = 1 << 20


class ChecksumWarning(UserWarning):
    """A dataset file was installed without a known checksum to verify it."""


@dataclass(frozen=True)
class Source:
    """One place a dataset can come from.

    Attributes
    ----------
    kind
        ``"url"`` (an archive or file over HTTP(S)) or ``"pypi"`` (a wheel
        fetched with ``pip download``; ``location`` is the requirement).
    location
        URL or pip requirement (``"recbole==1.2.1"``).
    sha256
        Checksum of the downloaded archive, or ``None`` when unknown.
    members
        Files to take from the archive, ``(path inside, local name)``; empty:
        unpack everything (a single top-level folder is flattened).
    """

    kind: str
    location: str
    sha256: str | None = None
    members: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        return self.location if self.kind == "url" else f"PyPI wheel {self.location} (via pip download)"


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset.

    Attributes
    ----------
    name
        Registry key and cache folder name.
    format
        Reader format (see :data:`recfuse.data.readers.FORMATS`).
    description
        One line for ``recfuse data list``.
    sources
        Tried in order by :func:`get`; empty for local-only datasets.
    files
        Known sha256 of files the dataset folder may hold (verified when present).
    homepage, license
        Where it is described and under which terms it is used.
    alt_formats
        Other layouts accepted for a local copy (ml-100k: the original
        ``u.data`` files as well as RecBole's atomic files).
    """

    name: str
    format: str
    description: str
    sources: tuple[Source, ...] = ()
    files: Mapping[str, str] = field(default_factory=dict)
    homepage: str = ""
    license: str = ""
    alt_formats: tuple[str, ...] = ()


_GROUPLENS = "https://files.grouplens.org/datasets/movielens"
_ML_LICENSE = "GroupLens usage license: research use, cite, no redistribution or commercial use without permission"
_S3REC = "https://github.com/salesforce/ICLRec (data/, S3-Rec preprocessing)"
_ML100K_FILES = {
    "ml-100k.inter": "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
    "ml-100k.item": "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
    "ml-100k.user": "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
}


def _movielens(name: str, description: str, fmt: str) -> DatasetSpec:
    return DatasetSpec(
        name=name,
        format=fmt,
        description=description,
        sources=(Source("url", f"{_GROUPLENS}/{name}.zip"),),
        homepage="https://grouplens.org/datasets/movielens/",
        license=_ML_LICENSE,
    )


#: The registry: every dataset recfuse knows by name.
DATASETS: dict[str, DatasetSpec] = {
    "ml-100k": DatasetSpec(
        name="ml-100k",
        format="atomic",
        description="MovieLens 100K: 943 users, 1682 movies, 100,000 ratings (RecBole atomic files)",
        sources=(
            Source("url", f"{_GROUPLENS}/ml-100k.zip"),
            Source(
                "pypi",
                "recbole==1.2.1",
                sha256="9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407",
                members=tuple((f"recbole/dataset_example/ml-100k/{f}", f) for f in _ML100K_FILES),
            ),
        ),
        files=_ML100K_FILES,
        homepage="https://grouplens.org/datasets/movielens/100k/",
        license=_ML_LICENSE,
        alt_formats=("ml-100k",),
    ),
    "ml-1m": _movielens("ml-1m", "MovieLens 1M: 6040 users, 3706 movies, 1,000,209 ratings", "ml-dat"),
    "ml-20m": _movielens("ml-20m", "MovieLens 20M: 138,493 users, 20 million ratings, tags", "movielens-csv"),
    "ml-25m": _movielens("ml-25m", "MovieLens 25M: 162,541 users, 25 million ratings, tags", "movielens-csv"),
    "ml-32m": _movielens("ml-32m", "MovieLens 32M: 200,948 users, 32 million ratings, tags", "movielens-csv"),
    "ml-latest": _movielens("ml-latest", "MovieLens latest full (changes over time)", "movielens-csv"),
    "ml-latest-small": _movielens(
        "ml-latest-small", "MovieLens latest small: ~600 users, ~100,000 ratings", "movielens-csv"
    ),
    "amazon-beauty": DatasetSpec(
        name="amazon-beauty",
        format="sequence",
        description="Amazon Beauty 5-core item sequences (S3-Rec preprocessing), no timestamps; local copy only",
        files={"Beauty.txt": "226cce9c3105299ca0db9615d7d3fb32b3175e90da43100ae352599f0f0107b8"},
        homepage=_S3REC,
        license="BSD-3-Clause (repository); Amazon review data under its own terms",
    ),
    "yelp": DatasetSpec(
        name="yelp",
        format="sequence",
        description="Yelp 5-core item sequences (S3-Rec preprocessing), no timestamps; local copy only",
        files={"Yelp.txt": "724b219106b81dd2349027da997334ddb6da9fe2f152ad6e0d97a93170f7caed"},
        homepage=_S3REC,
        license="BSD-3-Clause (repository); Yelp Open Dataset under its own terms",
    ),
}


class _SourceFailed(Exception):
    """One source could not deliver; the reason goes into the final message."""


# ================================================================== paths
def data_root() -> Path:
    """The cache root: ``$RECFUSE_DATA_DIR`` or ``~/.cache/recfuse``.

    Examples
    --------
    >>> import os
    >>> os.environ["RECFUSE_DATA_DIR"] = "/tmp/recfuse-cache"
    >>> str(data_root())
    '/tmp/recfuse-cache'
    >>> del os.environ["RECFUSE_DATA_DIR"]
    """
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "recfuse"


def spec(name: str) -> DatasetSpec:
    """The registry entry for ``name``; DataError listing the known names.

    Examples
    --------
    >>> spec("ml-100k").format
    'atomic'
    """
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r} (registered: {', '.join(DATASETS)})") from None


def cached_path(name: str) -> Path | None:
    """The cache folder of ``name`` if it is complete, else ``None``.

    Examples
    --------
    >>> import os, tempfile
    >>> os.environ["RECFUSE_DATA_DIR"] = tempfile.mkdtemp()
    >>> cached_path("ml-100k") is None
    True
    >>> del os.environ["RECFUSE_DATA_DIR"]
    """
    folder = data_root() / spec(name).name
    return folder if (folder / MARKER).is_file() else None


def find_local_copy(name: str) -> tuple[Path, str] | None:
    """A local folder holding dataset ``name``, and how it was found.

    Looks in each folder of ``$RECFUSE_LOCAL_DATA`` (``os.pathsep``-separated),
    then for ``shared/data/<name>`` in the working directory and each of its
    parents.

    Examples
    --------
    >>> import os, tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / "yelp").mkdir()
    >>> os.environ["RECFUSE_LOCAL_DATA"] = str(root)
    >>> find_local_copy("yelp")[1]
    '$RECFUSE_LOCAL_DATA'
    >>> del os.environ["RECFUSE_LOCAL_DATA"]
    """
    for root in filter(None, os.environ.get(LOCAL_DATA_ENV, "").split(os.pathsep)):
        candidate = Path(root).expanduser() / name
        if candidate.is_dir():
            return candidate, f"${LOCAL_DATA_ENV}"
    cwd = Path.cwd()
    for folder in (cwd, *cwd.parents):
        candidate = folder / "shared" / "data" / name
        if candidate.is_dir():
            return candidate, f"shared/data above the working directory {cwd}"
    return None


def _local_places(name: str) -> str:
    env = os.environ.get(LOCAL_DATA_ENV)
    where = f"${LOCAL_DATA_ENV}={env} has no {name}/" if env else f"${LOCAL_DATA_ENV} is not set"
    return f"{where}; no shared/data/{name} in {Path.cwd()} or its parents"


# =============================================================== checksums
def sha256sum(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "x"
    >>> _ = f.write_bytes(b"abc")
    >>> sha256sum(f)[:16]
    'ba7816bf8f01cfea'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verify_files(spec_: DatasetSpec, folder: Path, origin: str) -> tuple[dict[str, str], bool]:
    """sha256 of every file in ``folder``; check those the registry knows.

    A file named like a known file must match it; a file whose content matches
    a known checksum under another name counts as verified too.  Returns the
    checksums and whether anything was verified.
    """
    known = set(spec_.files.values())
    sums: dict[str, str] = {}
    verified = False
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MARKER):
        rel = path.relative_to(folder).as_posix()
        digest = sums[rel] = sha256sum(path)
        expected = spec_.files.get(path.name)
        if expected is not None and digest != expected:
            raise DataError(
                f"{origin}: {rel}: sha256 mismatch for {spec_.name}: expected {expected}, got {digest} "
                "(a different or altered copy; load it by path instead of by name)"
            )
        verified = verified or digest in known
    return sums, verified


# ================================================================ install
def _staging(name: str) -> Path:
    root = data_root()
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{name}-", dir=root))
    staging.chmod(0o755)  # mkdtemp makes it private; the cache is ordinary files
    return staging


def _copy_tree(src: Path, dst: Path) -> None:
    """Copy file contents only: a read-only source must not give a cache that ``--force`` cannot delete."""
    for folder, _, files in os.walk(src):
        rel = Path(folder).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for fname in files:
            if fname != MARKER:
                shutil.copyfile(Path(folder) / fname, dst / rel / fname)


def _finish(spec_: DatasetSpec, staging: Path, origin: str, extra: Mapping[str, Any]) -> Path:
    """Verify, write the marker and move ``staging`` into place atomically."""
    try:
        sums, verified = _verify_files(spec_, staging, origin)
        if not sums:
            raise DataError(f"{origin}: no files for {spec_.name}")
        try:
            found = detect_format(staging)
        except DataError as err:
            raise DataError(f"{origin}: does not look like {spec_.name}: {err}") from None
        if found != spec_.format and found not in spec_.alt_formats:
            raise DataError(
                f"{origin}: does not look like {spec_.name}: found {found!r} files, expected {spec_.format!r}"
            )
        archive_verified = bool(extra.get("archive_verified"))
        if not verified and not archive_verified:
            message = (
                f"{spec_.name}: no known sha256 to verify {origin}; recorded the observed checksums "
                f"in {data_root() / spec_.name / MARKER}"
            )
            warnings.warn(message, ChecksumWarning, stacklevel=3)
            _console.print(f"[yellow]warning:[/] {message}")
        marker = {
            "name": spec_.name,
            "format": found,
            "source": origin,
            "verified": verified or archive_verified,
            "sha256": sums,
            "installed": datetime.now(timezone.utc).isoformat(timespec="seconds"),  # noqa: UP017 (py3.10)
            **extra,
        }
        (staging / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        target = data_root() / spec_.name
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
        return target
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _safe_members(archive: zipfile.ZipFile) -> Iterator[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """Archive files with their paths, refusing absolute paths and ``..``."""
    infos = [i for i in archive.infolist() if not i.is_dir() and not i.filename.startswith("__MACOSX/")]
    tops = {PurePosixPath(i.filename).parts[0] for i in infos}
    strip = len(tops) == 1 and all(len(PurePosixPath(i.filename).parts) > 1 for i in infos)
    for info in infos:
        rel = PurePosixPath(info.filename)
        if rel.is_absolute() or ".." in rel.parts:
            raise DataError(f"{archive.filename}: unsafe path in archive: {info.filename!r}")
        yield info, PurePosixPath(*rel.parts[1:]) if strip else rel


def _unpack(archive_path: Path, staging: Path, members: tuple[tuple[str, str], ...], origin: str) -> None:
    if not zipfile.is_zipfile(archive_path):
        if members:
            raise DataError(f"{origin}: not a zip archive")
        shutil.copyfile(archive_path, staging / archive_path.name)
        return
    with zipfile.ZipFile(archive_path) as archive:
        if members:
            names = set(archive.namelist())
            for inner, local in members:
                if inner not in names:
                    raise DataError(f"{origin}: {inner} is not in the archive")
                with archive.open(inner) as src, open(staging / local, "wb") as dst:
                    shutil.copyfileobj(src, dst, _CHUNK)
            return
        for info, rel in _safe_members(archive):
            out = staging / Path(*rel.parts)
            out.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, _CHUNK)


def _check_archive(source: Source, path: Path) -> dict[str, Any]:
    digest = sha256sum(path)
    if source.sha256 is not None and digest != source.sha256:
        raise _SourceFailed(f"sha256 mismatch: expected {source.sha256}, got {digest}")
    return {"archive_sha256": digest, "archive_verified": source.sha256 is not None}


def _download(url: str, dest: Path, timeout: float = 30.0) -> None:
    """Stream ``url`` to ``dest`` with a progress bar."""
    try:
        response = urllib.request.urlopen(url, timeout=timeout)
    except urllib.error.HTTPError as err:
        raise _SourceFailed(f"HTTP {err.code} {err.reason}") from None
    except urllib.error.URLError as err:
        raise _SourceFailed(f"cannot connect ({err.reason})") from None
    except (OSError, ValueError) as err:
        raise _SourceFailed(f"cannot connect ({err})") from None
    total = int(response.headers.get("Content-Length") or 0) or None
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    try:
        with response, open(dest, "wb") as out, Progress(*columns, console=_console, transient=True) as bar:
            task = bar.add_task(f"downloading {dest.name}", total=total)
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                out.write(chunk)
                bar.advance(task, len(chunk))
    except OSError as err:
        raise _SourceFailed(f"download interrupted ({err})") from None


def _pip_download(requirement: str, dest: Path) -> Path:
    """Fetch one wheel with pip (no install, no dependencies) and return its path."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--quiet",
        "-d",
        str(dest),
        requirement,
    ]
    with _console.status(f"pip download {requirement} ..."):
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise _SourceFailed(f"pip download failed: {err}") from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        reason = " | ".join(lines[-2:]) or f"exit code {proc.returncode}"
        raise _SourceFailed(f"pip download failed (package index unreachable or package missing): {reason}")
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise _SourceFailed(f"pip download produced {len(wheels)} wheels in {dest}")
    return wheels[0]


def _install_from_source(spec_: DatasetSpec, source: Source) -> Path:
    staging = _staging(spec_.name)
    try:
        with tempfile.TemporaryDirectory(prefix="recfuse-dl-") as tmp:
            if source.kind == "url":
                archive = Path(tmp) / PurePosixPath(source.location).name
                _download(source.location, archive)
            elif source.kind == "pypi":
                archive = _pip_download(source.location, Path(tmp))
            else:
                raise _SourceFailed(f"unknown source kind {source.kind!r}")
            extra = _check_archive(source, archive)
            if not extra["archive_verified"]:
                extra["note"] = "archive checksum not registered; observed value recorded"
            _unpack(archive, staging, source.members, source.describe())
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return _finish(spec_, staging, source.describe(), extra)


def _install_local(spec_: DatasetSpec, path: Path, how: str) -> Path:
    """Copy a local folder, file or zip archive into the cache (verified)."""
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    origin = f"local copy {path} ({how})"
    staging = _staging(spec_.name)
    extra: dict[str, Any] = {}
    try:
        if path.is_dir():
            _copy_tree(path, staging)
        elif zipfile.is_zipfile(path):
            archive_sources = [s for s in spec_.sources if s.kind == "url"]
            known = {s.sha256 for s in archive_sources if s.sha256}
            digest = sha256sum(path)
            extra = {"archive_sha256": digest, "archive_verified": digest in known}
            _unpack(path, staging, (), origin)
        else:
            shutil.copyfile(path, staging / path.name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return _finish(spec_, staging, origin, extra)


# ==================================================================== API
def get(
    name: str,
    *,
    force: bool = False,
    from_path: str | Path | None = None,
    local_fallback: bool = True,
) -> Path:
    """Folder holding dataset ``name``, fetching and caching it if needed.

    Parameters
    ----------
    name
        A key of :data:`DATASETS`.
    force
        Fetch again even if cached.
    from_path
        Install this local copy (folder, single file or zip archive) instead
        of downloading; known checksums are verified.
    local_fallback
        When no source is reachable, use a local copy from
        ``$RECFUSE_LOCAL_DATA`` or ``shared/data`` (announced on stderr).

    Returns
    -------
    Path
        ``<data_root()>/<name>``.

    Raises
    ------
    DataError
        Unknown name, checksum mismatch, or no source worked (the message
        lists every source tried and why it failed).

    Examples
    --------
    >>> import os, tempfile
    >>> os.environ["RECFUSE_DATA_DIR"] = tempfile.mkdtemp()
    >>> path = get("yelp", from_path="/work/shared/data/yelp")  # doctest: +SKIP
    >>> sorted(p.name for p in path.iterdir())  # doctest: +SKIP
    ['.recfuse.json', 'LICENSE.txt', 'SOURCE.txt', 'Yelp.txt']
    >>> del os.environ["RECFUSE_DATA_DIR"]
    """
    spec_ = spec(name)
    if from_path is not None:
        path = _install_local(spec_, Path(from_path).expanduser(), "--from")
        _console.print(f"{spec_.name}: installed from {from_path} into {path}")
        return path
    cached = cached_path(name)
    if cached is not None and not force:
        return cached
    failures: list[str] = []
    for source in spec_.sources:
        try:
            path = _install_from_source(spec_, source)
        except (_SourceFailed, DataError, OSError) as err:
            failures.append(f"{source.describe()}: {err}")
            continue
        if failures:
            _console.print(f"{spec_.name}: got it from {source.describe()}; failed before: " + "; ".join(failures))
        return path
    if not spec_.sources:
        failures.append(f"{spec_.name} has no download source (distribution is local-only)")
    local = find_local_copy(spec_.name) if local_fallback else None
    if local is not None:
        folder, how = local
        _console.print(
            f"[yellow]{spec_.name}: no source reachable; using the LOCAL copy at {folder} (found via {how})[/]"
        )
        return _install_local(spec_, folder, how)
    where = _local_places(spec_.name) if local_fallback else "local fallback disabled"
    raise DataError(
        f"could not get dataset {spec_.name!r}. Tried:\n"
        + "\n".join(f"  {i}. {reason}" for i, reason in enumerate(failures, start=1))
        + f"\n  local copies: {where}\n"
        + f"Get the files yourself and run: recfuse data get {spec_.name} --from PATH"
    )


def load_dataset(name_or_path: str | Path, **kw: Any) -> Interactions:
    """Load a registered dataset by name (fetching it if needed) or any path.

    Parameters
    ----------
    name_or_path
        A key of :data:`DATASETS`, or a file/folder for
        :func:`recfuse.data.readers.load`.  A registered name (as ``str``)
        wins over a same-named folder in the working directory; pass a
        :class:`~pathlib.Path` to read that folder.
    **kw
        Passed to the reader (``drop_duplicates=True``, column mapping, ...).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "Toy.txt"
    >>> _ = f.write_text("1 10 11\\n2 11\\n")
    >>> load_dataset(f).n_events
    3
    >>> load_dataset("ml-100k").n_events  # doctest: +SKIP
    100000
    """
    key = str(name_or_path)
    if key in DATASETS and not (isinstance(name_or_path, Path) and name_or_path.exists()):
        folder = get(key)
        return load(folder, name=key, **kw)
    return load(Path(name_or_path), **kw)


def list_datasets() -> list[dict[str, Any]]:
    """One row per registered dataset: name, format, description, cached path.

    Examples
    --------
    >>> [row["name"] for row in list_datasets()][:2]
    ['ml-100k', 'ml-1m']
    """
    rows = []
    for spec_ in DATASETS.values():
        cached = cached_path(spec_.name)
        rows.append(
            {
                "name": spec_.name,
                "format": spec_.format,
                "description": spec_.description,
                "sources": [s.describe() for s in spec_.sources] or ["local copy only (--from)"],
                "cached": cached is not None,
                "path": str(cached) if cached else None,
            }
        )
    return rows


__all__ = [
    "DATASETS",
    "ChecksumWarning",
    "DatasetSpec",
    "Source",
    "cached_path",
    "data_root",
    "find_local_copy",
    "get",
    "list_datasets",
    "load_dataset",
    "sha256sum",
    "spec",
]
