"""Starting `corelog serve` from tests and tools, one way: with
`--ready-file`, waiting until the broker writes that file (it does once every
shard serves, when it logs "corelog ready") or exits.

Used by conftest.py and by bench-harness/tools/*.py, which import it by path:

    sys.path.insert(0, os.path.join(REPO, "tests", "clients"))
    import brokerproc

Standard library only, so that any python3 can run the tools.
"""
import ctypes
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
READY_TIMEOUT_S = 20.0


class BrokerStartError(Exception):
    pass


def corelog_bin():
    """$CORELOG_BIN, else <repo>/target/release/corelog, else <repo>/target/debug/corelog."""
    env = os.environ.get("CORELOG_BIN")
    if env:
        return Path(env)
    rel = REPO / "target" / "release" / "corelog"
    if rel.exists():
        return rel
    return REPO / "target" / "debug" / "corelog"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_libc = None


def die_with_parent():
    """preexec_fn: the broker gets SIGKILL if the process that started it
    dies, so a killed or timed-out run never leaves brokers behind."""
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL("libc.so.6", use_errno=True)
        _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _tail(path, n=40):
    if path is None:
        return "(no log file)"
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log at %s)" % path


def wait_ready_file(proc, ready_file, timeout=READY_TIMEOUT_S, log_path=None):
    """Waits until the broker `proc` has written `ready_file` and returns its
    JSON (pid, listen, advertised, shards, write_bytes_max). Raises
    BrokerStartError if the process exits first or `timeout` passes (the
    process is left running then; the caller decides)."""
    deadline = time.monotonic() + timeout
    ready_file = Path(ready_file)
    while True:
        try:
            # The broker renames the file into place: what is there is whole.
            return json.loads(ready_file.read_text())
        except FileNotFoundError:
            pass
        code = proc.poll()
        if code is not None:
            raise BrokerStartError("broker exited with code %s before it served; log tail:\n%s"
                                   % (code, _tail(log_path)))
        if time.monotonic() > deadline:
            raise BrokerStartError("broker wrote no ready file %s in %.0f s; log tail:\n%s"
                                   % (ready_file, timeout, _tail(log_path)))
        time.sleep(0.02)


def start_broker(cmd, ready_file, log_path=None, stdout_path=None, cwd=None, env=None,
                 timeout=READY_TIMEOUT_S, preexec_fn=die_with_parent):
    """Starts `cmd`, a `corelog serve ...` command line (possibly behind a
    wrapper such as taskset or prlimit), with `--ready-file READY_FILE`
    appended, and waits until it serves.

    An old ready file is removed first. stderr is appended to `log_path`
    (stdout too, unless `stdout_path` is given); None discards it. Returns
    (proc, ready) with `ready` the file's JSON. On failure the process is
    killed and BrokerStartError raised with the log's tail."""
    ready_file = Path(ready_file)
    try:
        ready_file.unlink()
    except FileNotFoundError:
        pass
    cmd = [str(c) for c in cmd] + ["--ready-file", str(ready_file)]
    err = open(log_path, "ab") if log_path is not None else subprocess.DEVNULL
    out = open(stdout_path, "ab") if stdout_path is not None else err
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=cwd,
                                env=env, preexec_fn=preexec_fn)
    finally:
        for f in {id(err): err, id(out): out}.values():
            if f is not subprocess.DEVNULL:
                f.close()
    try:
        ready = wait_ready_file(proc, ready_file, timeout, log_path)
    except BrokerStartError:
        stop_broker(proc, kill=True)
        raise
    return proc, ready


def stop_broker(proc, kill=False, timeout=30.0):
    """SIGTERM (SIGKILL with kill=True), then waits; SIGKILL after `timeout`.
    Returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout=10)
