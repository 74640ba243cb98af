import pytest

from fakes import sha256_dir
from stylesearch.common.files import atomic_dir, atomic_write_text


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "a" / "f.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["f.txt"]  # no temp files left behind


def test_failed_atomic_dir_keeps_the_old_directory(tmp_path):
    target = tmp_path / "index"
    with atomic_dir(target) as tmp:
        (tmp / "data").write_text("v1")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "data").write_text("half of v2")
        raise RuntimeError("crash mid-build")
    assert (target / "data").read_text() == "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]


def test_dir_hash_sees_content_and_names(tmp_path):
    (tmp_path / "x").write_text("1")
    first = sha256_dir(tmp_path)
    (tmp_path / "x").write_text("2")
    assert sha256_dir(tmp_path) != first


def test_verified_sha256_is_remembered_until_the_file_changes(tmp_path, monkeypatch):
    from stylesearch.common import files

    monkeypatch.setenv("STYLESEARCH_CACHE", str(tmp_path / "cache"))
    target = tmp_path / "weights.bin"
    target.write_bytes(b"a" * 1000)
    reads = []
    real = files.sha256_file
    monkeypatch.setattr(files, "sha256_file", lambda p, *a: reads.append(p) or real(p, *a))
    first = files.verified_sha256(target)
    assert files.verified_sha256(target) == first and len(reads) == 1  # the second answer came from the cache
    target.write_bytes(b"b" * 1000)  # same size; a write changes mtime and ctime
    assert files.verified_sha256(target) == real(target) != first and len(reads) == 2


def test_the_hash_cache_is_parsed_once_until_another_process_rewrites_it(tmp_path, monkeypatch):
    import json

    from stylesearch.common import files

    monkeypatch.setenv("STYLESEARCH_CACHE", str(tmp_path / "cache"))
    targets = [tmp_path / f"part{i}.bin" for i in range(3)]
    for i, target in enumerate(targets):
        target.write_bytes(bytes([i]) * 100)
        files.verified_sha256(target)  # hashed and recorded
    parses = []
    real_loads = json.loads
    monkeypatch.setattr(json, "loads", lambda text, *a, **k: parses.append(1) or real_loads(text, *a, **k))
    for _ in range(4):
        assert [files.verified_sha256(t) for t in targets] == [files.sha256_file(t) for t in targets]
    assert len(parses) == 1  # twelve verifications, one parse
    newcomer = tmp_path / "newcomer.bin"
    newcomer.write_bytes(b"n")
    cache_file = files._hash_cache_file()
    recorded = {**real_loads(cache_file.read_text()), f"{newcomer.resolve()}|{files._stamp(newcomer)}": "f" * 64}
    atomic_write_text(cache_file, json.dumps(recorded))  # another process hashed it meanwhile
    assert files.verified_sha256(newcomer) == "f" * 64  # its entry is seen, not missed for an old parse
