"""Detection engine benchmark: end-to-end events/s from JSON lines against the orjson ceiling.

Usage: python bench/bench_engine.py [--lines 1000000] [--shared ../shared] [--profile] [--scaling]

Builds a corpus by repeating ../shared/datasets/windows-evtx/events.jsonl.gz to --lines lines in a
temporary file (streamed, never held in memory), loads all SigmaHQ Windows, emerging-threats and
threat-hunting rules, then measures in the same run:
  1. the ceiling: a plain `for line in f: orjson.loads(line)` loop over the same file;
  2. end to end: the real reader (read_records) + engine (parse, classify, map, prefilter, all rules);
and reports rule load/compile time, peak RSS, per-stage costs, and optionally throughput against
rule count and event count, and a cProfile top list.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import gzip
import io
import itertools
import json
import os
import platform
import pstats
import random
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson

from watchfloor.core.types import TenantId
from watchfloor.detect.sigma.engine import SigmaEngine
from watchfloor.detect.sigma.loader import RuleSet, load_rules
from watchfloor.normalize.logsources import default_logsource_map
from watchfloor.normalize.readers import MemoryDeadLetters, ReadStats, read_records
from watchfloor.normalize.shapes import classify

TENANT = TenantId("bench")


def build_corpus(shared: Path, lines: int, out: Path) -> int:
    source = shared / "datasets/windows-evtx/events.jsonl.gz"
    with gzip.open(source, "rb") as fh:
        base = [line for line in fh.read().splitlines() if line.strip()]
    written = 0
    with out.open("wb", buffering=1 << 20) as fh:
        while written < lines:
            for line in base:
                fh.write(line + b"\n")
                written += 1
                if written >= lines:
                    break
    return written


def windows_rule_paths(shared: Path) -> list[Path]:
    sigma = shared / "sigma"
    return [sigma / "rules/windows", sigma / "rules-emerging-threats", sigma / "rules-threat-hunting"]


def only_windows(ruleset: RuleSet) -> RuleSet:
    kept = RuleSet(files=ruleset.files, errors=ruleset.errors)
    kept.rules = [(r, m) for r, m in ruleset.rules if m.logsource[0] == "windows"]
    return kept


def ceiling(path: Path) -> tuple[int, float]:
    loads = orjson.loads
    count = 0
    started = time.perf_counter()
    with path.open("rb", buffering=1 << 20) as fh:
        for line in fh:
            loads(line)
            count += 1
    return count, time.perf_counter() - started


def end_to_end(engine: SigmaEngine, path: Path) -> tuple[int, int, float]:
    sink = MemoryDeadLetters()
    stats = ReadStats()
    matches = 0
    evaluate = engine.evaluate
    started = time.perf_counter()
    for record in read_records([path], tenant=TENANT, sink=sink, stats=stats):
        matches += len(evaluate(record.raw, TENANT)[1])
    elapsed = time.perf_counter() - started
    if sink.dead_letters:
        raise SystemExit(f"unexpected dead letters: {sink.dead_letters[:3]}")
    return stats.records, matches, elapsed


def stage_costs(engine: SigmaEngine, path: Path, limit: int) -> dict[str, float]:
    """Microseconds per event, cumulative stages, over the first `limit` lines (held as bytes only;
    each stage streams over them and keeps nothing, so the collector has nothing extra to walk)."""
    with path.open("rb") as fh:
        lines = list(itertools.islice(fh, limit))
    loads = orjson.loads
    scan = engine.scanner.scan
    evaluate = engine.evaluate

    def parse() -> None:
        for line in lines:
            loads(line)

    def parse_classify() -> None:
        for line in lines:
            classify(loads(line))

    def parse_classify_scan() -> None:
        for line in lines:
            classify(loads(line))
            scan(line)

    def everything() -> None:
        for line in lines:
            evaluate(line, TENANT)

    out: dict[str, float] = {}
    for name, stage in (
        ("parse", parse),
        ("parse+classify", parse_classify),
        ("parse+classify+scan", parse_classify_scan),
        ("parse+classify+scan+evaluate", everything),
    ):
        started = time.perf_counter()
        stage()
        out[name] = (time.perf_counter() - started) / len(lines) * 1e6
    return out


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared")
    parser.add_argument("--profile", action="store_true", help="cProfile 100k lines, print the top 25")
    parser.add_argument("--scaling", action="store_true", help="throughput vs rule count and event count")
    parser.add_argument("--json", type=Path, help="write results as JSON here")
    args = parser.parse_args()
    if not (args.shared / "sigma").is_dir():
        raise SystemExit(f"needs the shared corpus at {args.shared}")

    results: dict[str, object] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "command": "python " + " ".join(sys.argv),
    }
    with tempfile.TemporaryDirectory(prefix="wf-bench-") as tmp:
        corpus = Path(tmp) / "corpus.jsonl"
        results["lines"] = build_corpus(args.shared, args.lines, corpus)
        results["corpus_mb"] = round(corpus.stat().st_size / 1e6, 1)

        started = time.perf_counter()
        ruleset = only_windows(load_rules(windows_rule_paths(args.shared)))
        results["rule_load_s"] = round(time.perf_counter() - started, 2)
        started = time.perf_counter()
        engine = SigmaEngine(ruleset, default_logsource_map())
        gc.freeze()  # as the CLI does: the compiled rules live for the whole run
        results["rule_compile_s"] = round(time.perf_counter() - started, 2)
        results["rules_loaded"] = len(ruleset.rules)
        results["rules_active"] = engine.active_rules()
        results["gate_literals"] = len(engine.scanner.literals)

        count, ceiling_s = ceiling(corpus)
        ceiling_rate = count / ceiling_s
        results["ceiling_events_per_s"] = round(ceiling_rate)
        events, matches, elapsed = end_to_end(engine, corpus)
        results["events"] = events
        results["matches"] = matches
        results["end_to_end_events_per_s"] = round(events / elapsed)
        results["end_to_end_s"] = round(elapsed, 1)
        results["share_of_ceiling"] = round(events / elapsed / ceiling_rate, 3)
        st = engine.stats
        results["candidates_per_event"] = round(st.candidates / max(st.events, 1), 2)
        results["poisoned_share"] = round(st.poisoned / max(st.events, 1), 4)
        results["peak_rss_mb"] = round(peak_rss_mb())
        results["stage_us_per_event"] = {
            k: round(v, 2) for k, v in stage_costs(engine, corpus, 50_000).items()
        }

        if args.scaling:
            results["scaling"] = scaling(ruleset, corpus)
        if args.profile:
            results["profile_top"] = profile(engine, corpus)
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")


def scaling(ruleset: RuleSet, corpus: Path) -> dict[str, object]:
    out: dict[str, object] = {}
    rng = random.Random(42)
    rules = list(ruleset.rules)
    rng.shuffle(rules)
    by_rules: dict[str, int] = {}
    for fraction in (0.1, 0.25, 0.5, 1.0):
        subset = RuleSet(rules=rules[: int(len(rules) * fraction)])
        engine = SigmaEngine(subset, default_logsource_map())
        sample = Path(str(corpus) + ".300k")
        _head(corpus, sample, 300_000)
        events, _, elapsed = end_to_end(engine, sample)
        by_rules[str(len(subset.rules))] = round(events / elapsed)
    out["events_per_s_by_rule_count_300k_lines"] = by_rules
    engine = SigmaEngine(ruleset, default_logsource_map())
    by_events: dict[str, int] = {}
    for lines in (100_000, 300_000, 1_000_000):
        sample = Path(f"{corpus}.{lines}")
        _head(corpus, sample, lines)
        events, _, elapsed = end_to_end(engine, sample)
        by_events[str(events)] = round(events / elapsed)
    out["events_per_s_by_event_count_all_rules"] = by_events
    return out


def _head(src: Path, dst: Path, lines: int) -> None:
    if dst.exists():
        return
    with src.open("rb") as fin, dst.open("wb") as fout:
        for i, line in enumerate(fin):
            if i >= lines:
                break
            fout.write(line)


def profile(engine: SigmaEngine, corpus: Path) -> list[str]:
    sample = Path(str(corpus) + ".prof")
    _head(corpus, sample, 100_000)
    profiler = cProfile.Profile()
    profiler.enable()
    end_to_end(engine, sample)
    profiler.disable()
    buffer = io.StringIO()
    pstats.Stats(profiler, stream=buffer).sort_stats("tottime").print_stats(25)
    return [line for line in buffer.getvalue().splitlines() if line.strip()][:40]


if __name__ == "__main__":
    main()
