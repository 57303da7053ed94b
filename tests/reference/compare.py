#!/usr/bin/env python3
"""Compare `salespulse replay` with the independent reference implementation.

    compare.py [--bin PATH] [--quick] [-j N] [--workdir DIR] [FILE ...] [--suite] [--now T]

Without FILE arguments (or with --suite) runs the suite:
  1. the worked examples (v1 on its families, and v1.1): reference == expected exactly, engine ==
     examples.expected.txt, and engine vs reference (the worked example of
     tests/fixtures/contract/, or $SALESPULSE_SPEC);
  2. generated streams (`salespulse gen`, fixed seeds and fixed --start dates,
     so every run replays the same bytes) over several lengths,
     disorder/re-delivery/broken lines, month/quarter/year/DST crossings,
     and time-zone / window configurations;
  3. the hand-made edge cases in tests/reference/cases/*.ndjson (a sibling
     NAME.args file holds extra replay arguments, e.g. `--now ...`).
--quick runs a smaller set of generated streams (every edge case still runs);
it is meant for CI (well under a minute on two cores).

Series are compared by name and label set; values with relative tolerance
1e-9, quantile gauges (`*_p50_seconds`, `*_p90_seconds`) with 1%. The
engine's summary counts (applied/duplicate/late/invalid) are compared too.
Prints one `ok`/`FAIL`/`skip` line per comparison (with the differences
under a FAIL) and ends with the line `N passed, M failed`. Exit status: 0 if
everything matched, 1 if any comparison failed, 2 if the binary is missing.
Works from any directory; the binary defaults to target/release/salespulse
of this repository ($SALESPULSE_BIN or --bin override it). Standard library only.
"""
import argparse
import math
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
SPEC = os.environ.get("SALESPULSE_SPEC") or os.path.join(ROOT, "tests", "fixtures", "contract")
TIMEOUT = 600          # seconds per subprocess: a hang fails that comparison instead of stalling CI
REF = os.path.join(HERE, "reference.py")
CASES = os.path.join(HERE, "cases")
QUANTILE = re.compile(r"_p(50|90)_seconds$")
LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_exposition(text, prefix="sales_"):
    series = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = LINE.match(line)
        if not m:
            raise ValueError("unparsable exposition line: " + line)
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        if not name.startswith(prefix):
            continue
        key = (name, tuple(sorted(LABEL.findall(labels))))
        if key in series:
            raise ValueError("duplicate series: " + line)
        series[key] = float(value)
    return series


def fmt_key(key):
    name, labels = key
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in labels) + "}"


def diff_series(engine, ref, rel=1e-9, qrel=0.01):
    diffs = []
    for key in sorted(set(engine) | set(ref)):
        a, b = engine.get(key), ref.get(key)
        if a is None:
            diffs.append(f"  only in reference: {fmt_key(key)} {b!r}")
        elif b is None:
            diffs.append(f"  only in engine:    {fmt_key(key)} {a!r}")
        else:
            tol = qrel if QUANTILE.search(key[0]) else rel
            if math.isnan(a) or math.isnan(b) or math.isinf(a) or math.isinf(b):
                bad = not (a == b or (math.isnan(a) and math.isnan(b)))
            else:
                bad = abs(a - b) > tol * max(abs(a), abs(b)) and abs(a - b) > 1e-12
            if bad:
                diffs.append(f"  value: {fmt_key(key)} engine={a!r} reference={b!r}")
    return diffs


SUMMARY_KEYS = ("applied", "duplicate", "late", "invalid")


def parse_summary(text, marker):
    for line in text.splitlines():
        if marker in line:
            return dict(re.findall(r"(\w+)=(\S+)", line))
    return {}


# The engine reads its configuration from SALESPULSE_* environment variables
# too (SALESPULSE_CONFIG, SALESPULSE_WINDOWS__..., and it refuses unknown ones
# such as SALESPULSE_SPEC): run it without them so that only the arguments of
# a comparison configure it, the same for the engine and the reference.
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.upper().startswith("SALESPULSE_")}
CLEAN_ENV["TZ"] = "UTC"


