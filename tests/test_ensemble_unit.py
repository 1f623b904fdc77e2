"""solver/ensemble.py in one process, on members of a few hundred nodes with the numpy kernel: member
numbers and ranges, the up-front checks, the draws and a member's config, its identity, running, skipping,
refusing and failing a member, and the command line's exit codes. tests/test_ensemble.py runs the drivers
(GNU parallel, the pool, job arrays); this file is also what .ci/mutate.py runs against each mutant."""
from __future__ import annotations

import dataclasses
import os
import time

import h5py
import pytest
import yaml

from solver import ensemble
from solver.core import config as config_module
from solver.errors import ConfigError, UserError
from solver.storage.lock import OutputLock
from solver.storage.output import attribute

BASE = {
    "grid": {"nx": 17, "ny": 9, "x": [0.0, 2.0], "y": [0.0, 1.0]},
    "physics": {"diffusivity": 0.002},
    "time": {"dt": 0.01, "t_end": 0.05},
    "output": {"every": 0},
    "numerics": {"kernel": "numpy"},
    "parallel": {"threads": 1},
    "ensemble": {"seed": 7, "members": 5, "output_dir": "members", "perturb": {
        "physics.diffusivity": {"dist": "uniform", "low": 0.001, "high": 0.003},
        "initial.center": {"dist": "normal", "mean": [1.0, 0.5], "std": [0.1, 0.05]},
        "initial.amplitude": {"dist": "choice", "values": [1.0, 2.0, 3.0]}}},
}


def make(tmp_path, **ensemble_keys):
    data = yaml.safe_load(yaml.safe_dump(BASE))
    data["ensemble"]["output_dir"] = str(tmp_path / "members")
    data["ensemble"].update(ensemble_keys)
    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return config_module.load(path), path


def test_member_numbers_ranges_and_their_limits(tmp_path):
    cfg, _ = make(tmp_path)
    assert ensemble.parse_members([], cfg) == [1, 2, 3, 4, 5]
    assert ensemble.parse_members(["3", "1-2", "2", "5-5"], cfg) == [3, 1, 2, 5]
    assert ensemble.parse_members(["2-4"], cfg) == [2, 3, 4]
    ensemble.check_member(cfg, 5)
    with pytest.raises(UserError, match=r"member 6 is beyond ensemble.members = 5 in .*; use 1..5"):
        ensemble.check_member(cfg, 6)
    with pytest.raises(UserError, match="beyond ensemble.members"):
        ensemble.parse_members(["4-6"], cfg)
    unlimited, _ = make(tmp_path, members=0)
    ensemble.check_member(unlimited, 10 ** 9)
    with pytest.raises(UserError, match="no members given and ensemble.members is 0"):
        ensemble.parse_members([], unlimited)
    ensemble.check_range(unlimited, 1, 1_000_000, "x")
    with pytest.raises(UserError, match="holds 1000001 members, more than 1000000 at once"):
        ensemble.check_range(unlimited, 1, 1_000_001, "1-1000001")


def test_check_setup_refuses_what_would_fail_every_member(tmp_path):
    cfg, _ = make(tmp_path)
    ensemble.check_setup(cfg)                                  # members/ does not exist yet: fine
    shared = config_module.with_values(cfg, {"checkpoint.path": "one.ckpt.h5"})
    with pytest.raises(ConfigError, match="would be shared by every member"):
        ensemble.check_setup(shared)
    (tmp_path / "members").write_text("a file")
    with pytest.raises(ConfigError, match="is a file, not a directory"):
        ensemble.check_setup(cfg)
    os.remove(tmp_path / "members")
    locked = tmp_path / "locked"
    locked.mkdir()
    program = tmp_path / "program"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)                                        # writable and executable, but a file
    under_a_file, _ = make(tmp_path, output_dir=str(program / "members"))
    with pytest.raises(ConfigError, match="cannot be created or written .*program is not a writable directory"):
        ensemble.check_setup(under_a_file)
    cfg_locked, _ = make(tmp_path, output_dir=str(locked / "deeper" / "members"))
    ensemble.check_setup(cfg_locked)
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):                          # root writes anywhere: nothing to refuse
            return
        with pytest.raises(ConfigError, match="cannot be created or written"):
            ensemble.check_setup(cfg_locked)
    finally:
        locked.chmod(0o700)


def test_a_whole_number_key_may_only_be_chosen(tmp_path):
    cfg, _ = make(tmp_path, perturb={"grid.nx": {"dist": "uniform", "low": 10, "high": 20}})
    with pytest.raises(ConfigError, match="grid.nx is a whole number, which uniform does not draw"):
        ensemble.check_setup(cfg)
    chosen, _ = make(tmp_path, perturb={"grid.nx": {"dist": "choice", "values": [17, 19]}})
    ensemble.check_setup(chosen)
    assert ensemble.draw(chosen, 1)["grid.nx"] in (17, 19)


