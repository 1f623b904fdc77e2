"""solver/storage/files.py in one process, in a tmp_path: what kind() reads a file to be, and which files a run
or an analysis script may replace. tests/faults/test_ownership.py runs the solver and the scripts themselves;
this file is also what .ci/mutate.py runs against each mutant of the module."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from solver.errors import ConfigError
from solver.storage import files
from solver.storage.files import (ANALYSIS_CSV, ANALYSIS_MARK, ANALYSIS_MP4, ANALYSIS_PNG, CHECKPOINT,
                                  CHECKPOINT_FORMAT, DIRECTORY, EMPTY, LOCK, MISSING, OUTPUT, PARTIAL, STATISTICS,
                                  SYMLINK, XDMF, check_analysis_output, check_run_paths, check_sidecar, kind,
                                  png_metadata, same, video_metadata)

DAMAGED = "a damaged HDF5 file"
DAMAGED_BYTES = files.HDF5_SIGNATURE + b"\x01" * 600     # a killed writer's file
FOREIGN_HDF5 = "an HDF5 file the solver did not write"
LOCK_TEXT = b"pid 4242 on node7 since 2026-12-02 07:00:00\n"


def hdf5(path, **attrs):
    """An HDF5 file with these root attributes; returns its name."""
    with h5py.File(path, "w") as f:
        f.attrs.update(attrs)
    return str(path)


def solver_output(path, complete=1):
    return hdf5(path, config="grid: {}", complete=complete)


def checkpoint(path):
    return hdf5(path, format=CHECKPOINT_FORMAT)


def written(path, content: bytes):
    Path(path).write_bytes(content)
    return str(path)


def xdmf_naming(path, target: str):
    """An XDMF sidecar whose data items point into ``target``."""
    return written(path, f'<?xml version="1.0" ?>\n<Xdmf Version="3.0"><DataItem>{target}:/C</DataItem>'
                         '</Xdmf>\n'.encode())


def mp4(path, tail: bytes = b"", size: int = 64):
    """An MP4-shaped file (an ftyp box first) of ``size`` bytes before ``tail``."""
    return written(path, b"\0\0\0\x20ftypisom" + b"\0" * (size - 12) + tail)


# --- kind: what a path holds ---------------------------------------------------------------------------------

def test_kind_of_the_solver_files(tmp_path):
    assert kind(solver_output(tmp_path / "a.h5")) == OUTPUT
    assert kind(solver_output(tmp_path / "b.h5", complete=0)) == PARTIAL
    assert kind(solver_output(tmp_path / "c.h5", complete="yes")) == PARTIAL       # not a number: not complete
    assert kind(checkpoint(tmp_path / "d.h5")) == CHECKPOINT
    assert kind(hdf5(tmp_path / "e.h5", format=np.bytes_(CHECKPOINT_FORMAT.encode()))) == CHECKPOINT
    assert kind(hdf5(tmp_path / "f.h5", statistics_method="pool")) == STATISTICS
    assert kind(hdf5(tmp_path / "g.h5", config="x")) == FOREIGN_HDF5
    assert kind(hdf5(tmp_path / "h.h5", complete=1)) == FOREIGN_HDF5
    assert kind(written(tmp_path / "i.h5", DAMAGED_BYTES)) == DAMAGED
    assert kind(written(tmp_path / "run.lock", LOCK_TEXT)) == LOCK
    assert kind(xdmf_naming(tmp_path / "run.xdmf", "run.h5")) == XDMF
    assert kind(written(tmp_path / "pad.xdmf", b"\n  <?xml version='1.0'?><Xdmf/>")) == XDMF


def test_kind_reads_content_not_names(tmp_path):
    assert kind(written(tmp_path / "a.lock", LOCK_TEXT + b"x" * (512 - len(LOCK_TEXT)))) == "a text file"
    assert kind(written(tmp_path / "b.lock", LOCK_TEXT + b"x" * (511 - len(LOCK_TEXT)))) == LOCK
    assert kind(written(tmp_path / "c.lock", b"pid 4242 on node7\n")) == "a text file"
    assert kind(written(tmp_path / "big.lock", LOCK_TEXT + b"x" * 600)) == "a text file"
    assert kind(hdf5(tmp_path / "next.h5", format="diffusion2d-checkpoint/2")) == FOREIGN_HDF5
    assert kind(hdf5(tmp_path / "other.h5", format="zarr")) == FOREIGN_HDF5
    assert kind(written(tmp_path / "d.xdmf", b"<?xml version='1.0'?><svg/>")) == "a text file"
    assert kind(written(tmp_path / "e.xdmf", b"<Xdmf/>")) == "a text file"
    assert kind(written(tmp_path / "f.h5", b"grid:\n  nx: 5\n")) == "a text file"
    assert kind(written(tmp_path / "g.h5", b"\x01\x00\x02")) == "a binary file"
    assert kind(written(tmp_path / "h.csv", b"snapshot,time\n")) == "a text file"


@pytest.mark.parametrize("header", files.ANALYSIS_CSV_HEADERS)
def test_kind_of_analysis_tables_by_their_header(tmp_path, header):
    assert kind(written(tmp_path / "t.csv", f"{header}extra\r\n1,2\n".encode())) == ANALYSIS_CSV
    assert kind(written(tmp_path / "u.csv", f"# {header}\n".encode())) == "a text file"


def test_kind_of_pictures_and_videos_by_their_mark(tmp_path):
    text = b"tEXtSoftware\0" + ANALYSIS_MARK.encode()
    assert kind(written(tmp_path / "a.png", files.PNG_SIGNATURE + b"\0\0\0\x0dIHDR" + text)) == ANALYSIS_PNG
    assert kind(written(tmp_path / "b.png", files.PNG_SIGNATURE + b"\0\0\0\x0dIHDR")) == "a PNG image"
    assert kind(mp4(tmp_path / "a.mp4", ANALYSIS_MARK.encode())) == ANALYSIS_MP4
    assert kind(mp4(tmp_path / "b.mp4")) == "an MP4 video"
    assert png_metadata() == {"Software": ANALYSIS_MARK} and video_metadata() == {"comment": ANALYSIS_MARK}


def sparse_mp4(path, mark_at: int):
    """An MP4-shaped file with the analysis mark at byte ``mark_at``, zeros (a hole) before it."""
    with open(path, "wb") as stream:
        stream.write(b"\0\0\0\x20ftypisom")
        stream.seek(mark_at)
        stream.write(ANALYSIS_MARK.encode())
    return str(path)


def test_video_mark_is_searched_for_in_the_first_256_mib(tmp_path):
    mib = 2 ** 20
    assert kind(sparse_mp4(tmp_path / "across.mp4", mib - 5)) == ANALYSIS_MP4      # across two read blocks
    assert kind(sparse_mp4(tmp_path / "inside.mp4", 256 * mib - 100)) == ANALYSIS_MP4
    assert kind(sparse_mp4(tmp_path / "beyond.mp4", 256 * mib + 100)) == "an MP4 video"


def test_png_mark_is_looked_for_in_the_first_512_bytes(tmp_path):
    text = b"tEXtSoftware\0" + ANALYSIS_MARK.encode()
    padding = 512 - len(files.PNG_SIGNATURE) - len(text)
    assert kind(written(tmp_path / "a.png", files.PNG_SIGNATURE + b"\1" * padding + text)) == ANALYSIS_PNG
    assert kind(written(tmp_path / "b.png", files.PNG_SIGNATURE + b"\1" * (padding + 1) + text)) == "a PNG image"


def failing_open(monkeypatch, after: int):
    """files' open() fails with EACCES from its call number ``after + 1`` on (a file unreadable past a point)."""
    calls = []

    def fake(*args, **kwargs):
        calls.append(args[0])
        if len(calls) > after:
            raise PermissionError(13, "Permission denied")
        return open(*args, **kwargs)
    monkeypatch.setattr(files, "open", fake, raising=False)


