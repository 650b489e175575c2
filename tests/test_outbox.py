"""The file outbox under pressure: no message overwrites another, concurrent writers for one
address never collide, and a full disk leaves no temporary files behind (a real, tiny tmpfs)."""
from __future__ import annotations

import os
import subprocess
import threading
import uuid
from email.message import EmailMessage

import pytest

from digest.delivery.backends import FileBackend
from tests.test_deliver import make_settings, message_for


def confirmation(to: str, n: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Paper Digest <digest@example.org>"
    msg["To"] = to
    msg["Subject"] = f"Confirm your subscription ({n})"
    msg["Message-ID"] = f"<confirm.{n}@example.org>"
    msg.set_content(f"confirmation number {n}\n")
    return msg


def test_two_confirmation_mails_to_one_address_both_stay(tmp_path):
    backend = FileBackend(tmp_path)
    first = backend.send(confirmation("ada@example.org", 1))
    second = backend.send(confirmation("ada@example.org", 2))
    assert first.ok and second.ok and first.path != second.path
    files = sorted(tmp_path.rglob("*.eml"))
    assert len(files) == 2
    bodies = sorted(f.read_bytes() for f in files)
    assert b"confirmation number 1" in bodies[0] and b"confirmation number 2" in bodies[1]


def test_digest_sent_twice_keeps_both_copies_and_previews(tmp_path):
    from digest.email.render import Renderer

    s = make_settings(f"file://{tmp_path}")
    msg = message_for(s, Renderer(s), 3, "ada@example.org")
    backend = FileBackend(tmp_path)
    a, b = backend.send(msg), backend.send(msg)
    assert a.ok and b.ok and a.path != b.path
    folder = tmp_path / "2026-11-21"
    assert len(list(folder.glob("*.eml"))) == 2 and len(list(folder.glob("*.html"))) == 2


def test_concurrent_writers_for_one_address_never_collide(tmp_path):
    backend = FileBackend(tmp_path)
    results, start = [], threading.Barrier(24)

    def one(n):
        start.wait()
        results.append(backend.send(confirmation("same@example.org", n)))

    threads = [threading.Thread(target=one, args=(n,)) for n in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.error for r in results if not r.ok] == []
    files = list(tmp_path.rglob("*.eml"))
    assert len(files) == 24
    numbers = {f.read_bytes().split(b"confirmation number ")[1].split(b"\r\n")[0] for f in files}
    assert numbers == {str(n).encode() for n in range(24)}
    assert [p.name for p in tmp_path.rglob("*.tmp")] == []


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 256 KB tmpfs (needs root and mount permission; skipped elsewhere)."""
    where = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_full_disk_leaves_no_temporary_files(tiny_disk):
    from digest.email.render import Renderer

    s = make_settings(f"file://{tiny_disk}")
    renderer = Renderer(s)
    backend = FileBackend(tiny_disk)
    results = [backend.send(message_for(s, renderer, i, f"reader{i}@example.org")) for i in range(60)]
    failed = [r for r in results if not r.ok]
    assert failed, "the disk never filled up"
    assert all(not r.permanent and "No space left" in r.error for r in failed)
    # what was written is whole; nothing half-written or temporary stays
    assert [p.name for p in tiny_disk.rglob("*") if p.name.endswith(".tmp")] == []
    ok = sum(1 for r in results if r.ok)
    assert len(list(tiny_disk.rglob("*.eml"))) == ok
    # fill what is left to the last block: a small confirmation mail fails the same way
    fd = os.open(tiny_disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"x" * 512):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    assert not backend.send(confirmation("late@example.org", 1)).ok
    assert [p.name for p in tiny_disk.rglob("*.tmp")] == []
