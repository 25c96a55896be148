"""Write one benchmark's section into BENCHMARKS.md, with the command and machine that made it.

Each benchmark owns the text between ``<!-- begin NAME -->`` and ``<!-- end NAME -->``; other
sections are left as they are. The file is written to a temporary name and renamed.
"""

from __future__ import annotations

import os
import platform
import re
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
README_MD = BENCHMARKS_MD.with_name("README.md")


def cpu_features() -> str:
    """The instruction sets that change speed and rounding here, and the kernel numpy's BLAS picked."""
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    names = [
        ("avx2", "AVX2"),
        ("avx512f", "AVX-512"),
        ("avx512_bf16", "AVX-512 BF16"),
        ("amx_tile", "AMX"),
        ("asimd", "NEON"),
    ]
    present = [name for flag, name in names if flag in flags] or ["none of AVX2, AVX-512, AMX"]
    import numpy  # noqa: F401  (loads its BLAS, so that threadpoolctl sees it)
    from threadpoolctl import threadpool_info

    blas = [
        f"{p['internal_api']} {p.get('architecture', '')}".strip()
        for p in threadpool_info()
        if p["user_api"] == "blas" and "numpy" in p["filepath"]
    ]
    return f"{', '.join(present)}; numpy BLAS kernel {', '.join(blas) or 'unknown'}"


def machine() -> str:
    """A one-line description of this machine: CPU model (as lscpu names it), features, cores, Python, torch."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numpy
    import torch

    return (
        f"{cpu} ({cpu_features()}), {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"numpy {numpy.__version__}, torch {torch.__version__}, {platform.system()} {platform.release()}"
    )


def command() -> str:
    """The command line that ran this benchmark, as run from the repository root."""
    script, args = Path(sys.argv[0]).resolve(), sys.argv[1:]
    root = BENCHMARKS_MD.parent
    if script.is_relative_to(root):
        module = ".".join(script.relative_to(root).with_suffix("").parts)
        return " ".join(["python -m", module, *(shlex.quote(a) for a in args)])
    return " ".join(shlex.quote(a) for a in ["python", *sys.argv])


def write_section(
    name: str, title: str, body: str, *, command_line: str | None = None, machine_line: str | None = None
) -> None:
    """Replace (or append) section ``name`` of BENCHMARKS.md with ``body`` under ``title``.

    ``command_line`` and ``machine_line`` default to this process's; a result measured elsewhere (on a
    lent GPU machine) passes those it recorded there.
    """
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command_line = command() if command_line is None else command_line
    machine_line = machine() if machine_line is None else machine_line
    section = (
        f"<!-- begin {name} -->\n## {title}\n\n"
        f"Command: `{command_line}`  \nMachine: {machine_line}  \nDate: {stamp}\n\n{body.strip()}\n"
        f"<!-- end {name} -->"
    )
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else "# Benchmarks\n\n"
    pattern = re.compile(rf"<!-- begin {re.escape(name)} -->.*?<!-- end {re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    tmp = BENCHMARKS_MD.with_suffix(".md.tmp")
    tmp.write_text(text)
    os.replace(tmp, BENCHMARKS_MD)


def write_readme_block(name: str, text: str, path: Path = README_MD) -> None:
    """Replace the text between README's snippet markers ``<!-- --8<-- [start:NAME] -->`` and ``[end:NAME]``
    (the blocks the docs site includes) with ``text``; the markers must be there, once each."""
    start, end = f"<!-- --8<-- [start:{name}] -->", f"<!-- --8<-- [end:{name}] -->"
    content = path.read_text()
    if content.count(start) != 1 or content.count(end) != 1 or content.index(start) > content.index(end):
        raise ValueError(f"{path}: expected one {start} and, after it, one {end}")
    head, rest = content.split(start)
    _, tail = rest.split(end)
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(f"{head}{start}\n{text.strip()}\n{end}{tail}")
    os.replace(tmp, path)


def ratio_table(results: dict[str, list[float]], *, baseline: str = "dueldqn", digits: int = 0) -> str:
    """A markdown table of steps/s per repeat, the median, and ``baseline``'s median over each row's."""
    import statistics

    median = {name: statistics.median(values) for name, values in results.items()}
    rows = "\n".join(
        f"| {name} | {', '.join(f'{x:,.{digits}f}' for x in values)} | {median[name]:,.{digits}f} | "
        f"{median[baseline] / median[name]:.2f}x |"
        for name, values in results.items()
    )
    return f"| trainer | env steps/s per repeat | median | {baseline} / this |\n|---|---|---|---|\n{rows}"
