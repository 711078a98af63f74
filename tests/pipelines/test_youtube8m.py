"""YouTube8M resolver and downloader against a local HTTP server on 127.0.0.1 (no internet)."""

import http.server
import threading
from pathlib import Path

import pytest

from pipelines import youtube8m
from pipelines.config import PreprocessConfig
from pipelines.records import DeadLetter, VideoInput
from tests.pipelines.fixtures import make_video
from tests.pipelines.helpers import dead_letters, preprocess


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict = {}
    failures: dict = {}  # path -> number of 503 answers before success

    def do_GET(self):  # noqa: N802 (http.server API)
        if self.failures.get(self.path, 0) > 0:
            self.failures[self.path] -= 1
            self.send_error(503)
            return
        body = self.routes.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "video/x-msvideo" if self.path.endswith(".avi") else "text/javascript")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    video = make_video(tmp_path_factory.mktemp("served") / "clip.avi", 30, fourcc="MJPG").read_bytes()
    _Handler.routes = {
        "/lookup/Ab/AbCd.js": b'i("AbCd","dQw4w9WgXcQ");',
        "/lookup/Ef/EfGh.js": b'i("EfGh","aaaaaaaaaaa");',  # resolves, but its video is missing
        "/videos/dQw4w9WgXcQ.avi": video,
    }
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_shipped_list_has_the_papers_69_ids():
    ids = youtube8m.paper_ids()
    assert len(ids) == 69 == len(set(ids)) and ids[0] == "1ofm" and ids[-1] == "zger"
    with pytest.raises(ValueError, match="4-character"):
        youtube8m.parse_ids("abc")


def test_resolver_parses_the_lookup_and_retries_server_errors(server):
    assert youtube8m.lookup_address("http://x/2/j/i/", "1ofm") == "http://x/2/j/i/1o/1ofm.js"
    _Handler.failures = {"/lookup/Ab/AbCd.js": 2}
    assert youtube8m.resolve("AbCd", server + "/lookup", 5.0, retries=2, backoff_seconds=0.0) == "dQw4w9WgXcQ"
    _Handler.failures = {"/lookup/Ab/AbCd.js": 3}
    with pytest.raises(Exception, match="503"):
        youtube8m.resolve("AbCd", server + "/lookup", 5.0, retries=2, backoff_seconds=0.0)
    _Handler.failures = {}
    with pytest.raises(youtube8m.NotFound):
        youtube8m.resolve("ZzZz", server + "/lookup", 5.0, retries=5, backoff_seconds=10.0)  # 404: no retry


def test_fetch_downloads_into_the_cache_and_reports_failures_per_id(server, tmp_path):
    config = PreprocessConfig.from_mapping(
        {
            "source": "youtube8m",
            "input": "",
            "output": "",
            "youtube8m": {
                "lookup_url": server + "/lookup",
                "video_url": server + "/videos/{youtube_id}.avi",
                "cache_dir": str(tmp_path / "cache"),
                "retries": 1,
                "backoff_seconds": 0.0,
                "timeout": 5.0,
            },
        }
    )
    fetch = youtube8m.FetchYouTube8M(config)
    (video,) = list(fetch.process("AbCd"))
    assert isinstance(video, VideoInput) and Path(video.path) == tmp_path / "cache" / "AbCd.avi"
    assert Path(video.path).read_bytes() == _Handler.routes["/videos/dQw4w9WgXcQ.avi"]
    assert list(fetch.process("AbCd"))[0].path == video.path  # cached: no second download
    (missing,) = [item.value for item in fetch.process("EfGh")]
    assert isinstance(missing, DeadLetter) and missing.code == "download_failed"
    (unresolved,) = [item.value for item in fetch.process("ZzZz")]
    assert unresolved.code == "resolve_failed"


@pytest.mark.slow
def test_youtube8m_pipeline_feeds_the_video_source(server, tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text("AbCd EfGh\n")
    output = tmp_path / "out"
    manifest = preprocess(
        "youtube8m",
        ids,
        output,
        youtube8m={
            "lookup_url": server + "/lookup",
            "video_url": server + "/videos/{youtube_id}.avi",
            "cache_dir": str(tmp_path / "cache"),
            "retries": 0,
            "backoff_seconds": 0.0,
            "timeout": 5.0,
        },
    )
    assert manifest["counts"]["triplets_written"] == 4  # 3 s at 2 fps: 6 samples
    assert [(letter["frame"], letter["reason"].split(":")[0]) for letter in dead_letters(output)] == [
        ("EfGh", "download_failed")
    ]
