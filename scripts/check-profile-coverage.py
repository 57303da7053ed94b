#!/usr/bin/env python3
"""Checks that an exposition profile exports every series the shipped
dashboards and Prometheus rules read.

    scripts/check-profile-coverage.py [--bin target/release/salespulse] config/large-org.toml

It extracts every `sales_*` selector (metric name or __name__ matcher plus
label matchers) from
  - the Grafana dashboards (deploy/grafana/dashboards/*.json): panel target
    expressions and query-variable queries,
  - the alert and recording rules (deploy/prometheus/rules/*.yml): `expr`
    and the PromQL inside the annotation templates (`printf \\`...\\``),
and checks each twice:

1. Statically, against the profile's [exposition.rep] / [exposition.team]
   lists: the level a selector reads (`rep=""` team; `rep!=""`, `rep=~"$rep"`
   or a rep value: rep), its family, and its windows (a literal `window`, the
   options of the dashboard's `window` variable, or every configured window
   when it has no `window` matcher, as the org recording rules sum by window)
   must be exported.
2. With the real renderer: `salespulse replay` of a generated org (6 teams,
   35 days, `--now` in working hours) with the default configuration and
   with the profile; every series a selector matches in the first must be in
   the second, with the same value.

The rule unit tests (deploy/prometheus/tests) are not a source: their input
series are synthetic and some are there on purpose to be ignored (rep-level
series the org rules must leave out, a 30d window the alerts must not use);
`promtool test rules` runs them unchanged, and tests/e2e/11-large-org.sh runs
the rules on a real engine with the profile.

The dashboards' `window` variable lists the windows that have rep-level
series (`label_values(sales_outbound_activities{rep!=""}, window)`), so its
options under a profile are the profile's rep-level windows: that is what
`$window` expands to here.

Exits 1 listing what is missing, 2 on a usage error. Only the standard
library is used (tomllib needs Python 3.11).
"""

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Families that exist at team level only (docs/metrics.md).
TEAM_ONLY = {"sales_spend", "sales_active_reps", "sales_cost_per_lead", "sales_cac", "sales_revenue_per_rep",
             # v1.1: product lines and regions
             "sales_deals_created_by_product", "sales_pipeline_added_by_product", "sales_deals_won_by_product",
             "sales_deals_lost_by_product", "sales_revenue_by_product", "sales_win_ratio_by_product",
             "sales_team_info"}
# Families without a window label.
CURRENT = {"sales_open_deals", "sales_pipeline_value", "sales_quota", "sales_events_total",
           "sales_pipeline_coverage_ratio", "sales_team_info"}
# Not per rep or team: always exported.
ALWAYS = {"sales_benchmark"}
DEFAULT_WINDOWS = ["1h", "1d", "7d", "30d", "today", "wtd", "mtd", "qtd"]
# Labels that come from the scrape, not from the exposition.
TARGET_LABELS = {"job", "instance"}

ANY = object()  # a variable standing for "any non-empty value"

# ------------------------------------------------------------------ PromQL selectors

MATCHER_RE = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')
NAME_RE = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def selectors(expr):
    """Yields (name or None, [(label, op, value)]) for each vector selector of
    a PromQL expression (strings skipped)."""
    i, n = 0, len(expr)
    while i < n:
        c = expr[i]
        if c in "\"'`":
            j = i + 1
            while j < n and expr[j] != c:
                j += 2 if expr[j] == "\\" else 1
            i = j + 1
            continue
        m = NAME_RE.match(expr, i)
        if m and (i == 0 or not (expr[i - 1].isalnum() or expr[i - 1] in "_:$")):
            name = m.group(0)
            j = m.end()
            k = j
            while k < n and expr[k] == " ":
                k += 1
            if k < n and expr[k] == "{":
                end = expr.index("}", k)
                yield name, parse_matchers(expr[k + 1:end])
                i = end + 1
                continue
            if name.startswith("sales_") and not (k < n and expr[k] == "("):
                yield name, []
            i = j
            continue
        if c == "{":
            end = expr.index("}", i)
            yield None, parse_matchers(expr[i + 1:end])
            i = end + 1
            continue
        i += 1


def parse_matchers(s):
    out, pos = [], 0
    while pos < len(s) and s[pos:].strip():
        m = MATCHER_RE.match(s, pos)
        if not m:
            raise ValueError(f"cannot parse matchers {s!r}")
        out.append((m.group(1), m.group(2), m.group(3).replace('\\"', '"')))
        pos = m.end()
    return out


def families_of(name, matchers):
    """The sales_* families a selector can read."""
    names = set()
    if name and name.startswith("sales_"):
        names.add(name)
    for label, op, value in matchers:
        if label == "__name__" and op in ("=", "=~"):
            pat = re.compile(value if op == "=~" else re.escape(value))
            names |= {f for f in ALL_FAMILIES if pat.fullmatch(f)}
    return names