def test_files_that_cannot_be_read_are_never_taken_for_the_solvers(tmp_path, monkeypatch):
    video = mp4(tmp_path / "a.mp4", ANALYSIS_MARK.encode())
    sidecar = xdmf_naming(tmp_path / "run.xdmf", "run.h5")
    failing_open(monkeypatch, after=1)          # the head is read, the rest is not
    assert kind(video) == "an MP4 video"
    failing_open(monkeypatch, after=1)
    with pytest.raises(ConfigError, match="describes another file"):
        check_sidecar(str(tmp_path / "run.h5"))
    failing_open(monkeypatch, after=0)
    assert kind(sidecar) == "unreadable (Permission denied)"


def test_same_falls_back_to_names_when_a_file_vanishes_between_checks(tmp_path, monkeypatch):
    a = written(tmp_path / "a.h5", b"x")

    def vanished(*_):
        raise FileNotFoundError(2, "No such file or directory")
    monkeypatch.setattr(os.path, "samefile", vanished)
    assert same(a, str(tmp_path / "." / "a.h5")) and not same(a, written(tmp_path / "b.h5", b"y"))


def test_an_output_open_in_a_running_writer_is_still_recognised(tmp_path):
    """HDF5's file lock is not taken: another process writing a .partial does not make it look damaged."""
    path = solver_output(tmp_path / "run.h5.partial", complete=0)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, h5py; f = h5py.File(sys.argv[1], 'a'); "
                               "print('open', flush=True); sys.stdin.read()", path],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "open\n"
        assert kind(path) == PARTIAL
    finally:
        holder.communicate("", timeout=60)


