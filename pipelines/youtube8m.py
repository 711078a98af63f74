"""The ``youtube8m`` source: YouTube8M ids -> YouTube ids -> cached downloads -> the ``video`` source.

The YouTube-8M site maps a 4-character id to a YouTube id through small JavaScript files,
``<lookup_url>/<first two characters>/<id>.js``, holding ``i("<yt8m id>","<youtube id>");``. Videos are
downloaded with yt-dlp into ``cache_dir/<yt8m id>.<ext>`` (an existing download is reused). Network errors
are retried with exponential back-off; an id that still fails becomes a dead letter
(``resolve_failed`` or ``download_failed``) and the rest of the job goes on.
"""

from __future__ import annotations

import os
import re
import time
import urllib.error
import urllib.request
from importlib import resources
from typing import Callable, List, Optional, Tuple

import apache_beam as beam

from pipelines import records
from pipelines.beam_util import reject
from pipelines.config import PreprocessConfig
from pipelines.records import VideoInput, dead_letter

_LOOKUP = re.compile(r'i\(\s*"(?P<yt8m>[^"]+)"\s*,\s*"(?P<youtube>[A-Za-z0-9_-]{11})"\s*\)')
_ID = re.compile(r"^[A-Za-z0-9_-]{4}$")


class NotFound(Exception):
    """The lookup or the video does not exist (not retried)."""


def paper_ids() -> List[str]:
    """The 69 YouTube8M ids used by the paper (``pipelines/data/youtube8m_ids.txt``)."""
    return parse_ids(resources.files("pipelines").joinpath("data/youtube8m_ids.txt").read_text())


def parse_ids(text: str) -> List[str]:
    """Ids separated by whitespace; '#' starts a comment. Raises ValueError on a malformed id."""
    ids = []
    for line in text.splitlines():
        for token in line.split("#", 1)[0].split():
            if not _ID.match(token):
                raise ValueError(f"{token!r} is not a 4-character YouTube8M id")
            ids.append(token)
    return ids


def lookup_address(base_url: str, yt8m_id: str) -> str:
    return f"{base_url.rstrip('/')}/{yt8m_id[:2]}/{yt8m_id}.js"


def parse_lookup(text: str, yt8m_id: str) -> str:
    match = _LOOKUP.search(text)
    if not match or match["yt8m"] != yt8m_id:
        raise ValueError(f"lookup answer for {yt8m_id} not understood: {text[:80]!r}")
    return match["youtube"]


def with_retries(action: Callable, retries: int, backoff_seconds: float, sleep: Callable = time.sleep):
    """Call ``action()`` up to ``1 + retries`` times; ``NotFound`` is not retried. Sleeps
    backoff, 2 x backoff, ... between attempts; re-raises the last error."""
    for attempt in range(retries + 1):
        try:
            return action()
        except NotFound:
            raise
        except Exception:  # network errors of urllib and yt-dlp come in many classes
            if attempt == retries:
                raise
            sleep(backoff_seconds * (2**attempt))


def resolve(yt8m_id: str, base_url: str, timeout: float, retries: int, backoff_seconds: float) -> str:
    """YouTube8M id -> YouTube id through the lookup service."""

    def fetch():
        try:
            with urllib.request.urlopen(lookup_address(base_url, yt8m_id), timeout=timeout) as answer:
                return parse_lookup(answer.read().decode("utf-8", "replace"), yt8m_id)
        except urllib.error.HTTPError as error:
            if error.code == 404:
                raise NotFound(f"no lookup entry ({error})") from error
            raise

    return with_retries(fetch, retries, backoff_seconds)


def cached_video(cache_dir: str, name: str) -> Optional[str]:
    if not os.path.isdir(cache_dir):
        return None
    for entry in sorted(os.listdir(cache_dir)):
        stem, extension = os.path.splitext(entry)
        if stem == name and extension not in (".part", ".ytdl", ".tmp") and not entry.startswith("."):
            return os.path.join(cache_dir, entry)
    return None


def download(
    url: str, cache_dir: str, name: str, video_format: str, retries: int, backoff_seconds: float, timeout: float
) -> str:
    """Download ``url`` with yt-dlp to ``cache_dir/<name>.<ext>`` (reused when already there)."""
    existing = cached_video(cache_dir, name)
    if existing:
        return existing
    import yt_dlp  # optional dependency (pyproject extra "youtube")

    os.makedirs(cache_dir, exist_ok=True)
    options = {
        "outtmpl": os.path.join(cache_dir, f"{name}.%(ext)s"),
        "format": video_format,
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "noplaylist": True,
        "retries": 0,  # retries are ours, with back-off
        "socket_timeout": timeout,
    }

    def fetch():
        with yt_dlp.YoutubeDL(options) as downloader:
            downloader.download([url])
        path = cached_video(cache_dir, name)
        if path is None:
            raise OSError(f"yt-dlp reported success but {cache_dir}/{name}.* is missing")
        return path

    return with_retries(fetch, retries, backoff_seconds)


class FetchYouTube8M(beam.DoFn):
    """YouTube8M id -> VideoInput of the cached download, or a dead letter."""

    def __init__(self, config: PreprocessConfig):
        self.config = config

    def process(self, yt8m_id: str):
        options = self.config.youtube8m
        try:
            youtube_id = resolve(
                yt8m_id,
                options.lookup_url,
                options.timeout,
                options.retries,
                options.backoff_seconds,
            )
        except Exception as error:  # reported per id, the job goes on
            yield reject(dead_letter("youtube8m", yt8m_id, records.RESOLVE_FAILED, _describe(error)))
            return
        url = options.video_url.format(youtube_id=youtube_id, yt8m_id=yt8m_id)
        try:
            path = download(
                url,
                options.cache_dir,
                yt8m_id,
                options.format,
                options.retries,
                options.backoff_seconds,
                options.timeout,
            )
        except Exception as error:
            yield reject(dead_letter("youtube8m", yt8m_id, records.DOWNLOAD_FAILED, f"{url}: {_describe(error)}"))
            return
        yield VideoInput("youtube8m", yt8m_id, path, None)


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}".splitlines()[0][:300]


def input_ids(config: PreprocessConfig) -> Tuple[str, ...]:
    """Ids to fetch: ``youtube8m.ids_file`` (or ``--input`` naming a file), else the paper's 69."""
    source = config.youtube8m.ids_file or (config.input if config.input and os.path.isfile(config.input) else None)
    if source:
        with open(source) as handle:
            return tuple(parse_ids(handle.read()))
    return tuple(paper_ids())
