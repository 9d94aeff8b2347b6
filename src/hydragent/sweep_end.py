"""The end of a sweep names the sweep's own folder and the commands that read it.

Each job prints its own `Run folder: …/<n>`; the last of those lines used to be the last line
of a sweep, pointing at one job. A Hydra callback records the sweep folder in the launching
process (`on_multirun_end` runs there, whatever the launcher), and `hydragent run` prints it
once the sweep has returned.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

#: sweep folders finished in this process, in order (one per `hydragent run -m`).
finished: list[Path] = []


class SweepFolder(Callback):  # type: ignore[misc,valid-type]
    """Hydra callback (conf/config.yaml `hydra.callbacks`): records the finished sweep's folder."""

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        finished.append(Path(str(config.hydra.sweep.dir)).resolve())


def closing_lines(folder: Path) -> str:
    """The sweep folder and the next two commands, ready to paste."""
    where = shlex.quote(str(folder))
    jobs = sum(1 for child in folder.iterdir() if (child / "summary.json").is_file())
    return (
        f"Sweep folder: {folder} ({jobs} job{'s' if jobs != 1 else ''})\n"
        f"Next: hydragent report {where}\n"
        f"      hydragent view {where}"
    )