def test_kind_of_what_is_not_a_regular_file(tmp_path):
    assert kind(str(tmp_path / "nothing.h5")) == MISSING
    plain = written(tmp_path / "plain", b"text")
    assert kind(os.path.join(plain, "child.h5")) == MISSING          # a file where a directory should be
    assert kind(str(tmp_path / ("x" * 300))) == "unreadable (File name too long)"
    assert kind(str(tmp_path)) == DIRECTORY
    os.symlink(solver_output(tmp_path / "real.h5"), tmp_path / "link.h5")
    assert kind(str(tmp_path / "link.h5")) == SYMLINK
    os.mkfifo(tmp_path / "fifo")
    assert kind(str(tmp_path / "fifo")) == "a FIFO"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "sock"))
        assert kind(str(tmp_path / "sock")) == "a socket"
    assert kind("/dev/null") == "a device"
    assert kind(written(tmp_path / "empty.h5", b"")) == EMPTY


def test_same_follows_links_and_dots(tmp_path):
    a = written(tmp_path / "a.h5", b"x")
    os.link(a, tmp_path / "hard.h5")
    os.symlink(a, tmp_path / "soft.h5")
    assert same(a, str(tmp_path / "hard.h5")) and same(a, str(tmp_path / "soft.h5"))
    assert same(str(tmp_path / "new.h5"), str(tmp_path / "sub" / ".." / "new.h5"))
    assert not same(a, str(tmp_path / "b.h5")) and not same(str(tmp_path / "c.h5"), str(tmp_path / "d.h5"))


# --- check_run_paths: what a run may replace ----------------------------------------------------------------

@pytest.fixture
def run(tmp_path):
    """Paths of a run in tmp_path: (output, checkpoint, config)."""
    config = written(tmp_path / "run.yaml", b"grid: {}\n")
    return str(tmp_path / "run.h5"), str(tmp_path / "run.ckpt.h5"), config


def refused(*args, words=()):
    with pytest.raises(ConfigError) as err:
        check_run_paths(*args)
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message
    return message


