"""Summarise a py-spy ``--format raw`` profile: where the samples are, by self and total time.

    python -m tests.bench.profile_top profile-c50.txt [--top 30] [--match engine]
"""

from __future__ import annotations

import argparse
import collections
import re
from collections.abc import Sequence

_LINE = re.compile(r"^(.*) (\d+)$")
_FRAME = re.compile(r"^(?P<fn>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _name(frame: str) -> str:
    """``fn (path/to/file.py:123)`` -> ``fn (file.py)``: lines of one function merged."""
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m.group("file")
    short = "/".join(path.split("/")[-2:])
    return f"{m.group('fn')} ({short})"


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("path")
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--match", default="", help="only totals for frames containing this")
    p.add_argument("--by-python", action="store_true",
                   help="attribute each sample to its innermost Python frame (native profiles)")
    args = p.parse_args(argv)
    self_time: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    with open(args.path) as fh:
        for line in fh:
            m = _LINE.match(line.rstrip("\n"))
            if not m:
                continue
            frames = [_name(f) for f in m.group(1).split(";")]
            n = int(m.group(2))
            if args.by_python:
                py = [f for f in frames if ".py)" in f and "runners.py" not in f
                      and "uvloop/__init__" not in f and "main.py" not in f]
                frames = [*frames[:1], py[-1] if py else f"native: {frames[-1]}"]
            samples += n
            self_time[frames[-1]] += n
            for f in set(frames):
                total[f] += n
    print(f"{samples} samples")
    print("\nself time")
    for name, n in self_time.most_common(args.top):
        print(f"{n / samples:6.1%}  {name}")
    print("\ntotal time")
    shown = 0
    for name, n in total.most_common():
        if args.match and args.match not in name:
            continue
        print(f"{n / samples:6.1%}  {name}")
        shown += 1
        if shown >= args.top:
            break


if __name__ == "__main__":
    main()
