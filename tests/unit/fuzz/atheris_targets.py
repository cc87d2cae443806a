"""Coverage-guided fuzzing (atheris, i.e. libFuzzer for Python) of the SSE parser and of each
provider's stream decoder. The hypothesis tests next to this file explore shapes we thought
of; this explores whatever raises coverage, seeded with the recorded real streams.

    python tests/unit/fuzz/atheris_targets.py sse -max_total_time=60
    python tests/unit/fuzz/atheris_targets.py gemini -runs=200000 -artifact_prefix=/tmp/

Targets: ``sse`` (the parser, checked against the reference parser), ``openai``,
``azure_openai``, ``groq``, ``gemini`` (parser + that provider's ``new_decoder()``), and
``all`` (the first input byte picks one of those; what the bounded test runs). A crash is
any exception other than ``UpstreamError``, or a disagreement with the reference; libFuzzer
then writes the input to ``crash-*`` (under ``-artifact_prefix``) and exits non-zero.
``tests/unit/fuzz/test_fuzz_atheris.py`` runs ``all`` for a few seconds.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
for extra in (ROOT, ROOT / "generated", ROOT / "clients" / "python", Path(__file__).parent):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

import atheris  # noqa: E402

with atheris.instrument_imports(include=["server.providers"]):
    from server.providers.base import UpstreamError
    from server.providers.sse import SseParser

import fuzzkit  # noqa: E402

TARGETS = ("all", "sse", *sorted(fuzzkit.DECODERS))


def _pieces(fdp: atheris.FuzzedDataProvider) -> list[bytes]:
    out = []
    while fdp.remaining_bytes():
        out.append(fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 512)))
    return out


def fuzz_sse(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    limit = fdp.ConsumeIntInRange(16, 1 << 20)
    pieces = _pieces(fdp)
    parser = SseParser(limit)
    events = []
    try:
        for piece in pieces:
            events.extend(parser.feed(piece))
            if len(parser.leftover()) > limit + 1:
                raise AssertionError("the parser buffers more than max_event_bytes")
    except UpstreamError:
        return
    stream = b"".join(pieces)
    expected = fuzzkit.reference_events(stream)
    if events != expected:
        raise AssertionError(f"parser {events!r} != reference {expected!r}")


def decoder_target(spec: str):  # type: ignore[no-untyped-def]
    def fuzz(data: bytes) -> None:
        fdp = atheris.FuzzedDataProvider(data)
        limit = fdp.ConsumeIntInRange(64, 1 << 16)
        fuzzkit.decode(spec, _pieces(fdp), max_event_bytes=limit)  # only UpstreamError caught

    return fuzz


def fuzz_all(data: bytes) -> None:
    """The first byte picks the target: one process fuzzes everything (the bounded test)."""
    if not data:
        return
    pick = ALL[data[0] % len(ALL)]
    pick(data[1:])


ALL = [fuzz_sse, *(decoder_target(spec) for spec in sorted(fuzzkit.DECODERS))]


def seed_corpus(directory: Path) -> None:
    """Recorded streams, prefixed by two bytes that the targets read as the size limit."""
    for i, recording in enumerate(fuzzkit.recordings()):
        for j in range(len(ALL)):  # for "all": one copy per target (it skips the first byte)
            (directory / f"seed-{i}-{j}").write_bytes(bytes([j]) + b"\xff\xff" + recording.body)


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] not in TARGETS:
        sys.exit(f"usage: {argv[0]} {{{','.join(TARGETS)}}} [libFuzzer flags] [corpus dirs]")
    target = {"all": fuzz_all, "sse": fuzz_sse}.get(argv[1]) or decoder_target(argv[1])
    args = [argv[0], *argv[2:]]
    if not any(not a.startswith("-") for a in argv[2:]):  # no corpus given: seed one
        corpus = Path(tempfile.mkdtemp(prefix="sse-corpus-"))
        seed_corpus(corpus)
        args.append(str(corpus))
    atheris.Setup(args, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