def _run(cmd, what):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, env=CLEAN_ENV)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{what} timed out after {TIMEOUT} s")
    if p.returncode != 0:
        raise RuntimeError(f"{what} exited with {p.returncode}: {p.stderr.strip()[-2000:]}")
    return p


def run_engine(binary, path, extra):
    p = _run([binary, "replay", "-q", *extra, path], f"engine on {os.path.basename(path)}")
    return parse_exposition(p.stdout), parse_summary(p.stderr, "replay lines=")


def run_reference(path, extra):
    p = _run([sys.executable, REF, *extra, path], f"reference on {os.path.basename(path)}")
    return parse_exposition(p.stdout), parse_summary(p.stderr, "reference lines=")


def compare_file(binary, path, extra):
    """-> (differences, number of series)"""
    eng, esum = run_engine(binary, path, extra)
    ref, rsum = run_reference(path, extra)
    diffs = diff_series(eng, ref)
    for k in SUMMARY_KEYS:
        if esum.get(k, "0") != rsum.get(k, "0"):
            diffs.append(f"  summary {k}: engine={esum.get(k, '0')} reference={rsum.get(k, '0')}")
    return diffs, len(set(eng) | set(ref))


def case_args(path):
    """Extra replay arguments of a case: the sibling NAME.args file, if any."""
    argf = os.path.splitext(path)[0] + ".args"
    if not os.path.exists(argf):
        return []
    args = open(argf).read().split()
    # a --config FILE is relative to the case's directory
    return [os.path.join(os.path.dirname(path), a) if i and args[i - 1] == "--config" else a
            for i, a in enumerate(args)]


_gen_locks, _gen_guard = {}, threading.Lock()


def gen(binary, outdir, args):
    name = "gen" + "_".join(a.lstrip("-").replace(":", "").replace("+", "") for a in args) + ".ndjson"
    path = os.path.join(outdir, name)
    with _gen_guard:
        lock = _gen_locks.setdefault(path, threading.Lock())
    with lock:
        if not os.path.exists(path):
            _run([binary, "gen", *args, "-o", path + ".part"], "salespulse gen " + " ".join(args))
            os.replace(path + ".part", path)
    return path


# Generated streams end at this fixed instant unless they give their own
# --start (`salespulse gen` without --start ends at today's midnight, which
# would make the suite depend on the day it runs). It is in the past, so no
# generated event is `future` by the machine clock.
END = datetime(2026, 11, 20, tzinfo=timezone.utc)


