"""Devito and pystencils in the benchmark: their rows appear beside ours, and a wrong result is an error, not a
row. Both come with the bench extra (jobs/setup.sh installs it); a missing one fails here. No test looks at time."""
from __future__ import annotations

import json

import pytest

from conftest import REPO, run_solver
from solver.bench import external as bench_external
from solver.bench import main as bench
from solver.errors import ConfigError


def test_bench_times_devito_and_pystencils_in_the_same_table(tmp_path):
    result = run_solver("bench", "--sizes", "40x31", "--kernels", "prange,devito,pystencils", "--threads", "1,all",
                        "--seconds", "0.01", "--repeats", "1", "--copy-mib", "2", "--json", tmp_path / "bench.json",
                        "--plot", tmp_path / "bench.png", timeout=300)
    report = json.loads((tmp_path / "bench.json").read_text())
    rows = report["results"]
    threads = {r["threads"] for r in rows if r["kernel"] == "prange"}
    if len(threads) > 1:                # the speed-up of the ceiling and of each kernel, from 1 thread to all
        assert report["thread_scaling"][0].startswith("in-cache ceiling (diffusion) x")
        assert any(s.startswith("devito 40x31 x") for s in report["thread_scaling"])
        assert "from one thread to all: in-cache ceiling" in result.stdout
    for name in bench_external.LIBRARIES:
        mine = [r for r in rows if r["kernel"] == name]
        assert {r["threads"] for r in mine} == threads
        for row in mine:
            assert row["library"].startswith(name + " ")
            assert row["mlups"] > 0 and row["percent_of_bound"] > 0 and row["ratio_to_prange"] > 0
        assert f"{name} " in result.stdout
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", bench_external.LIBRARIES)
def test_verify_accepts_the_library_and_catches_a_wrong_coefficient(name, monkeypatch):
    monkeypatch.setenv("DEVITO_LOGGING", "ERROR")
    ny, nx = 11, 14
    advance = bench_external.BUILDERS[name](ny, nx)
    bench_external.verify(name, advance, ny, nx)

    def off_by_a_little(u, v, steps, cx, cy, region):
        return advance(u, v, steps, cx, cy * (1 + 1e-9), region)

    with pytest.raises(RuntimeError, match=f"{name} differs from the reference"):
        bench_external.verify(name, off_by_a_little, ny, nx)


def test_verify_catches_swapped_axes():
    def transposed(u, v, steps, cx, cy, region):
        return bench_external.reference(u, v, steps, cy, cx, region)

    with pytest.raises(RuntimeError, match="differs"):
        bench_external.verify("transposed", transposed, 11, 14)


def test_asking_for_a_missing_library_names_the_extra(monkeypatch):
    monkeypatch.setattr(bench_external, "available", lambda name: False)
    with pytest.raises(ConfigError, match=r"devito needs the bench extra: pip install -e '\.\[bench\]'"):
        bench_external.check_installed(["prange", "devito"])
    bench_external.check_installed(["prange", "numba"])


def test_default_kernels_include_the_installed_libraries(tmp_path):
    run_solver("bench", "--sizes", "12x9", "--threads", "1", "--seconds", "0.01", "--repeats", "1", "--copy-mib", "2",
               "--json", tmp_path / "bench.json", timeout=300)
    rows = json.loads((tmp_path / "bench.json").read_text())["results"]
    assert [r["kernel"] for r in rows] == [*bench.DEFAULT_KERNELS.split(","), *bench_external.LIBRARIES]


def test_models_are_built_in_names_or_model_files(tmp_path):
    """--models takes a user's model file beside the built-ins; anything else is one line."""
    specs = bench.parse_models(f"layered, {REPO / 'configs' / 'heat_source.py'}")
    assert specs == ["layered", str(REPO / "configs" / "heat_source.py")]
    for wrong, words in (("difusion", "neither a built-in"), ("nowhere/model.py", "no such model file"),
                         (" , ", "empty")):
        with pytest.raises(ConfigError, match=words):
            bench.parse_models(wrong)


def test_hot_loops_takes_the_vectorised_loop_body_and_not_the_code_after_it():
    """bench/hot_loops.py's loop: the longest block with a vector multiply, ending at its branch back."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("hot_loops", REPO / "bench" / "hot_loops.py")
    hot_loops = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hot_loops)
    asm = ("f:\n\tmovq\t%rdi, %rax\n.LBB0_1:\n\tvmovupd\t(%rax), %ymm0\n\tvmulpd\t%ymm0, %ymm1, %ymm2\n"
           "\tvmovupd\t%ymm2, (%rcx)\n\taddq\t$4, %rdx\n\tjne\t.LBB0_1\n\tmovq\t8(%rsp), %r15\n\tmovq\t%r15, %rdi\n"
           "\tvmulpd\t%ymm3, %ymm3, %ymm3\n\tretq\n.LBB0_2:\n\tvaddpd\t%ymm0, %ymm0, %ymm0\n\tjmp\t.LBB0_1\n")
    assert hot_loops._inner_loop(asm) == ["vmovupd\t(%rax), %ymm0", "vmulpd\t%ymm0, %ymm1, %ymm2",
                                          "vmovupd\t%ymm2, (%rcx)", "addq\t$4, %rdx", "jne\t.LBB0_1"]


def test_records_cost_prints_a_ratio_for_every_case():
    """bench/records_cost.py runs the kernel with each kind of records and prints one line a case."""
    import subprocess
    from conftest import PYTHON, solver_env
    out = subprocess.run([PYTHON, str(REPO / "bench" / "records_cost.py"), "--kernel", "numba", "--ny", "34",
                          "--nx", "50", "--steps", "3", "--rounds", "1"], env=solver_env(), capture_output=True,
                         text=True, timeout=600, check=True).stdout
    lines = out.splitlines()
    assert lines[0] == "diffusion, numba kernel, 34 x 50 nodes, 3 steps a call, 1 rounds"
    assert [line.split()[0] for line in lines[1:]] == ["none", "want", "10", "series", "both"]
    assert "ratio to none: median 1.000" in lines[1]