# ------------------------------------------------------------------ sources


def dashboard_queries(path):
    """(where, expr, window_var_query) for each panel target and query
    variable of a dashboard."""
    d = json.load(open(path))
    base = os.path.basename(path)
    window_query = None
    out = []
    for v in d.get("templating", {}).get("list", []):
        q = v.get("query")
        if isinstance(q, dict):
            q = q.get("query")
        if v.get("type") == "query" and isinstance(q, str):
            m = re.fullmatch(r"\s*label_values\((.*),\s*([A-Za-z_]+)\)\s*", q, re.S)
            expr = m.group(1) if m else q
            out.append((f"{base} variable {v['name']}", expr))
            if v["name"] == "window":
                window_query = expr
    def walk(p, title):
        if isinstance(p, dict):
            title = p.get("title", title)
            for t in p.get("targets", []) or []:
                if isinstance(t, dict) and isinstance(t.get("expr"), str):
                    out.append((f"{base} panel {title!r} {t.get('refId', '')}", t["expr"]))
            for k, v in p.items():
                if k != "targets":
                    walk(v, title)
        elif isinstance(p, list):
            for v in p:
                walk(v, title)
    walk(d.get("panels", []), "")
    return out, window_query


def yaml_scalars(path):
    """Naive YAML reader for the rule files: (key, text) for `expr:`,
    annotation and `series:` values, block scalars (| and >-) included."""
    lines = open(path).read().splitlines()
    out, i = [], 0
    while i < len(lines):
        m = re.match(r"^(\s*)(?:- )?(expr|description|summary|series):\s*(.*)$", lines[i])
        if not m:
            i += 1
            continue
        indent, key, rest = len(m.group(1)), m.group(2), m.group(3)
        if rest in ("|", ">-", ">", "|-"):
            block = []
            i += 1
            while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
                block.append(lines[i].strip())
                i += 1
            out.append((key, "\n".join(block)))
            continue
        out.append((key, rest.strip().strip("'\"")))
        i += 1
    return out


def rule_queries(path):
    base = os.path.basename(path)
    out = []
    for key, text in yaml_scalars(path):
        if key == "expr":
            out.append((f"{base} expr", text))
        else:
            for q in re.findall(r"printf\s+`([^`]*)`", text):
                out.append((f"{base} {key} template", q.replace("%q", '"$__template"')))
    return out


# ------------------------------------------------------------------ checks


def resolve(matchers, window_options):
    """Variables → values: $job/$instance dropped; $team, $rep and template
    placeholders → any non-empty value; $window → each option."""
    fixed, windows = [], None
    for label, op, value in matchers:
        if label in TARGET_LABELS:
            continue
        if "$" in value:
            if label == "window":
                windows = list(window_options)
                continue
            fixed.append((label, "!=", ""))
            continue
        fixed.append((label, op, value))
    return fixed, windows


def level_of(matchers):
    """'rep', 'team' or 'both' (no rep matcher)."""
    for label, op, value in matchers:
        if label != "rep":
            continue
        if op == "=" and value == "":
            return "team"
        if (op == "!=" and value == "") or (op == "=" and value) or op == "=~":
            return "rep"
    return "both"


def profile_sets(cfg, windows):
    exp = cfg.get("exposition", {})
    sets = {}
    for level in ("rep", "team"):
        lv = exp.get(level, {})
        fams = lv.get("families", ["*"])
        wins = lv.get("windows", ["*"])
        fams = set(ALL_FAMILIES) if "*" in fams else set(fams)
        if level == "rep":
            fams -= TEAM_ONLY
        wins = set(windows) if "*" in wins else set(wins)
        sets[level] = (fams, wins)
    return sets


def match(series_labels, name, matchers):
    lab = dict(series_labels)
    if name and lab.get("__name__") != name:
        return False
    for label, op, value in matchers:
        v = lab.get(label, "")
        if op == "=" and v != value:
            return False
        if op == "!=" and v == value:
            return False
        if op == "=~" and not re.fullmatch(value, v):
            return False
        if op == "!~" and re.fullmatch(value, v):
            return False
    return True


def parse_exposition(text):
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, value = line.rsplit(" ", 1)
        name, _, labels = series.partition("{")
        lab = tuple(sorted([("__name__", name)] + [(k, v) for k, v in re.findall(r'([A-Za-z_]+)="([^"]*)"', labels)]))
        out[lab] = float(value)
    return out


def replay(binary, config, events, now):
    cmd = [binary, "replay", "--quiet", "--now", now]
    if config:
        cmd += ["--config", config]
    cmd.append(events)
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {r.stderr.strip()}")
    if "series dropped" in r.stderr:
        raise SystemExit(f"the sample exceeds limits.max_series: {r.stderr.strip()}")
    return parse_exposition(r.stdout)


