"""The two graphs of the seed article in one image: bans per hour and the cumulative number of
unique banned addresses, each with its least-squares trend line.

matplotlib is an optional extra (``pip install 'gardien[plot]'``). It is used through its
object API (:class:`matplotlib.figure.Figure`, no pyplot): no global state, no display
needed. The image is written to a temporary file beside the target, then renamed over it, so
a reader never sees half an image and a failure leaves no file.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from gardien.errors import GardienError
from gardien.stats.compute import AttackStats
from gardien.stats.render import range_text

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["PLOT_FORMATS", "check_plot_target", "write_plot"]

PLOT_FORMATS = {".png": "png", ".svg": "svg"}
"""The image formats, by file extension."""

_INSTALL = "pip install 'gardien[plot]'"


def check_plot_target(path: str | os.PathLike[str]) -> str:
    """The image format of ``path`` (from its extension), once it is known that it can be
    drawn: matplotlib is installed and the directory exists. Raises :class:`GardienError` before
    any work otherwise."""
    target = Path(path)
    image_format = PLOT_FORMATS.get(target.suffix.lower())
    if image_format is None:
        raise GardienError(
            f"--plot {str(target)!r}: unknown image format {target.suffix or '(none)'!r}; "
            "name the file .png or .svg"
        )
    if importlib.util.find_spec("matplotlib") is None:
        raise GardienError(f"--plot needs matplotlib, which is not installed: {_INSTALL}")
    directory = target.parent
    if not directory.is_dir():
        raise GardienError(f"--plot {str(target)!r}: no such directory {str(directory)!r}")
    return image_format


def write_plot(stats: AttackStats, path: str | os.PathLike[str]) -> None:
    """Draw the bans per hour and the cumulative unique addresses of ``stats``, with their
    trends, into ``path`` (.png or .svg)."""
    image_format = check_plot_target(path)
    try:
        from matplotlib import dates
        from matplotlib.figure import Figure
    except ImportError as exc:  # installed, but broken
        raise GardienError(f"--plot: cannot import matplotlib ({exc}): {_INSTALL}") from exc

    figure = Figure(figsize=(11, 7.5), layout="constrained")
    bans_axes, unique_axes = figure.subplots(2, 1, sharex=True)
    indices = range(stats.hours)
    zone = stats.local(stats.since).tzname()
    jails = ", ".join(stats.jails) if stats.jails else "every jail"
    figure.suptitle(f"Bans between {range_text(stats)}, {jails}")

    # hour i covers [edges[i], edges[i + 1]); one filled staircase draws hundreds of hours
    # much faster than as many bars
    # (matplotlib leaves date2num, AutoDateLocator and ConciseDateFormatter untyped)
    edges = [stats.local(stats.hour_start(index)) for index in range(stats.hours + 1)]
    ends = edges[1:]
    numbers = dates.date2num(edges)  # type: ignore[no-untyped-call]
    bans_axes.stairs(
        stats.bans_per_hour,
        numbers,
        fill=True,
        color="tab:red",
        label="bans",
    )
    trend = stats.bans_trend
    bans_axes.plot(
        numbers[:-1] + 1 / 48,  # the middle of each hour
        [trend.at(index) for index in indices],
        color="black",
        linewidth=1.5,
        label=f"trend: {trend.slope_per_day:+.3g} bans/hour a day",
    )
    bans_axes.set_title(f"Bans per hour ({stats.bans} in all)")
    bans_axes.set_ylabel("bans per hour")

    unique = stats.unique_trend
    # the count at the end of each hour, from 0 at the start of the range
    unique_axes.plot(
        edges, [0, *stats.cumulative_unique], color="tab:blue", label="unique addresses"
    )
    unique_axes.plot(
        ends,
        [unique.at(index) for index in indices],
        color="black",
        linestyle="--",
        linewidth=1.5,
        label=f"trend: {unique.slope_per_day:+.3g} addresses a day",
    )
    unique_axes.set_title(f"Unique banned addresses, cumulative ({stats.unique_addresses} in all)")
    unique_axes.set_ylabel("addresses")
    unique_axes.set_xlabel(f"time ({zone})")

    tz = edges[0].tzinfo
    locator = dates.AutoDateLocator(tz=tz)  # type: ignore[no-untyped-call]
    unique_axes.xaxis.set_major_locator(locator)
    formatter = dates.ConciseDateFormatter(locator, tz=tz)  # type: ignore[no-untyped-call]
    unique_axes.xaxis.set_major_formatter(formatter)
    for axes in (bans_axes, unique_axes):
        axes.grid(True, alpha=0.3)
        axes.set_ylim(bottom=0)
        if stats.hours:
            axes.legend(loc="upper left")
        else:
            axes.text(0.5, 0.5, "no bans", transform=axes.transAxes, ha="center")
    _save(figure, Path(path), image_format)


def _save(figure: Figure, target: Path, image_format: str) -> None:
    try:
        descriptor, temporary = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
        )
    except OSError as exc:
        raise GardienError(f"--plot {str(target)!r}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(descriptor, "wb") as out:
            figure.savefig(out, format=image_format, dpi=100)
        os.chmod(temporary, 0o644)  # an image to share, not a secret (mkstemp makes 0600)
        os.replace(temporary, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(exc, OSError):
            raise GardienError(f"--plot {str(target)!r}: {exc.strerror or exc}") from exc
        raise