def test_a_fresh_run_and_a_run_over_its_own_files_are_accepted(run, tmp_path):
    output, ckpt, config = run
    check_run_paths(output, ckpt, config, overwrite=False)
    solver_output(output + ".partial", complete=0)
    written(tmp_path / "run.h5.lock", LOCK_TEXT)
    xdmf_naming(tmp_path / "run.xdmf", "run.h5")
    checkpoint(ckpt)
    checkpoint(ckpt + ".partial")
    check_run_paths(output, ckpt, config, overwrite=False)
    solver_output(output)
    check_run_paths(output, ckpt, config, overwrite=True)
    refused(output, ckpt, config, False, words=(f"output {output} exists and is a solver output", "-o"))


@pytest.mark.parametrize("suffix, content", [
    (".h5.partial", "partial"), (".h5.partial", "output"), (".h5.partial", b""), (".h5.partial", DAMAGED_BYTES),
    (".h5.lock", LOCK_TEXT), (".h5.lock", b""),
    (".ckpt.h5", "checkpoint"), (".ckpt.h5", DAMAGED_BYTES),
    (".ckpt.h5.partial", "checkpoint"), (".ckpt.h5.partial", b""), (".ckpt.h5.partial", DAMAGED_BYTES)])
def test_leftovers_a_run_may_replace(run, tmp_path, suffix, content):
    """What a killed or finished run leaves: an unfinished, empty or damaged file, a lock, a checkpoint."""
    path = tmp_path / f"run{suffix}"
    makers = {"partial": lambda: solver_output(path, complete=0), "output": lambda: solver_output(path),
              "checkpoint": lambda: checkpoint(path)}
    makers[content]() if isinstance(content, str) else written(path, content)
    check_run_paths(*run, overwrite=False)


@pytest.mark.parametrize("suffix, role", [(".h5.partial", "the output's unfinished file"),
                                          (".h5.lock", "the output's lock"),
                                          (".xdmf", "the output's XDMF sidecar"),
                                          (".ckpt.h5", "checkpoint"),
                                          (".ckpt.h5.partial", "the checkpoint's unfinished file")])
def test_a_foreign_file_in_any_place_of_the_run_is_refused(run, tmp_path, suffix, role):
    output, ckpt, config = run
    foreign = written(tmp_path / f"run{suffix}", b"my notes\n")
    refused(output, ckpt, config, True, words=(f"{role} {foreign} exists and is a text file, not ",
                                               "the solver replaces only its own files"))


def test_an_output_where_the_checkpoint_goes_is_refused(run):
    output, ckpt, config = run
    solver_output(ckpt)
    refused(output, ckpt, config, True, words=(f"checkpoint {ckpt} exists and is a solver output, not a solver "
                                               "checkpoint", "set checkpoint.path"))
    os.remove(ckpt)
    solver_output(ckpt + ".partial", complete=0)
    refused(output, ckpt, config, True, words=("the checkpoint's unfinished file",))


@pytest.mark.parametrize("names, words", [
    (("run.h5", "run.xdmf", None), ("the output's XDMF sidecar and checkpoint are the same file",)),
    (("run.h5", "c.h5", "c.h5.partial"), ("the checkpoint's unfinished file and the config are the same file",)),
    (("run.h5", "c.h5", "run.h5"), ("output and the config are the same file",)),
    (("run.h5", "run.h5", None), ("output and checkpoint are the same file",)),
    (("run.h5", "run.h5.partial", None), ("the output's unfinished file and checkpoint",)),
])
def test_two_roles_on_one_file_are_refused(tmp_path, names, words):
    output, ckpt, config = (None if name is None else str(tmp_path / name) for name in names)
    refused(output, ckpt, config, False, words=(*words, "set checkpoint.path or -o"))


def test_the_config_may_sit_anywhere_else_or_be_absent(run):
    output, ckpt, _ = run
    check_run_paths(output, ckpt, None, overwrite=False)
    check_run_paths(output, ckpt, "", overwrite=False)


@pytest.mark.parametrize("role", ["output", "checkpoint", "config"])
def test_names_that_are_not_utf8_are_refused(run, role):
    paths = dict(zip(("output", "checkpoint", "config"), run))
    paths[role] = paths[role][:-3] + "\udcff.h5"
    with pytest.raises(ConfigError, match=f"^{role} .* is not valid UTF-8"):
        check_run_paths(paths["output"], paths["checkpoint"], paths["config"], False)