def test_draws_and_the_member_config(tmp_path):
    cfg, _ = make(tmp_path)
    values = ensemble.draw(cfg, 2)
    assert set(values) == {"physics.diffusivity", "initial.center", "initial.amplitude"}
    assert 0.001 <= values["physics.diffusivity"] <= 0.003 and isinstance(values["physics.diffusivity"], float)
    assert len(values["initial.center"]) == 2 and all(isinstance(v, float) for v in values["initial.center"])
    assert values["initial.amplitude"] in (1.0, 2.0, 3.0)
    amplitudes = {ensemble.draw(cfg, m)["initial.amplitude"] for m in range(1, 40)}
    assert amplitudes == {1.0, 2.0, 3.0}                        # every choice can come up
    member_cfg, drawn = ensemble.member_config(cfg, 2)
    assert drawn == values and member_cfg.physics.diffusivity == values["physics.diffusivity"]
    assert list(member_cfg.initial.center) == values["initial.center"]
    unstable, _ = make(tmp_path, perturb={"physics.diffusivity": {"dist": "uniform", "low": 5.0, "high": 6.0}})
    with pytest.raises(ConfigError, match=r"^member 3 \(drawn physics.diffusivity = 5\.\d+\): .*time.dt"):
        ensemble.member_config(unstable, 3)


def test_short_values():
    assert ensemble._short(0.123456789) == "0.123457"
    assert ensemble._short([1.0, 0.5]) == "[1, 0.5]"
    assert ensemble._short(3) == "3"


def test_member_identity_and_path(tmp_path):
    cfg, _ = make(tmp_path)
    one, _ = ensemble.member_config(cfg, 1)
    two, _ = ensemble.member_config(cfg, 2)
    assert ensemble.member_hash(one) != ensemble.member_hash(two)
    reseeded, _ = make(tmp_path, seed=8)
    assert ensemble.member_hash(ensemble.member_config(reseeded, 1)[0]) != ensemble.member_hash(one)
    assert ensemble.member_path(cfg, 7) == os.path.join(str(tmp_path / "members"), "member-0007.h5")


def test_member_threads_pins_auto(tmp_path, monkeypatch):
    cfg, _ = make(tmp_path)
    assert ensemble.member_threads(cfg).parallel.threads == 1
    auto = config_module.with_values(cfg, {"parallel.threads": "auto"})
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    assert ensemble.member_threads(auto).parallel.threads == 1
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "3")
    assert ensemble.member_threads(auto).parallel.threads == 3


def test_run_skip_refuse_and_force_a_member(tmp_path, capsys):
    cfg, path = make(tmp_path)
    start = time.perf_counter()
    done = ensemble.run_member(cfg, 2, config_path="as/given.yaml")
    assert done.status == "done" and done.member == 2, done.message
    assert 0 < done.seconds <= time.perf_counter() - start
    assert capsys.readouterr() == ("", "")                      # a member's progress lines stay quiet
    with pytest.raises(dataclasses.FrozenInstanceError):
        done.status = "failed"
    assert done.message.startswith("member 2: done in ") and "physics.diffusivity = " in done.message
    out = ensemble.member_path(cfg, 2)
    with h5py.File(out, "r") as f:
        member_cfg, values = ensemble.member_config(cfg, 2)
        assert f.attrs["ensemble_member"] == 2 and f.attrs["ensemble_seed"] == 7
        assert attribute(f.attrs[ensemble.MEMBER_HASH]) == ensemble.member_hash(member_cfg)
        assert attribute(f.attrs["ensemble_config"]) == "as/given.yaml"      # the path as the user gave it
        assert set(attribute(f.attrs["ensemble_parameters"]).split(",")) == set(values)
        assert f.attrs["param.physics.diffusivity"] == values["physics.diffusivity"]
    assert ensemble.recorded_hash(out) == ensemble.member_hash(member_cfg)
    skipped = ensemble.run_member(cfg, 2)
    assert skipped.status == "skipped" and "is complete (--force reruns it)" in skipped.message
    assert skipped.seconds == 0.0
    ensemble.run_member(cfg, 1)                                   # no config_path: the config's own name
    with h5py.File(ensemble.member_path(cfg, 1), "r") as f:
        assert attribute(f.attrs["ensemble_config"]) == str(path)
    other, _ = make(tmp_path, seed=9)
    refused = ensemble.run_member(other, 2)
    assert refused.status == "failed" and "was computed for another config" in refused.message
    assert refused.message.startswith("error: member 2: ")
    forced = ensemble.run_member(other, 2, force=True)
    assert forced.status == "done"
    with h5py.File(out, "r") as f:
        assert f.attrs["ensemble_seed"] == 9


