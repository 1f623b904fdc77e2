"""The lock on an output: an exclusive ``flock`` on ``PATH.lock`` for the run writing ``PATH``."""
from __future__ import annotations

import fcntl
import os
import platform
import sys
import time

from ..errors import ConfigError, OutputBusy
from .output import reason


def lock_path(path: str) -> str:
    return path + ".lock"


class OutputLock:
    """This run's claim on an output: an exclusive ``flock`` on ``PATH.lock``, removed on release.

    The kernel drops a flock when its holder dies, so the lock file a killed run leaves behind is stale and
    the next run simply takes it over; while the holder lives, its pid, host and start time in the file name
    it in the refusal. (``PATH.partial`` itself cannot be the lock: HDF5 locks the files it opens.)
    """

    def __init__(self, path: str):
        self.path, self.file, self.fd = path, lock_path(path), None

    def acquire(self) -> None:
        while self.fd is None:
            try:
                fd = os.open(self.file, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as err:
                raise ConfigError(f"cannot create the lock file {self.file}: {reason(err)}; "
                                  "choose a writable place for the output with -o") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(fd)
                os.close(fd)
                raise OutputBusy(f"output {self.path} is being written by {holder}; wait for that run "
                                  f"to finish or choose another output with -o", holder) from None
            except OSError as err:    # a file system without locks (some parallel ones): go on unlocked
                os.close(fd)
                print(f"warning: cannot lock {self.file} ({reason(err)}); make sure no other run writes "
                      f"{self.path}", file=sys.stderr, flush=True)
                return
            try:
                same = os.stat(self.file).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:                # the holder removed the file as we opened it: take the new one
                os.close(fd)
                continue
            self.fd = fd
            try:
                os.ftruncate(fd, 0)
                os.write(fd, f"pid {os.getpid()} on {platform.node()} since "
                             f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
            except OSError:     # a full disk: the lock holds without its note; writing the output will say
                pass

    def release(self) -> None:
        """Remove the lock file (while still holding it, so no one takes a doomed file) and unlock."""
        if self.fd is None:
            return
        try:
            os.unlink(self.file)
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None


def _holder(fd: int) -> str:
    """Who holds the lock on fd, as its holder wrote it (it writes just after locking: wait a moment)."""
    for _ in range(40):
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
        if text:
            return text
        time.sleep(0.025)
    return "another run"
