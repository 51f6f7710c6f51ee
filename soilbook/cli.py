"""The ``soilbook`` command line: a thin layer over :mod:`soilbook.run`, :mod:`soilbook.book`
and :mod:`soilbook.data.registry`.

::

    soilbook run NB [-p KEY VALUE ...] [-f params.yaml ...] [--profile quick|full]
                    [--timeout SEC] [--output-dir DIR] [--help-params] [--progress]
    soilbook book [--profile quick] [--force] [--no-execute] [--keep-going] [--timeout SEC]
    soilbook data list | fetch NAME... | verify [NAME...]
    soilbook bench maps|train|ssl_pretrain|moisture [ARGS...]

``NB`` is a notebook path, its stem (``01_salinity_ss_soilnet``) or a unique prefix (``01``);
:mod:`soilbook.run` says how parameters are merged, checked and recorded.

Exit status: 0 done; 1 a notebook, the book build or a data check failed (the message names
the error and the partial executed notebook); 2 a usage problem or any other expected failure
(bad parameter, unwritable output folder, data not reachable …), reported as one message,
without a traceback, before papermill starts; 130 stopped by Ctrl-C (the message says where
the partial outputs are, and a re-run resumes from the checkpoints).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from soilbook.book import book
from soilbook.errors import NotebookExecutionError, ParameterError, SoilbookError
from soilbook.run import DEFAULT_TIMEOUT_S, find_repo, params_table, resolve_notebook, run

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
#: The shell's status for a process stopped by SIGINT (128 + 2).
EXIT_INTERRUPTED = 130


def _error(message: object) -> None:
    print(f"error: {message}", file=sys.stderr)


# -- the commands ------------------------------------------------------------------------------


def _failure_message(rec: dict) -> str:
    """One line for a failed run: the cell, the error, the partial notebook (or the kernel log
    when no cell failed: a dead kernel, a timeout before any output)."""
    where = f" in cell {rec['error_cell']}" if rec.get("error_cell") else ""
    message = f"{rec['notebook']} failed{where} after {rec['wall_time_s']:.1f} s: {rec['error']}"
    if Path(rec["executed"]).is_file():
        message += f"; the partial executed notebook is {rec['executed']}"
    log = Path(rec.get("kernel_log") or "")
    if not rec.get("error_cell") and log.is_file() and log.stat().st_size:
        message += f"; the kernel's own messages are in {log}"
    return message


def _cmd_run(args: argparse.Namespace) -> int:
    """``soilbook run``: the parameter table, or one execution and its one-line outcome."""
    repo = find_repo()
    if args.help_params:
        print(params_table(resolve_notebook(args.notebook, repo).stem, repo))
        return EXIT_OK
    rec = run(
        args.notebook,
        repo=repo,
        profile=args.profile,
        files=args.file,
        overrides=[tuple(p) for p in args.parameter],
        timeout=args.timeout,
        output_dir=args.output_dir,
        progress=sys.stdout.isatty() if args.progress is None else args.progress,
    )
    if rec["status"] == "ok":
        print(f"{rec['notebook']}: ok in {rec['wall_time_s']:.1f} s → {rec['executed']}")
        return EXIT_OK
    _error(_failure_message(rec))
    return EXIT_FAILED


def _cmd_book(args: argparse.Namespace) -> int:
    """``soilbook book``."""
    book(
        profile=args.profile,
        force=args.force,
        execute=not args.no_execute,
        keep_going=args.keep_going,
        timeout=args.timeout,
        progress=sys.stdout.isatty(),
    )
    return EXIT_OK


def _data_list() -> str:
    """The registry as a table: name, cached, size, checksum, licence, description."""
    from soilbook.data.registry import cache_dir, list_datasets

    table = list_datasets()
    table["size"] = [
        "-" if s is None or s != s else f"{s / 1e6:.2f} MB" for s in table.pop("size_bytes")
    ]
    table["checksum"] = ["pinned" if c == "pinned" else "first use" for c in table.pop("sha256")]
    for col, width in (("description", 64), ("licence", 28)):
        table[col] = [t if len(t) <= width else t[: width - 3] + "..." for t in table[col]]
    cols = ["name", "cached", "size", "checksum", "licence", "description"]
    rows = [cols, *([str(v) for v in r] for r in table[cols].itertuples(index=False))]
    widths = [max(len(r[i]) for r in rows) for i in range(len(cols))]
    text = "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )
    return f"{text}\n\ncache: {cache_dir()}  (soilbook.data.registry has the full licences and citations)"


def _data_verify(names: Sequence[str]) -> int:
    """Re-hash the cached files ``names`` (default: all); 1 if one is corrupt or named but absent."""
    from soilbook.data.registry import DATASETS, cached_path, get, verify

    ok, missing, corrupt = [], [], []
    for n in names or sorted(DATASETS):
        get(n)  # an unknown name: UnknownDatasetError, listing the known ones
        if not cached_path(n).is_file():
            missing.append(n)
        elif verify(n):
            ok.append(n)
        else:
            corrupt.append(n)
    for n in ok:
        print(f"ok       {n}")
    for n in missing:
        print(f"missing  {n} (not cached; `soilbook data fetch {n}`)")
    for n in corrupt:
        print(f"CORRUPT  {n} (`soilbook data fetch {n}` replaces it)")
    return EXIT_FAILED if corrupt or (names and missing) else EXIT_OK


def _cmd_data(args: argparse.Namespace) -> int:
    """``soilbook data list|fetch|verify``."""
    if args.data_command == "list":
        print(_data_list())
        return EXIT_OK
    if args.data_command == "fetch":
        from soilbook.data.registry import fetch

        for name in args.names:
            print(f"{name}: {fetch(name, progress=sys.stdout.isatty())}")
        return EXIT_OK
    return _data_verify(args.names)


def _cmd_bench(args: argparse.Namespace) -> int:
    """``soilbook bench maps|train|ssl_pretrain|moisture``: run ``benchmarks/bench_<which>.py`` from the repository."""
    repo = find_repo()
    script = repo / "benchmarks" / f"bench_{args.which}.py"
    if not script.is_file():
        raise ParameterError(
            f"{script} does not exist; the benchmarks live in {repo / 'benchmarks'}."
        )
    return subprocess.run(
        [sys.executable, str(script), *args.args], cwd=repo, check=False
    ).returncode


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": _cmd_run,
    "book": _cmd_book,
    "data": _cmd_data,
    "bench": _cmd_bench,
}


# -- argument parsing --------------------------------------------------------------------------


def _add_run(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("run", help="execute one notebook with papermill")
    r.add_argument("notebook", help="path, stem (01_salinity_ss_soilnet) or unique prefix (01)")
    r.add_argument(
        "-p", "--parameter", nargs=2, action="append", default=[], metavar=("KEY", "VALUE")
    )
    r.add_argument("-f", "--file", action="append", default=[], metavar="PARAMS.yaml")
    r.add_argument(
        "--profile",
        default="quick",
        help="quick (default) | full | another notebooks/params/<nb>/<name>.yaml",
    )
    r.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help="per-cell limit in seconds (0: none)",
    )
    r.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        help="where the executed notebook and JSON go (default _build/executed)",
    )
    r.add_argument(
        "--help-params", action="store_true", help="print the notebook's parameters and exit"
    )
    r.add_argument(
        "--progress", action="store_true", default=None, help="show papermill's progress bar"
    )


def _add_book(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("book", help="execute the notebooks and build the HTML book")
    b.add_argument("--profile", default="quick")
    b.add_argument("--force", action="store_true", help="re-execute even unchanged notebooks")
    b.add_argument(
        "--no-execute", action="store_true", help="build from the existing executed copies"
    )
    b.add_argument(
        "--keep-going", action="store_true", help="execute the other notebooks after a failure"
    )
    b.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S)


def _add_data_and_bench(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("data", help="registered datasets: list, fetch, verify")
    dsub = d.add_subparsers(dest="data_command", required=True)
    dsub.add_parser("list", help="every registered file, cached or not")
    f = dsub.add_parser("fetch", help="download (or copy from the mirror) and verify")
    f.add_argument("names", nargs="+", metavar="NAME")
    v = dsub.add_parser("verify", help="re-hash cached files (default: all)")
    v.add_argument("names", nargs="*", metavar="NAME")

    be = sub.add_parser("bench", help="run a benchmark script from benchmarks/")
    be.add_argument("which", choices=("maps", "train", "ssl_pretrain", "moisture"))
    be.add_argument("args", nargs=argparse.REMAINDER)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="soilbook",
        description="Run the soilbook notebooks, build the book and manage its data.",
    )
    sub = ap.add_subparsers(dest="command", required=True)
    _add_run(sub)
    _add_book(sub)
    _add_data_and_bench(sub)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``soilbook`` console script; returns the exit status.

    Every expected failure is one message on stderr, never a traceback: a failed notebook or
    book build exits 1, a :class:`~soilbook.errors.SoilbookError` or an operating-system error
    (a read-only folder, a full disk, no network) exits 2, Ctrl-C exits 130.
    """
    args = _parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except KeyboardInterrupt as err:
        print(
            f"interrupted: {err}" if str(err) else f"interrupted: soilbook {args.command} stopped",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except NotebookExecutionError as err:
        _error(err)
        return EXIT_FAILED
    except (SoilbookError, OSError) as err:
        _error(err)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