def test_a_member_file_without_a_hash_is_refused(tmp_path):
    cfg, _ = make(tmp_path)
    assert ensemble.recorded_hash(str(tmp_path / "none.h5")) is None
    with h5py.File(tmp_path / "bare.h5", "w") as f:
        f.attrs["x"] = 1
    assert ensemble.recorded_hash(str(tmp_path / "bare.h5")) is None
    for value in (5, ""):                                         # not a hash: a number, an empty text
        with h5py.File(tmp_path / "odd.h5", "w") as f:
            f.attrs[ensemble.MEMBER_HASH] = value
        assert ensemble.recorded_hash(str(tmp_path / "odd.h5")) is None
    with pytest.raises(ConfigError, match="member 4: .*bare.h5 records no config hash"):
        ensemble.check_same_member(str(tmp_path / "bare.h5"), 4, "abc")


def test_a_failing_member_fails_alone(tmp_path):
    cfg, _ = make(tmp_path, perturb={"physics.diffusivity": {"dist": "uniform", "low": 5.0, "high": 6.0}})
    start = time.perf_counter()
    failed = ensemble.run_member(cfg, 1)
    assert failed.status == "failed" and failed.message.startswith("error: member 1 (drawn physics.diffusivity")
    assert 0 <= failed.seconds <= time.perf_counter() - start


def test_members_that_fail_say_why_in_one_line_with_their_time(tmp_path, monkeypatch):
    cfg, _ = make(tmp_path)
    os.makedirs(ensemble.member_path(cfg, 4))                   # a directory where the member file goes
    start = time.perf_counter()
    refused = ensemble.run_member(cfg, 4)
    assert refused.status == "failed" and refused.message.startswith("error: member 4: output ")
    assert "exists and is a directory" in refused.message
    assert 0 <= refused.seconds <= time.perf_counter() - start

    def broken(*args, **kwargs):
        raise OSError("the disk is on fire\nsecond line")
    monkeypatch.setattr(ensemble, "run", broken)
    start = time.perf_counter()
    failed = ensemble.run_member(cfg, 5)
    assert (failed.status, failed.message) == ("failed", "error: member 5: the disk is on fire")
    assert 0 <= failed.seconds <= time.perf_counter() - start


def test_a_member_another_process_computes_is_skipped(tmp_path):
    cfg, _ = make(tmp_path)
    os.makedirs(cfg.ensemble.output_dir)
    lock = OutputLock(ensemble.member_path(cfg, 3))
    lock.acquire()
    try:
        outcome = ensemble.run_member(cfg, 3)
    finally:
        lock.release()
    assert outcome.status == "skipped" and "is computing it" in outcome.message, outcome.message


def test_main_exit_codes(tmp_path, capsys):
    cfg, path = make(tmp_path)
    assert ensemble.main(["--config", str(path), "1", "3"]) == 0
    assert os.path.exists(ensemble.member_path(cfg, 3))
    out, err = capsys.readouterr()
    assert "member 3: done in" in out and err == "" and "running" not in out      # progress only with -v
    assert ensemble.main(["--config", str(path), "4", "-v"]) == 0
    out, err = capsys.readouterr()
    assert "running 17 x 9 nodes" in out and "member 4: done in" in out and err == ""
    assert ensemble.main(["--config", str(path), "1"]) == 0
    assert "member 1: skipped" in capsys.readouterr().out
    assert ensemble.main(["--config", str(path)]) == 2
    assert "no member numbers given" in capsys.readouterr().err
    assert ensemble.main(["--config", str(path), "9"]) == 2
    assert ensemble.main(["--config", str(path), "--print-settings"]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "members"), "5", "1"]
    bad, bad_path = make(tmp_path, perturb={"physics.diffusivity": {"dist": "uniform", "low": 5.0, "high": 6.0}})
    assert ensemble.main(["--config", str(bad_path), "2", "--force"]) == 1
    assert "error: member 2" in capsys.readouterr().err


def test_ctrl_c_between_members_says_how_far_it_got(tmp_path, monkeypatch, capsys):
    _, path = make(tmp_path)
    calls = []

    def member(cfg, number, *args):
        calls.append(number)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return ensemble.Outcome(number, "done", f"member {number}: done")
    monkeypatch.setattr(ensemble, "run_member", member)
    assert ensemble.main(["--config", str(path), "1", "2", "3"]) == 130
    assert capsys.readouterr().err == ("interrupted by SIGINT after 1 of 3 member(s); run the same command again "
                                       "to resume\n")