ALL_FAMILIES = []


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("profile", help="a salespulse configuration file with [exposition.*] tables")
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/salespulse"))
    ap.add_argument("--print", action="store_true", help="print every selector with its level and windows")
    a = ap.parse_args()
    if not os.path.exists(a.profile) or not os.access(a.bin, os.X_OK):
        print(f"usage: {a.profile} or {a.bin} missing (cargo build --release)", file=sys.stderr)
        return 2
    with open(a.profile, "rb") as f:
        cfg = tomllib.load(f)
    windows = [w.split(":")[0] for w in cfg.get("windows", {}).get("list", DEFAULT_WINDOWS)]

    with tempfile.TemporaryDirectory() as tmp:
        events = os.path.join(tmp, "events.ndjson")
        subprocess.run([a.bin, "gen", "--seed", "11", "--teams", "6", "--reps-per-team", "6", "--days", "33",
                        "--start", "2026-10-05T00:00:00Z", "--laggard", "1:2", "-o", events],
                       check=True, capture_output=True)
        now = "2026-11-06T16:00:00Z"  # a Friday afternoon: every window has data
        full = replay(a.bin, None, events, now)
        prof = replay(a.bin, a.profile, events, now)
    ALL_FAMILIES.extend(sorted({dict(k)["__name__"] for k in full}))
    sets = profile_sets(cfg, windows)

    queries, window_var = [], None
    for p in sorted(glob.glob(os.path.join(ROOT, "deploy/grafana/dashboards/*.json"))):
        qs, wq = dashboard_queries(p)
        # the window variable's own query reads whichever windows exist (above)
        queries += [(w, e) for w, e in qs if not w.endswith(" variable window")]
        window_var = window_var or wq
    for p in sorted(glob.glob(os.path.join(ROOT, "deploy/prometheus/rules/*.yml"))):
        queries += rule_queries(p)

    # The window variable's options: the windows of the series its query selects.
    if window_var:
        (wname, wm), = list(selectors(window_var))
        wfix, _ = resolve(wm, [])
        wlevel = level_of(wfix)
        levels = ["rep", "team"] if wlevel == "both" else [wlevel]
        window_options = sorted({w for lv in levels if wname in sets[lv][0] for w in sets[lv][1]}, key=windows.index)
        window_options_data = sorted({dict(k)["window"] for k in prof if match(k, wname, wfix) and "window" in dict(k)}, key=windows.index)
        if window_options != window_options_data:
            print(f"FAIL: the window variable offers {window_options_data} in the sample, the profile says {window_options}")
            return 1
    else:
        window_options = windows

    missing, checked, empty = [], 0, []
    for where, expr in queries:
        for name, matchers in selectors(expr):
            fams = families_of(name, matchers)
            if not fams or fams <= ALWAYS:
                continue
            fixed, wins = resolve(matchers, window_options)
            level = level_of(fixed)
            lit = [v for l, o, v in fixed if l == "window" and o == "="]
            if wins is None:
                wins = lit or list(windows)
            fixed = [m for m in fixed if m[0] != "window"]
            for fam in sorted(fams - ALWAYS):
                for lv in (["rep", "team"] if level == "both" else [level]):
                    if lv == "rep" and fam in TEAM_ONLY:
                        continue
                    need = [None] if fam in CURRENT else wins
                    for w in need:
                        checked += 1
                        ok_fam = fam in sets[lv][0]
                        ok_win = w is None or w in sets[lv][1]
                        lvm = [("rep", "=", "")] if lv == "team" else [("rep", "!=", "")]
                        wm = [] if w is None else [("window", "=", w)]
                        want = {k: v for k, v in full.items() if match(k, fam, fixed + lvm + wm)}
                        lost = [k for k in want if prof.get(k) != want[k]]
                        if a.print:
                            print(f"{lv:4} {fam} {w or '-'}: {len(want)} series  <- {where}")
                        if not want:
                            empty.append((where, fam, lv, w))
                        if not (ok_fam and ok_win) or lost:
                            why = "family not exported" if not ok_fam else "window not exported" if not ok_win else f"{len(lost)} of {len(want)} series missing"
                            missing.append(f"{where}: {lv}-level {fam}{'' if w is None else ' window=' + w}: {why}")
    print(f"{a.profile}: {checked} (selector, family, level, window) checks, {len(full)} series with the default "
          f"configuration, {len(prof)} with the profile; $window options: {', '.join(window_options)}")
    if empty:
        print(f"note: {len(empty)} checks select no series in the sample (checked against the profile's lists only), e.g. "
              + "; ".join(f"{lv} {fam} {w or ''}" for _, fam, lv, w in empty[:5]))
    if missing:
        print(f"FAIL: {len(set(missing))} missing:")
        for m in sorted(set(missing)):
            print("  " + m)
        return 1
    print("ok: the profile exports every series the dashboards and rules read")
    return 0


if __name__ == "__main__":
    sys.exit(main())
