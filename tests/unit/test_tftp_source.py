"""The TFTP policy without sockets: allowed names, the single-flight cached fetch, file lookup."""

from __future__ import annotations

import os
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bootstrap.tftp import CacheDir, Fetcher, FileSource, Misses, clean_name


@pytest.mark.parametrize("raw, expected", [
    ("undionly.kpxe", "undionly.kpxe"),
    ("/undionly.kpxe", "undionly.kpxe"),
    ("//efi/ipxe.efi", "efi/ipxe.efi"),
    ("../etc/passwd", None),
    ("a/../../etc/passwd", None),
    ("a/./b", None),
    ("a//b", None),
    ("..", None),
    ("", None),
    ("/", None),
    ("boot\\ipxe.efi", None),
    ("bad\x00name", None),
    ("line\nbreak", None),
    (".fetch-abc123", None),
    ("efi/.hidden", None),
    ("/.root/x", None),
    ("ipxe.efi.", "ipxe.efi."),
])
def test_clean_name_refuses_anything_that_could_leave_the_tree(raw, expected):
    assert clean_name(raw) == expected


class CountingGet:
    """Stands in for the controller's HTTP GET; records every URL asked."""

    def __init__(self, files: dict, delay: float = 0.0, fail_after: int | None = None):
        self.files, self.delay, self.fail_after = files, delay, fail_after
        self.urls: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, url, out):
        with self.lock:
            self.urls.append(url)
        time.sleep(self.delay)
        name = url.rsplit("/files/", 1)[1]
        if name not in self.files:
            return False
        data = self.files[name]
        if self.fail_after is not None:
            out.write(data[: self.fail_after])
            raise ConnectionResetError("controller went away")
        out.write(data)
        return True