def _start(days):
    return (END - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def generated_specs(quick):
    base = ["--teams", "2", "--reps-per-team", "3"]
    messy = ["--disorder-s", "600", "--redeliver", "0.05", "--broken", "0.02"]
    specs = []
    seeds = [1, 2] if quick else [1, 2, 3, 7]
    days = [3, 14, 45] if quick else [3, 14, 45, 100]
    for seed in seeds:
        for d in days:
            common = ["--seed", str(seed), "--days", str(d), "--start", _start(d), *base]
            specs.append(common)
            specs.append(common + messy)
    # month / quarter / year / DST crossings
    for start, d in [("2026-03-25T00:00:00Z", 14), ("2026-06-24T00:00:00Z", 14),
                     ("2025-12-24T00:00:00Z", 14), ("2026-10-20T00:00:00Z", 14),
                     ("2026-03-20T00:00:00Z", 45), ("2025-12-01T00:00:00Z", 100),
                     ("2026-06-28T13:30:00+02:00", 3)]:
        for seed in ([5] if quick else [5, 11]):
            specs.append(["--seed", str(seed), "--days", str(d), "--start", start, *base])
            specs.append(["--seed", str(seed), "--days", str(d), "--start", start, *base, *messy])

    def s(seed, d, *rest):
        return ["--seed", str(seed), "--days", str(d), "--start", _start(d), *rest]
    if quick:
        # small versions of the heavy streams below: late events, many re-deliveries
        # and broken lines, spans past the join (180 d) and deal-TTL (365 d) horizons
        specs += [
            s(22, 14, "--teams", "2", "--reps-per-team", "2", "--disorder-s", "1000000",
              "--redeliver", "0.5", "--broken", "0.1"),
            s(25, 200, "--teams", "1", "--reps-per-team", "2", "--disorder-s", "20000000"),
            s(26, 400, "--teams", "1", "--reps-per-team", "2", "--activities", "3"),
        ]
    else:
        # heavy disorder (late events), many re-deliveries and broken lines, long spans
        # (join and deal-TTL horizons), bigger teams, a laggard rep
        specs += [
            s(21, 100, "--disorder-s", "8000000", "--redeliver", "0.3"),
            s(22, 60, "--disorder-s", "1000000", "--redeliver", "0.5", "--broken", "0.1"),
            s(23, 20, "--teams", "4", "--reps-per-team", "8"),
            s(24, 30, "--laggard", "0:1", "--activities", "5"),
            s(25, 200, "--teams", "1", "--reps-per-team", "2", "--disorder-s", "20000000"),
            s(26, 400, "--teams", "1", "--reps-per-team", "2", "--activities", "3"),
        ]
    return specs


# generated streams replayed with a configuration (time zone, windows); all run in --quick too
CONFIG_RUNS = [
    (["--seed", "31", "--days", "45", "--start", "2026-02-20T00:00:00Z", "--teams", "2", "--reps-per-team", "3",
      "--disorder-s", "600", "--redeliver", "0.05"], "tz_new_york_dst_day.toml"),
    (["--seed", "32", "--days", "14", "--start", "2026-03-25T00:00:00Z", "--teams", "2", "--reps-per-team", "3"],
     "tz_kolkata_quarter.toml"),
    (["--seed", "33", "--days", "20", "--start", "2026-08-25T00:00:00Z", "--teams", "2", "--reps-per-team", "3"],
     "tz_santiago_midnight_gap.toml"),
    (["--seed", "34", "--days", "100", "--start", _start(100), "--teams", "2", "--reps-per-team", "3",
      "--disorder-s", "3000000"], "config_windows.toml"),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.environ.get("SALESPULSE_BIN")
                    or os.path.join(ROOT, "target", "release", "salespulse"))
    ap.add_argument("--suite", action="store_true", help="run the suite too when FILEs are given")
    ap.add_argument("--quick", action="store_true", help="fewer generated streams (for CI)")
    ap.add_argument("--now", help="with FILE: evaluate at this instant")
    ap.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 2,
                    help="comparisons run in parallel (default: number of CPUs)")
    ap.add_argument("--workdir", help="keep generated streams here (default: a temporary dir, removed)")
    ap.add_argument("files", nargs="*")
    args = ap.parse_args()
    binary = os.path.abspath(args.bin)
    if not os.access(binary, os.X_OK):
        print(f"compare.py: no salespulse binary at {binary}; build it with "
              f"`cargo build --release` (or pass --bin / set SALESPULSE_BIN)", file=sys.stderr)
        sys.exit(2)
    t0 = time.monotonic()
    tmp = None
    if args.workdir:
        workdir = os.path.abspath(args.workdir)
        os.makedirs(workdir, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="salespulse-ref-")
        workdir = tmp.name

    # jobs: (label, thunk -> (differences, number of series)) or (label, None, why skipped)
    jobs = []
    for f in args.files:
        f = os.path.abspath(f)
        extra = ["--now", args.now] if args.now else case_args(f)
        jobs.append((os.path.basename(f) + (" " + " ".join(extra) if extra else ""),
                     lambda f=f, extra=extra: compare_file(binary, f, extra)))

    if args.suite or not args.files:
        # 1. worked examples: v1 (on v1's families: v1.1 adds families and
        # benchmarks) and v1.1 (everything)
        for ex_name, exp_name, v1_only in (("examples.ndjson", "examples.expected.txt", True),
                                           ("examples-v1.1.ndjson", "examples-v1.1.expected.txt", False)):
            ex = os.path.join(SPEC, ex_name)
            exp = os.path.join(SPEC, exp_name)
            if not (os.path.exists(ex) and os.path.exists(exp)):
                # The fixtures ship with the repository: their absence is a failure.
                jobs.append((f"worked example {ex_name}",
                             lambda ex_name=ex_name, exp_name=exp_name:
                             ([f"no {ex_name} / {exp_name} in {os.path.normpath(SPEC)}"], 0)))
                continue
            expected = parse_exposition(open(exp).read())

            def only(m, expected=expected, v1_only=v1_only):
                if not v1_only:
                    return m
                fams = {k[0] for k in expected}
                return {k: v for k, v in m.items()
                        if k[0] in fams and (k[0] != "sales_benchmark" or k in expected)}

            def ref_vs_expected(ex=ex, expected=expected, only=only):
                ref, _ = run_reference(ex, [])
                return diff_series(only(ref), expected, rel=0, qrel=0), len(expected)

            def engine_vs_expected(ex=ex, expected=expected, only=only):
                eng, _ = run_engine(binary, ex, [])
                return diff_series(only(eng), expected), len(expected)
            jobs.append((f"worked example {ex_name}: reference vs {exp_name}", ref_vs_expected))
            jobs.append((f"worked example {ex_name}: engine vs {exp_name}", engine_vs_expected))
            jobs.append((f"worked example {ex_name}: engine vs reference", lambda ex=ex: compare_file(binary, ex, [])))
        # 2. generated streams
        for spec in generated_specs(args.quick):
            jobs.append(("gen " + " ".join(spec),
                         lambda spec=spec: compare_file(binary, gen(binary, workdir, spec), [])))
        for spec, cfg in CONFIG_RUNS:
            cfg = os.path.join(CASES, cfg)
            jobs.append(("gen " + " ".join(spec) + " --config " + os.path.basename(cfg),
                         lambda spec=spec, cfg=cfg: compare_file(binary, gen(binary, workdir, spec),
                                                                 ["--config", cfg])))
        # 3. edge cases
        for name in sorted(os.listdir(CASES)):
            if name.endswith(".ndjson"):
                path = os.path.join(CASES, name)
                extra = case_args(path)
                shown = [os.path.basename(a) if os.path.isabs(a) else a for a in extra]
                jobs.append(("case " + name + (" " + " ".join(shown) if shown else ""),
                             lambda path=path, extra=extra: compare_file(binary, path, extra)))

    def run(job):
        if job[1] is None:
            return None
        try:
            return job[1]()
        except Exception as exc:   # a crash fails this comparison, not the run
            return [f"  error: {exc}"], 0

    passed = failed = skipped = series = 0
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        # printed in job order, each as soon as it and the jobs before it are done
        for job, result in zip(jobs, pool.map(run, jobs)):
            label = job[0]
            if result is None:
                skipped += 1
                print(f"skip {label}: {job[2]}", flush=True)
                continue
            diffs, n = result
            series += n
            if diffs:
                failed += 1
                print(f"FAIL {label}: {len(diffs)} difference(s)")
                for d in diffs[:40]:
                    print(d)
                if len(diffs) > 40:
                    print(f"  ... {len(diffs) - 40} more")
            else:
                passed += 1
                print(f"ok   {label}: {n} series")
            sys.stdout.flush()
    if tmp is not None:
        tmp.cleanup()
    print(f"\n{series} series compared in {time.monotonic() - t0:.1f} s"
          + (f"; {skipped} skipped" if skipped else ""))
    print(f"{passed} passed, {failed} failed", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
