"""The pages' static files, each under a URL that names its content, so a browser keeps it for a year.

A page links ``/static/charts.js?v=<first 12 hex of the SHA-256>``: while the file stays the
same so does its URL, and the answer says ``Cache-Control: public, max-age=31536000,
immutable``, so a second visit loads the scripts (plotly.js above all) from the cache without
asking; a changed file gets a new URL. The same path without the current version (a bookmark,
an old page, a test) still answers, with ``no-cache`` and an ETag, so the browser revalidates it.

The page scripts are ES modules that import each other by relative URL (``./charts.js``); those
imports are rewritten to the versioned URLs, so a whole module graph is cached alike and a
module's version covers the versions of what it imports (a changed ``common.js`` changes the URL
of every module above it). Everything is read and hashed once per process, on first use.

Text files are gzip-compressed once, in a background thread right after loading (plotly.js takes
~0.2 s at level 9): the answer carries ``Content-Encoding`` itself, so the app's GZipMiddleware
passes it through instead of compressing 1.5 MB on every request.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
import re
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from fastapi import HTTPException
from fastapi.responses import Response

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"  # may be stored, but is checked (ETag -> 304) before each use
COMPRESS_MIN_BYTES = 1024
TEXT_TYPES = ("text/", "application/javascript", "application/json", "image/svg+xml")
MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
               ".md": "text/plain; charset=utf-8", ".txt": "text/plain; charset=utf-8"}
# Third-party bundles (plotly.js) import nothing of ours: not scanned (that took 0.1 s for plotly.js).
VENDORED = "vendor/"
# A static import or re-export of a sibling module: `from "./charts.js"`, `import "./x.js"`.
RELATIVE_IMPORT = re.compile(r"""(\b(?:from|import)\s*)(["'])(\.{1,2}/[\w./-]+?\.js)\2""")


@dataclass
class Asset:
    """One file as served: its bytes (imports rewritten), version and media type; gzip made once."""

    body: bytes
    version: str
    media_type: str
    _gzipped: bytes | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def compressible(self) -> bool:
        return len(self.body) >= COMPRESS_MIN_BYTES and self.media_type.startswith(TEXT_TYPES)

    def gzipped(self) -> bytes:
        with self._lock:
            if self._gzipped is None:
                self._gzipped = gzip.compress(self.body, compresslevel=9, mtime=0)
            return self._gzipped


def _media_type(path: Path) -> str:
    return MEDIA_TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def _version(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:12]


class StaticAssets:
    """Every file under ``directory``, by its path relative to it (``vendor/plotly-initlab.min.js``)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        files = {path.relative_to(directory).as_posix(): path for path in sorted(directory.rglob("*"))
                 if path.is_file() and not any(part.startswith(".") for part in path.relative_to(directory).parts)}
        self.sources = {name: path.read_bytes() for name, path in files.items()}
        self.assets: dict[str, Asset] = {}
        for name in self.sources:
            self._load(name, visiting=set())
        threading.Thread(target=self._compress_all, name="static-gzip", daemon=True).start()

    def _load(self, name: str, visiting: set[str]) -> str:
        """The version of ``name``, loading (and versioning) the modules it imports first."""
        if name in self.assets:
            return self.assets[name].version
        source = self.sources[name]
        if name in visiting:  # an import cycle: the raw source's hash stands in for the rewritten one
            return _version(source)
        body = source
        if name.endswith(".js") and not name.startswith(VENDORED):
            visiting.add(name)
            body = RELATIVE_IMPORT.sub(lambda match: self._versioned_import(name, match, visiting),
                                       source.decode("utf-8")).encode("utf-8")
            visiting.discard(name)
        self.assets[name] = Asset(body, _version(body), _media_type(self.directory / name))
        return self.assets[name].version

    def _versioned_import(self, importer: str, match: re.Match[str], visiting: set[str]) -> str:
        prefix, quote, specifier = match.groups()
        target = _normalise(f"{Path(importer).parent.as_posix()}/{specifier}")
        if target not in self.sources:  # not ours to version; the browser reports the 404
            return match.group(0)
        return f"{prefix}{quote}{specifier}?v={self._load(target, visiting)}{quote}"

    def _compress_all(self) -> None:
        for asset in self.assets.values():
            if asset.compressible:
                asset.gzipped()

    def url(self, name: str) -> str:
        """The versioned URL of a file (a Jinja global: ``{{ static_url('study.js') }}``)."""
        return f"/static/{name}?v={self.assets[name].version}"

    def response(self, name: str, version: str | None, accept_encoding: str, if_none_match: str) -> Response:
        asset = self.assets.get(name)
        if asset is None:
            raise HTTPException(404, detail=f"There is no static file {name}.")
        compressed = asset.compressible and "gzip" in accept_encoding.lower()
        etag = f'"{asset.version}{"-gz" if compressed else ""}"'
        headers = {"Cache-Control": IMMUTABLE if version == asset.version else REVALIDATE, "ETag": etag}
        if asset.compressible:
            headers["Vary"] = "Accept-Encoding"
        if etag in {tag.strip() for tag in if_none_match.split(",")} or if_none_match.strip() == "*":
            return Response(status_code=304, headers=headers)
        if compressed:
            headers["Content-Encoding"] = "gzip"
        else:  # GZipMiddleware adds its own Vary to an uncompressed answer of this size
            headers.pop("Vary", None)
        return Response(asset.gzipped() if compressed else asset.body, media_type=asset.media_type, headers=headers)


def _normalise(path: str) -> str:
    """``a/./b/../c.js`` -> ``a/c.js``; a path that climbs above the static folder stays as it is (unknown)."""
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return path
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


@lru_cache(maxsize=4)
def load(directory: Path) -> StaticAssets:
    """The assets of ``directory``, read and hashed once per process."""
    return StaticAssets(directory)
