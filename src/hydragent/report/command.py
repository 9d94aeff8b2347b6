"""`hydragent report DIR [--baseline N]` and `hydragent view DIR [--serve] [--port N]`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path


class _Usage(Exception):
    """A bad command line: one line on stderr, exit code 2 (as cli.UsageError)."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so the command prints one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise _Usage(f"{self.prog}: {message}")


def _folder(value: str) -> Path:
    folder = Path(value)
    if folder.exists() and not folder.is_dir():
        raise _Usage(f"{folder} is a file, not a folder: give a run (or sweep) folder")
    if not folder.is_dir():
        raise _Usage(f"folder not found: {folder}")
    return folder


def _one_line_errors(command: Callable[[list[str]], int]) -> Callable[[list[str]], int]:
    def wrapped(args: list[str]) -> int:
        try:
            return command(args)
        except _Usage as error:
            sys.stderr.write(f"hydragent: {error}\n")
            return 2

    return wrapped


@_one_line_errors
def report_command(args: list[str]) -> int:
    parser = _Parser(prog="report", add_help=False)
    parser.add_argument("folder", help="a run or sweep folder, or a folder of them")
    parser.add_argument("--baseline", type=int, default=0, help="the job others are paired with")
    parser.add_argument(
        "--group-by",
        default="group",
        help="record field grouping samples for cluster-robust CIs (dotted: metadata.doc)",
    )
    options = parser.parse_args(args)
    folder = _folder(options.folder)
    from hydragent.report import write_report

    try:
        print(write_report(folder, baseline=options.baseline, group_by=options.group_by))
    except (FileNotFoundError, ValueError) as error:
        sys.stderr.write(f"hydragent: report: {error}\n")
        return 1
    return 0


@_one_line_errors
def view_command(args: list[str]) -> int:
    parser = _Parser(prog="view", add_help=False)
    parser.add_argument("folder", help="a run or sweep folder, or a folder of them")
    parser.add_argument("--serve", action="store_true", help="also serve it on 127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="port for --serve (0: a free one)")
    parser.add_argument(
        "--group-by",
        default="group",
        help="record field grouping samples for cluster-robust CIs (dotted: metadata.doc)",
    )
    options = parser.parse_args(args)
    folder = _folder(options.folder)
    from hydragent.view import build_view, make_server

    try:
        page = build_view(folder, group_by=options.group_by)
    except (FileNotFoundError, ValueError) as error:
        sys.stderr.write(f"hydragent: view: {error}\n")
        return 1
    print(f"wrote {page}")
    if (folder / "view_files").is_dir():
        print(f"wrote {folder / 'view_files'}/ (transcripts, loaded by the page)")
    if not options.serve:
        print(f"open {page.resolve().as_uri()} in a browser (works offline)")
        return 0
    server = make_server(folder, options.port)
    print(f"serving on http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
