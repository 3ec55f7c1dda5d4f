"""The tools a user would pick instead of chatlab, timed by ``bench transfer`` on the same file.

Each peer moves the bench's file from one file to another on this machine and
is timed from the sender's start to the moment the received file is complete
(the receiving process exited).  What each row verifies is said in its
``verified`` column; the bench itself checks the copy's SHA-256 afterwards.

* **nc**: OpenBSD netcat, ``nc -l > out`` and ``nc -N < file``: no relay, no
  check of any kind.
* **nc through socat**: the same with ``socat`` relaying in the middle (the
  fair peer for chatlab's relayed path).
* **nc + sha256sum**: what a careful user types, the digest made in the same
  pipelines as the copy: sender ``tee >(sha256sum) < file | nc``, receiver
  ``nc -l | tee out | sha256sum``; the two digests must match.
* **rsync daemon**: ``rsync --daemon --address=127.0.0.1`` and a client
  pushing the file to it, ``--whole-file`` (no delta algorithm on a local
  copy), once without and once with ``--checksum`` (a full-file hash on the
  sender before anything moves).  rsync always checks each file it wrote
  against the sender's whole-file checksum.
* **magic-wormhole**: ``wormhole send`` / ``wormhole receive`` with their own
  mailbox server and transit relay (``magic-wormhole-mailbox-server``,
  ``magic-wormhole-transit-relay``), all four inside a network namespace with
  only loopback up (``unshare -n``), because wormhole offers every address of
  the machine for its direct connection.  *Direct*: the sender listens and the
  receiver connects; *relayed*: neither listens (``--no-listen``), so the
  bytes go through the transit relay.  Its time includes its code exchange
  (PAKE) and connection set-up: about a second, the price a user pays too.

Each peer is skipped, with the reason, when its tool is missing.  The
namespace part runs as ``unshare -n python -m chatlab.bench.peers wormhole
...`` (inside, the ports are fixed: the new namespace has nothing else in it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from .common import free_port, nc_path, wait_listening

NC, SOCAT, NC_SHA = "nc (file -> file)", "nc through socat (a relay)", "nc + sha256sum both ends (a careful user)"
RSYNC, RSYNC_SUM = "rsync daemon --whole-file", "rsync daemon --whole-file --checksum"
WORMHOLE, WORMHOLE_RELAY = "magic-wormhole, direct transit", "magic-wormhole, relayed transit"
MAILBOX_PORT, TRANSIT_PORT = 4000, 4001  # inside the fresh network namespace only: nothing else listens there
WORMHOLE_CODE = "7-chatlab-bench"


class Result(NamedTuple):
    seconds: float
    verified: str  # what was checked ("MISMATCH" if a check failed)


class Peer(NamedTuple):
    name: str
    missing: Callable[[], str | None]  # why it cannot run here, or None
    run: Callable[[Path, Path, str], Result]  # (source, target, source's SHA-256) -> Result


def _beside_python(name: str) -> str | None:
    """A tool on the PATH or next to this Python (a venv's bin/ need not be on the PATH)."""
    beside = Path(sys.executable).with_name(name)
    return shutil.which(name) or (str(beside) if beside.exists() else None)


def _stop(*procs: subprocess.Popen[bytes] | None) -> None:
    for proc in procs:
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


# ---------------------------------------------------------------- nc, socat


def missing_nc() -> str | None:
    return None if nc_path() else "nc is not OpenBSD netcat or not installed (Debian: apt-get install netcat-openbsd)"


def missing_socat() -> str | None:
    return missing_nc() or (None if shutil.which("socat") else "socat is not installed (apt-get install socat)")


def missing_nc_sha() -> str | None:
    if missing_nc():
        return missing_nc()
    return None if shutil.which("bash") and shutil.which("sha256sum") and shutil.which("tee") else \
        "bash, tee or sha256sum (coreutils) is missing"


def _nc_pair(source: Path, target: Path, relay: bool = False) -> float:
    """nc -l > target, then nc -N < source (through socat when ``relay``): seconds until the listener exits."""
    nc = nc_path() or "nc"
    for _attempt in range(3):
        port = free_port()
        with open(target, "wb") as out:
            listener = subprocess.Popen([nc, "-l", "127.0.0.1", str(port)], stdin=subprocess.DEVNULL, stdout=out,
                                        stderr=subprocess.DEVNULL)
        socat, send_port = None, port
        if relay:
            send_port = free_port()
            socat = subprocess.Popen(["socat", f"TCP-LISTEN:{send_port},bind=127.0.0.1,reuseaddr",
                                      f"TCP:127.0.0.1:{port}"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            if not (wait_listening(port) and wait_listening(send_port)):
                continue
            with open(source, "rb") as src:
                t0 = time.perf_counter()
                sender = subprocess.Popen([nc, "-N", "127.0.0.1", str(send_port)], stdin=src,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                listener.wait(600)
                seconds = time.perf_counter() - t0
                sender.wait(30)
            return seconds
        finally:
            _stop(listener, socat)
    raise RuntimeError("nc" + (" or socat" if relay else "") + " did not start listening")


def time_nc(source: Path, target: Path, digest: str) -> Result:
    return Result(_nc_pair(source, target), "nothing (sha256 after, by the bench)")


def time_socat(source: Path, target: Path, digest: str) -> Result:
    return Result(_nc_pair(source, target, relay=True), "nothing (sha256 after, by the bench)")


def time_nc_sha(source: Path, target: Path, digest: str) -> Result:
    """The careful user's pipelines: a SHA-256 on each end, made while the bytes go through."""
    nc = nc_path() or "nc"
    sums = target.with_name(target.name + ".sha256")
    for _attempt in range(3):
        port = free_port()
        receiver = subprocess.Popen(["bash", "-c", 'set -o pipefail; "$0" -l 127.0.0.1 "$1" | tee "$2" | sha256sum',
                                     nc, str(port), str(target)],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        sender = None
        try:
            if not wait_listening(port):
                continue
            t0 = time.perf_counter()
            # $! is the process substitution's pid (bash >= 4.4): wait for the sender's digest too.
            sender = subprocess.Popen(["bash", "-c", 'tee >(sha256sum > "$3") < "$2" | "$0" -N 127.0.0.1 "$1"; wait $!',
                                       nc, str(port), str(source), str(sums)],
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            received, _ = receiver.communicate(timeout=600)
            sender.wait(60)
            seconds = time.perf_counter() - t0
            sent = sums.read_text().split()[:1] if sums.exists() else []
            ok = sent == [digest] and received.split()[:1] == [digest.encode()]
            return Result(seconds, "sha256sum both ends, compared" if ok else "MISMATCH")
        finally:
            _stop(receiver, sender)
            sums.unlink(missing_ok=True)
    raise RuntimeError("nc did not start listening")


# -------------------------------------------------------------------- rsync


def missing_rsync() -> str | None:
    return None if shutil.which("rsync") else "rsync is not installed (apt-get install rsync)"


def _time_rsync(source: Path, target: Path, checksum: bool) -> Result:
    """Push ``source`` to a fresh rsync daemon bound to 127.0.0.1 whose module is ``target``'s folder."""
    folder = Path(tempfile.mkdtemp(prefix="chatlab-rsyncd-"))
    conf = folder / "rsyncd.conf"
    conf.write_text(f"use chroot = no\nuid = {os.getuid()}\ngid = {os.getgid()}\npid file = {folder}/rsyncd.pid\n"
                    f"[bench]\n    path = {target.parent}\n    read only = no\n")
    daemon = None
    try:
        for _attempt in range(3):
            port = free_port()
            daemon = subprocess.Popen(["rsync", "--daemon", "--no-detach", "--address=127.0.0.1", f"--port={port}",
                                       f"--config={conf}"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
            if wait_listening(port):
                break
            _stop(daemon)
        else:
            raise RuntimeError("the rsync daemon did not start listening")
        t0 = time.perf_counter()
        subprocess.run(["rsync", "--whole-file", *(["--checksum"] if checksum else []), str(source),
                        f"rsync://127.0.0.1:{port}/bench/{target.name}"], check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600)
        return Result(time.perf_counter() - t0, "rsync's whole-file checksum (sha256 after, by the bench)")
    finally:
        _stop(daemon)
        shutil.rmtree(folder, ignore_errors=True)


def time_rsync(source: Path, target: Path, digest: str) -> Result:
    return _time_rsync(source, target, checksum=False)


def time_rsync_checksum(source: Path, target: Path, digest: str) -> Result:
    return _time_rsync(source, target, checksum=True)


# ----------------------------------------------------------- magic-wormhole

_namespace_checked: list[str | None] = []  # memo: the answer of the first check


def missing_wormhole() -> str | None:
    tools = {name: _beside_python(name) for name in ("wormhole", "twist")}
    if None in tools.values():
        return ("magic-wormhole, magic-wormhole-mailbox-server and magic-wormhole-transit-relay are not installed "
                "(pip install 'chatlab[bench]')")
    if not shutil.which("unshare") or not shutil.which("ip"):
        return "unshare (util-linux) or ip (iproute2) is missing: no network namespace to keep wormhole on loopback"
    if not _namespace_checked:
        try:
            probe = subprocess.run(["unshare", "-n", "ip", "link", "set", "lo", "up"], capture_output=True, text=True,
                                   timeout=10, check=False)
            _namespace_checked.append(None if probe.returncode == 0 else
                                      "no network namespace here (unshare -n: "
                                      f"{probe.stderr.strip() or probe.returncode}; "
                                      "it needs root or user namespaces)")
        except (OSError, subprocess.TimeoutExpired) as exc:
            _namespace_checked.append(f"no network namespace here ({exc})")
    return _namespace_checked[0]


def _time_wormhole(source: Path, target: Path, relayed: bool) -> Result:
    cmd = ["unshare", "-n", sys.executable, "-m", "chatlab.bench.peers", "wormhole", str(source), str(target)]
    done = subprocess.run(cmd + (["--relayed"] if relayed else []), capture_output=True, text=True, timeout=900,
                          check=False)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"magic-wormhole in a namespace failed: {(done.stderr or done.stdout).strip()[-300:]}")
    report = json.loads(lines[-1])
    return Result(report["seconds"], "wormhole's own (encrypted, authenticated records; sha256 after, by the bench)")


def time_wormhole(source: Path, target: Path, digest: str) -> Result:
    return _time_wormhole(source, target, relayed=False)


def time_wormhole_relayed(source: Path, target: Path, digest: str) -> Result:
    return _time_wormhole(source, target, relayed=True)


def wormhole_in_namespace(source: Path, target: Path, relayed: bool) -> dict[str, float | str]:
    """Inside ``unshare -n``: loopback up, a mailbox server and a transit relay, then one send and receive."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    twist, wormhole = _beside_python("twist") or "twist", _beside_python("wormhole") or "wormhole"
    folder = Path(tempfile.mkdtemp(prefix="chatlab-wormhole-"))

    def quiet(cmd: list[str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(cmd, cwd=folder, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

    servers = [quiet([twist, "wormhole-mailbox", f"--port=tcp:{MAILBOX_PORT}:interface=127.0.0.1",
                      f"--channel-db={folder / 'mailbox.sqlite'}"]),
               quiet([twist, "transitrelay", f"--port=tcp:{TRANSIT_PORT}:interface=127.0.0.1"])]
    sender = receiver = None
    try:
        if not (wait_listening(MAILBOX_PORT, 30) and wait_listening(TRANSIT_PORT, 30)):
            raise RuntimeError("the wormhole mailbox server or transit relay did not start listening")
        common = [wormhole, f"--relay-url=ws://127.0.0.1:{MAILBOX_PORT}/v1",
                  f"--transit-helper=tcp:127.0.0.1:{TRANSIT_PORT}"]
        listen = ["--no-listen"] if relayed else []
        t0 = time.perf_counter()
        sender = quiet(common + ["send", "--hide-progress", *listen, f"--code={WORMHOLE_CODE}", str(source)])
        receiver = quiet(common + ["receive", "--hide-progress", *listen, "--accept-file", f"--output-file={target}",
                                   WORMHOLE_CODE])
        if receiver.wait(900) != 0:
            raise RuntimeError(f"wormhole receive exited with {receiver.returncode}")
        seconds = time.perf_counter() - t0
        sender.wait(60)
        return {"seconds": seconds, "transit": "relayed" if relayed else "direct"}
    finally:
        _stop(sender, receiver, *servers)
        shutil.rmtree(folder, ignore_errors=True)


PEERS = (
    Peer(NC, missing_nc, time_nc),
    Peer(SOCAT, missing_socat, time_socat),
    Peer(NC_SHA, missing_nc_sha, time_nc_sha),
    Peer(RSYNC, missing_rsync, time_rsync),
    Peer(RSYNC_SUM, missing_rsync, time_rsync_checksum),
    Peer(WORMHOLE, missing_wormhole, time_wormhole),
    Peer(WORMHOLE_RELAY, missing_wormhole, time_wormhole_relayed),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chatlab.bench.peers",
                                     description="one magic-wormhole transfer, run inside 'unshare -n' "
                                                 "by bench transfer")
    sub = parser.add_subparsers(dest="what", required=True)
    w = sub.add_parser("wormhole")
    w.add_argument("source", type=Path)
    w.add_argument("target", type=Path)
    w.add_argument("--relayed", action="store_true")
    args = parser.parse_args(argv)
    print(json.dumps(wormhole_in_namespace(args.source.resolve(), args.target.resolve(), args.relayed)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