def test_a_sidecar_of_another_output_is_refused(tmp_path):
    output = str(tmp_path / "r&d.h5")
    xdmf_naming(tmp_path / "r&d.xdmf", "r&amp;d.h5")                 # its own (XML escapes the &)
    check_sidecar(output)
    xdmf_naming(tmp_path / "r&d.xdmf", "other.h5")
    with pytest.raises(ConfigError, match="describes another file, not r&d.h5"):
        check_sidecar(output)
    refused(output, str(tmp_path / "c.h5"), None, True, words=("XDMF sidecar", "describes another file"))
    written(tmp_path / "r&d.xdmf", b"notes")         # not a sidecar at all: check_run_paths refuses it by kind
    check_sidecar(output)


# --- check_analysis_output: what an analysis script may replace ---------------------------------------------

def analysis(path, inputs=(), extensions=(".png", ".csv"), option="-o"):
    check_analysis_output(path, list(inputs), extensions, option)


def analysis_refused(path, *words, inputs=(), extensions=(".png", ".csv")):
    with pytest.raises(ConfigError) as err:
        analysis(path, inputs, extensions, "--plot")
    for word in ("--plot", *words):
        assert word in str(err.value), str(err.value)


def test_analysis_output_may_replace_its_own_kind(tmp_path):
    analysis(tmp_path / "new.png")
    analysis(tmp_path / "new.png", inputs=[tmp_path / "run.h5", tmp_path / "other.png"])
    png = written(tmp_path / "p.PNG", files.PNG_SIGNATURE + b"tEXtSoftware\0" + ANALYSIS_MARK.encode())
    analysis(png)
    table = written(tmp_path / "t.csv", files.ANALYSIS_CSV_HEADERS[0].encode() + b"\n")
    analysis(table)
    analysis(hdf5(tmp_path / "s.h5", statistics_method="pool"), extensions=(".h5",))
    analysis(mp4(tmp_path / "v.mp4", ANALYSIS_MARK.encode()), extensions=(".mp4",))
    analysis(tmp_path / "new.txt", extensions=(".txt",))


def test_analysis_output_refusals(tmp_path):
    analysis_refused("", "the name is empty", "results/plot.png")
    analysis_refused(str(tmp_path) + os.sep, "is a directory", os.path.join(str(tmp_path) + os.sep, "plot.png"))
    analysis_refused(str(tmp_path / "new") + os.sep, "is a directory; name a file in it")
    os.mkdir(tmp_path / "d.png")
    analysis_refused(tmp_path / "d.png", "is a directory; name a file in it")
    photo = written(tmp_path / "photo.png", files.PNG_SIGNATURE)
    analysis_refused(photo, "exists and is a PNG image, not an analysis plot")
    analysis_refused(written(tmp_path / "data.csv", b"\1\0"), "exists and is a binary file, not an analysis table")
    analysis_refused(str(tmp_path / ("x" * 300)) + ".png", "exists and is unreadable (File name too long)")
    analysis_refused(tmp_path / "plot", "unknown extension '(none)'; use .png or .csv, e.g. results/plot.png")
    analysis_refused(tmp_path / "plot.pdf", "unknown extension '.pdf'")
    table = written(tmp_path / "in.csv", files.ANALYSIS_CSV_HEADERS[0].encode() + b"\n")
    analysis_refused(table, "is an input of this script", inputs=[tmp_path / "x.h5", table])
    analysis_refused(solver_output(tmp_path / "o.csv"), "exists and is a solver output, not an analysis table")
    analysis_refused(written(tmp_path / "plain.png", b"notes"), "exists and is a text file, not an analysis plot")
    analysis_refused(written(tmp_path / "notes.txt", b"notes"), "exists and is a text file; the solver replaces",
                     extensions=(".txt",))
    analysis_refused("\udcff.png", "not valid UTF-8")