def test_concurrent_fetches_of_one_name_ask_the_controller_once(tmp_path):
    get = CountingGet({"big.bin": b"x" * 5000}, delay=0.2)
    fetcher = Fetcher("http://controller", str(tmp_path), get=get)
    results = []
    threads = [threading.Thread(target=lambda: results.append(fetcher.fetch("big.bin")))
               for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert get.urls == ["http://controller/files/big.bin"]
    assert results == [str(tmp_path / "big.bin")] * 20
    assert (tmp_path / "big.bin").read_bytes() == b"x" * 5000


def test_a_broken_download_leaves_no_file_and_no_temporary(tmp_path):
    get = CountingGet({"x.bin": b"y" * 1000}, fail_after=10)
    fetcher = Fetcher("http://controller", str(tmp_path), get=get)
    assert fetcher.fetch("x.bin") is None
    assert os.listdir(tmp_path) == []


def test_a_name_the_controller_lacks_is_not_asked_again_at_once(tmp_path):
    get = CountingGet({})
    fetcher = Fetcher("http://controller", str(tmp_path), get=get)
    assert fetcher.fetch("nope.bin") is None
    assert fetcher.fetch("nope.bin") is None
    assert len(get.urls) == 1


def test_a_miss_is_asked_again_after_its_time(tmp_path):
    get = CountingGet({})
    fetcher = Fetcher("http://controller", str(tmp_path), get=get, misses=Misses(ttl=0.0))
    fetcher.fetch("nope.bin")
    fetcher.fetch("nope.bin")
    assert len(get.urls) == 2


def test_names_are_quoted_and_nested_names_cached_in_subdirectories(tmp_path):
    get = CountingGet({"efi/a%20b.efi": b"efi"})
    fetcher = Fetcher("http://controller/", str(tmp_path), get=get)
    assert fetcher.fetch("efi/a b.efi") == str(tmp_path / "efi" / "a b.efi")
    assert get.urls == ["http://controller/files/efi/a%20b.efi"]


def test_without_a_controller_nothing_is_fetched(tmp_path):
    fetcher = Fetcher(None, str(tmp_path), get=CountingGet({"a": b"a"}))
    assert fetcher.fetch("a") is None
    assert not FileSource(str(tmp_path), fetcher).needs_fetch("a")


def test_the_root_wins_over_the_cache_and_replaced_files_are_reread(tmp_path):
    root, cache = tmp_path / "root", tmp_path / "cache"
    root.mkdir(), cache.mkdir()
    (cache / "f.bin").write_bytes(b"cached")
    source = FileSource(str(root), Fetcher("http://c", str(cache), get=CountingGet({})))
    assert source.open("f.bin").read() == b"cached"
    (root / "f.bin").write_bytes(b"root")
    assert source.open("f.bin").read() == b"root"
    (root / "f.bin").write_bytes(b"root, new and longer")
    assert source.open("f.bin").read() == b"root, new and longer"
    assert source.open("missing.bin") is None
    assert source.needs_fetch("missing.bin") and not source.needs_fetch("f.bin")


def test_a_directory_is_not_a_file(tmp_path):
    (tmp_path / "sub").mkdir()
    source = FileSource(str(tmp_path), Fetcher(None, str(tmp_path / "c"), get=CountingGet({})))
    assert source.open("sub") is None


def test_remembered_misses_are_bounded_and_the_newest_kept(tmp_path):
    fetcher = Fetcher("http://controller", str(tmp_path), get=CountingGet({}),
                      misses=Misses(limit=3))
    for i in range(7):
        fetcher.fetch(f"random-{i}")
    assert len(fetcher.misses) == 3 and "random-6" in fetcher.misses


def test_a_missing_nested_name_leaves_no_directory(tmp_path):
    fetcher = Fetcher("http://controller", str(tmp_path), get=CountingGet({}))
    assert fetcher.fetch("a/b/c/d.bin") is None
    assert os.listdir(tmp_path) == []


def test_the_cache_evicts_least_recently_used_files_and_their_empty_directories(tmp_path):
    files = {f"d{i}/f.bin": bytes([i]) * 100 for i in range(5)}
    fetcher = Fetcher("http://c", str(tmp_path), get=CountingGet(files),
                      cache=CacheDir(str(tmp_path), max_bytes=300, max_files=10))
    for name in ("d0/f.bin", "d1/f.bin", "d2/f.bin"):
        assert fetcher.fetch(name)
    assert fetcher.cached("d0/f.bin")            # used again: d1 is now the oldest
    assert fetcher.fetch("d3/f.bin")
    assert sorted(os.listdir(tmp_path)) == ["d0", "d2", "d3"]
    assert fetcher.cache.bytes == 300


def test_the_cache_bounds_its_file_count(tmp_path):
    files = {f"f{i}": b"x" for i in range(10)}
    fetcher = Fetcher("http://c", str(tmp_path), get=CountingGet(files),
                      cache=CacheDir(str(tmp_path), max_files=4))
    for name in files:
        assert fetcher.fetch(name)
    assert sorted(os.listdir(tmp_path)) == ["f6", "f7", "f8", "f9"]


def test_a_restart_counts_what_the_cache_holds_and_drops_unfinished_downloads(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "old.bin").write_bytes(b"o" * 50)
    (tmp_path / ".fetch-abc").write_bytes(b"half")
    (tmp_path / "miss" / "left" / "by" / "an" / "old" / "version").mkdir(parents=True)
    cache = CacheDir(str(tmp_path), max_bytes=1000)
    assert cache.bytes == 50
    assert not (tmp_path / ".fetch-abc").exists()
    assert os.listdir(tmp_path) == ["a"]
    assert CacheDir(str(tmp_path), max_bytes=10).bytes == 0      # shrunk: evicted at start
    assert os.listdir(tmp_path) == []


def test_a_download_larger_than_the_cache_is_dropped(tmp_path):
    fetcher = Fetcher("http://c", str(tmp_path), get=CountingGet({"big": b"b" * 500}),
                      cache=CacheDir(str(tmp_path), max_bytes=100))
    assert fetcher.fetch("big") is None
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("raw", ["/".join("d" * 9), "x" * 256])
def test_clean_name_bounds_depth_and_length(raw):
    assert clean_name(raw) is None


@given(st.text(max_size=60))
def test_a_clean_name_never_climbs_or_is_absolute(raw):
    name = clean_name(raw)
    if name is not None:
        assert not name.startswith("/")
        assert not any(part.startswith(".") for part in name.split("/"))
        assert os.path.normpath(os.path.join("/root-dir", name)).startswith("/root-dir/")
