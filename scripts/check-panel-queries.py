#!/usr/bin/env python3
"""Runs every Prometheus panel query of Grafana dashboards against a Prometheus.

    scripts/check-panel-queries.py --prometheus http://127.0.0.1:9090 \\
        [--var team=emea-smb --var rep=rep-emea-smb-01 --var window=7d] \\
        deploy/grafana/dashboards/*.json

For each dashboard it resolves the template variables the way Grafana would,
then sends every panel target's `expr` (panels nested in rows included) to
Prometheus' `/api/v1/query` at the current time (or --time) and prints one
line per query: dashboard, panel title, refId and the number of series.
It exits 1 if any query fails or returns no series, listing them, and 2 on a
usage error. --allow-empty 'TITLE:REFID' (fnmatch patterns, repeatable)
downgrades an expected empty result (e.g. data your source never produces) to
a warning; errors still fail.

Variables
  --var NAME=VALUE   sets a variable (repeat the flag for several values of a
                     multi-value variable; VALUE `$__all` selects "All").
  Unset `query` variables take the first value their own query returns from
  Prometheus (label_values(), label_names(), metrics(), query_result()), after
  the variable's regex and sort, resolved in dependency order, so `rep` is
  taken from the reps of the chosen `team`. With --use-all, variables that
  offer "All" take it instead (the allValue, else every value).
  Unset `custom`, `constant`, `interval` and `textbox` variables keep the
  dashboard's current value (else their first option).
  Values are formatted like Grafana's Prometheus data source: regex-escaped
  and joined as (a|b) for multi-value / include-All variables, raw otherwise;
  ${var:raw|regex|pipe|csv|json|doublequote|singlequote|glob|text|
  percentencode|queryparam} formats are honoured; $var, ${var} and [[var]]
  are all recognised.
  Built-ins: $__rate_interval (default 1m), $__interval (15s), $__range
  (the dashboard's time range, default 6h) with their _ms/_s forms, $__from,
  $__to, $__dashboard, $__org; override them with e.g. --var __range=30m.

Only the standard library is used (urllib, json).
"""

import argparse
import fnmatch
import json
import math
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

DEFAULT_BUILTINS = {"__interval": "15s", "__rate_interval": "1m"}
ALL = "$__all"

VAR_RE = re.compile(
    r"\$\{(?P<b>[A-Za-z0-9_.]+)(?::(?P<bf>[^}]+))?\}"  # ${var} / ${var:format}
    r"|\[\[(?P<s>[A-Za-z0-9_.]+)(?::(?P<sf>[^\]]+))?\]\]"  # [[var]] / [[var:format]]
    r"|\$(?P<d>[A-Za-z0-9_]+)"  # $var
)

DUR_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
DUR_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


class CheckError(Exception):
    pass


def parse_duration(s):
    """'1h30m' -> 5400.0 seconds; raises ValueError."""
    s = s.strip()
    pos, total = 0, 0.0
    for m in DUR_RE.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * DUR_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s) or not s:
        raise ValueError(f"not a duration: {s!r}")
    return total


def format_duration(seconds):
    """Seconds -> a Prometheus duration ('3600' -> '1h', '90' -> '90s')."""
    ms = int(round(seconds * 1000))
    if ms % 1000:
        return f"{ms}ms"
    s = ms // 1000
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s and s % size == 0:
            return f"{s // size}{unit}"
    return f"{s}s"


# ------------------------------------------------------------------ Prometheus


class Prometheus:
    def __init__(self, base, timeout):
        self.base = base.rstrip("/")
        self.timeout = timeout

    def _call(self, path, params, post=False):
        data = urllib.parse.urlencode(params, doseq=True)
        url = self.base + path
        if post:
            req = urllib.request.Request(url, data=data.encode(), method="POST",
                                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        else:
            req = urllib.request.Request(url + ("?" + data if data else ""))
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                body = json.load(r)
        except urllib.error.HTTPError as e:
            try:
                body = json.load(e)
            except (ValueError, OSError):
                raise CheckError(f"HTTP {e.code} from {path}") from None
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise CheckError(f"cannot query {url}: {getattr(e, 'reason', e)}") from None
        if body.get("status") != "success":
            raise CheckError(f"{body.get('errorType', 'error')}: {body.get('error', body)}")
        return body.get("data")

    def query(self, expr, at):
        return self._call("/api/v1/query", {"query": expr, "time": f"{at:.3f}"}, post=True)

    def label_values(self, label, match, start, end):
        params = {"start": f"{start:.3f}", "end": f"{end:.3f}"}
        if match:
            params["match[]"] = match
        return self._call(f"/api/v1/label/{urllib.parse.quote(label, safe='')}/values", params) or []

    def label_names(self, match, start, end):
        params = {"start": f"{start:.3f}", "end": f"{end:.3f}"}
        if match:
            params["match[]"] = match
        return self._call("/api/v1/labels", params) or []


def count_series(data):
    """(number of series, whether every sample is NaN)."""
    kind, result = data.get("resultType"), data.get("result")
    if kind in ("vector", "matrix"):
        values = []
        for s in result:
            if "value" in s:
                values.append(s["value"][1])
            values.extend(v[1] for v in s.get("values", []))
        all_nan = bool(values) and all(v in ("NaN", "+Inf", "-Inf") for v in values)
        return len(result), all_nan
    if kind in ("scalar", "string"):
        return 1, result[1] == "NaN"
    return 0, False


# ------------------------------------------------------------------ variables


def regex_escape(value):
    """Grafana's prometheusSpecialRegexEscape (two backslashes: inside a PromQL string)."""
    value = value.replace("\\", "\\\\\\\\")
    return re.sub(r"([$^*{}\[\]'+?.()|])", r"\\\\\1", value)


def regular_escape(value):
    """Grafana's prometheusRegularEscape."""
    return value.replace("\\", "\\\\").replace("'", "\\\\'")


class Var:
    def __init__(self, raw):
        self.raw = raw
        self.name = raw.get("name", "")
        self.type = raw.get("type", "query")
        self.multi = bool(raw.get("multi"))
        self.include_all = bool(raw.get("includeAll"))
        self.all_value = raw.get("allValue") or None
        self.values = None  # list of str once resolved
        self.options = []  # every value the variable offers
        self.is_all = False
        self.source = ""

    @property
    def query(self):
        q = self.raw.get("query", "")
        if isinstance(q, dict):
            if isinstance(q.get("query"), str) and q["query"]:
                return q["query"]
            # Grafana 10 structured label_values query
            if q.get("qryType") == 1 and q.get("label"):
                return f"label_values({q.get('metric', '')}, {q['label']})"
            return ""
        return q if isinstance(q, str) else ""

    def current(self):
        cur = self.raw.get("current") or {}
        v = cur.get("value")
        if isinstance(v, list):
            return [str(x) for x in v]
        if v is None or v == "":
            return []
        return [str(v)]

    def formatted(self, fmt=None):
        """The substitution text for this variable."""
        if self.is_all and self.all_value is not None and fmt in (None, "regex", "pipe", "raw"):
            return self.all_value
        vals = self.values or [""]
        if fmt in (None, ""):
            if not self.multi and not self.include_all:
                return regular_escape(vals[0])
            esc = [regex_escape(v) for v in vals]
            return esc[0] if len(esc) == 1 else "(" + "|".join(esc) + ")"
        if fmt == "raw":
            return ",".join(vals)
        if fmt == "regex":
            esc = [re.escape(v) for v in vals]
            return esc[0] if len(esc) == 1 else "(" + "|".join(esc) + ")"
        if fmt == "pipe":
            return "|".join(vals)
        if fmt in ("csv", "lucene"):
            return ",".join(vals)
        if fmt == "json":
            return json.dumps(vals if len(vals) > 1 else vals[0])
        if fmt == "doublequote":
            return ",".join(f'"{v}"' for v in vals)
        if fmt in ("singlequote", "sqlstring"):
            return ",".join("'" + v.replace("'", "''") + "'" for v in vals)
        if fmt == "glob":
            return vals[0] if len(vals) == 1 else "{" + ",".join(vals) + "}"
        if fmt == "text":
            return " + ".join(vals)
        if fmt == "percentencode":
            return urllib.parse.quote(",".join(vals), safe="")
        if fmt == "queryparam":
            return "&".join(f"var-{self.name}={urllib.parse.quote(v, safe='')}" for v in vals)
        raise CheckError(f"unsupported format ${{{self.name}:{fmt}}}")


def referenced(text):
    names = set()
    for m in VAR_RE.finditer(text or ""):
        names.add(m.group("b") or m.group("s") or m.group("d"))
    return names


def interpolate(text, variables, builtins, unknown):
    def repl(m):
        name = m.group("b") or m.group("s") or m.group("d")
        fmt = m.group("bf") or m.group("sf")
        if name in variables:
            return variables[name].formatted(fmt)
        base = name.split(":")[0]
        if base in builtins:
            return builtins[base]
        unknown.add(name)
        return m.group(0)

    return VAR_RE.sub(repl, text)


def apply_regex_and_sort(var, values):
    pattern = var.raw.get("regex") or ""
    if pattern:
        flags = 0
        m = re.fullmatch(r"/(.*)/([a-z]*)", pattern, re.S)
        if m:
            pattern = m.group(1)
            flags = re.I if "i" in m.group(2) else 0
        rx = re.compile(pattern, flags)
        kept = []
        for v in values:
            mm = rx.search(v)
            if not mm:
                continue
            if "value" in rx.groupindex and mm.group("value") is not None:
                kept.append(mm.group("value"))
            elif rx.groups:
                kept.append(mm.group(1))
            else:
                kept.append(v)
        values = kept
    seen, out = set(), []
    for v in values:
        if v not in seen:
            seen.add(v)
            out.append(v)
    sort = var.raw.get("sort") or 0

    def num(v):
        mm = re.search(r"\d+", v)  # Grafana: the first number in the text
        return int(mm.group(0)) if mm else math.inf

    def natural(v):
        return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", v)]

    if sort in (1, 2):
        out.sort(reverse=sort == 2)
    elif sort in (3, 4):
        out.sort(key=num, reverse=sort == 4)
    elif sort in (5, 6):
        out.sort(key=str.lower, reverse=sort == 6)
    elif sort in (7, 8):
        out.sort(key=natural, reverse=sort == 8)
    return out


LABEL_VALUES_RE = re.compile(r"^\s*label_values\(\s*(?:(?P<m>.*?)\s*,\s*)?(?P<l>[A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$", re.S)
LABEL_NAMES_RE = re.compile(r"^\s*label_names\(\s*(?P<m>.*?)\s*\)\s*$", re.S)
METRICS_RE = re.compile(r"^\s*metrics\(\s*(?P<m>.*?)\s*\)\s*$", re.S)
QUERY_RESULT_RE = re.compile(r"^\s*query_result\(\s*(?P<m>.*)\s*\)\s*$", re.S)


def run_variable_query(prom, query, start, end):
    """Returns the values of a Grafana Prometheus variable query."""
    m = LABEL_VALUES_RE.match(query)
    if m:
        match = m.group("m") or ""
        return prom.label_values(m.group("l"), match, start, end)
    m = LABEL_NAMES_RE.match(query)
    if m:
        return prom.label_names(m.group("m") or "", start, end)
    m = METRICS_RE.match(query)
    if m:
        rx = re.compile(m.group("m") or ".*")
        return [n for n in prom.label_values("__name__", "", start, end) if rx.search(n)]
    m = QUERY_RESULT_RE.match(query)
    if m:
        data = prom.query(m.group("m"), end)
        out = []
        for s in data.get("result", []) if data.get("resultType") in ("vector", "matrix") else []:
            labels = dict(s.get("metric", {}))
            name = labels.pop("__name__", "")
            body = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
            sample = s.get("value") or (s.get("values") or [[0, ""]])[-1]
            out.append(f"{name}{{{body}}} {sample[1]} {int(float(sample[0]) * 1000)}")
        return out
    # Anything else Grafana runs as a series query (the metric's series).
    data = prom.query(query, end)
    return [json.dumps(s.get("metric", {}), sort_keys=True) for s in data.get("result", [])]


def resolve_variables(dash, prom, cli, use_all, builtins, at, range_s, problems, log):
    variables = {}
    for raw in (dash.get("templating") or {}).get("list", []):
        if raw.get("name"):
            variables[raw["name"]] = Var(raw)
    pending = [v for v in variables.values()]
    while pending:
        progress = False
        for var in list(pending):
            deps = {d for d in referenced(var.query) if d in variables and d != var.name}
            if any(variables[d].values is None for d in deps):
                continue
            pending.remove(var)
            progress = True
            resolve_one(var, variables, prom, cli, use_all, builtins, at, range_s, problems)
            shown = var.all_value if var.is_all and var.all_value else ",".join(var.values or [])
            log(f"  variable {var.name} = {shown!r}  ({var.source})")
        if not progress:
            for var in pending:
                problems.append(f"variable {var.name}: circular or unresolvable dependency")
                var.values = [""]
            break
    return variables


def resolve_one(var, variables, prom, cli, use_all, builtins, at, range_s, problems):
    name = var.name
    if var.type == "datasource":
        var.values = var.current() or ["prometheus"]
        var.source = "data source (not used in queries)"
        return
    if var.type == "adhoc":
        var.values = [""]
        var.source = "ad hoc filters ignored"
        return
    if var.type in ("custom", "interval"):
        opts = [str(o.get("value")) for o in var.raw.get("options", []) if o.get("value") is not None]
        if not opts:
            for part in re.split(r"(?<!\\),", var.raw.get("query", "") if isinstance(var.raw.get("query"), str) else ""):
                part = part.strip()
                if " : " in part:
                    part = part.split(" : ", 1)[1]
                if part:
                    opts.append(part)
        var.options = [o for o in opts if o != ALL]
    elif var.type == "query":
        unknown = set()
        q = interpolate(var.query, variables, builtins, unknown)
        if not q.strip():
            problems.append(f"variable {name}: empty query")
            var.values = [""]
            var.source = "empty query"
            return
        try:
            var.options = apply_regex_and_sort(var, [str(v) for v in run_variable_query(prom, q, at - range_s, at)])
        except CheckError as e:
            problems.append(f"variable {name}: query {q!r} failed: {e}")
            var.values = [""]
            var.source = f"query failed: {e}"
            return
        var.source = f"{len(var.options)} value(s) from {q}"
    if name in cli:
        vals = cli[name]
        if vals == [ALL] or vals == ["All"]:
            var.is_all = True
            var.values = var.options or [""]
        else:
            var.values = vals
        var.source = "from --var" + (f"; the query offers {len(var.options)} value(s)" if var.type == "query" else "")
        return
    if var.type in ("constant", "textbox"):
        q = var.raw.get("query", "")
        var.values = var.current() or [q if isinstance(q, str) else ""]
        var.source = var.type
        return
    if use_all and var.include_all:
        var.is_all = True
        var.values = var.options or [""]
        var.source += "; All"
        if not var.options and not var.all_value:
            problems.append(f"variable {name}: no values")
        return
    if var.type in ("custom", "interval"):
        cur = [c for c in var.current() if c != ALL]
        var.values = cur or var.options[:1] or [""]
        var.source = f"{var.type}: dashboard's current value" if cur else f"{var.type}: first option"
        if not cur and not var.options:
            problems.append(f"variable {name}: no options")
        return
    if var.type == "query":
        if not var.options:
            problems.append(f"variable {name}: its query {var.query!r} returned no values")
            var.values = [""]
            return
        var.values = var.options[:1]
        var.source = "first of " + var.source
        return
    var.values = var.current() or [""]
    var.source = f"unknown variable type {var.type!r}: current value"


# ------------------------------------------------------------------ dashboards


def load_dashboard(path):
    with open(path, encoding="utf-8") as f:
        d = json.load(f)
    if isinstance(d.get("dashboard"), dict):  # API export {"dashboard": {...}, "meta": ...}
        d = d["dashboard"]
    if isinstance(d.get("spec"), dict) and "panels" not in d:  # Kubernetes-shaped
        d = d["spec"]
    return d


def iter_panels(panels, parents=()):
    for p in panels or []:
        title = p.get("title") or f"panel {p.get('id', '?')}"
        yield p, parents + (title,)
        if p.get("panels"):
            yield from iter_panels(p["panels"], parents + (title,))


def all_panels(dash):
    for r in dash.get("rows") or []:  # pre-schema-16 rows
        yield from iter_panels(r.get("panels"), ((r.get("title") or "row"),))
    yield from iter_panels(dash.get("panels"))


def is_prometheus_target(panel, target, variables):
    ds = target.get("datasource") or panel.get("datasource")
    if isinstance(ds, dict):
        t, uid = ds.get("type"), ds.get("uid", "")
    else:
        t, uid = None, ds or ""
    if uid in ("-- Grafana --", "-- Dashboard --", "-- Mixed --", "__expr__", "grafana") or t in ("__expr__", "datasource", "grafana"):
        return False
    if t and t != "prometheus":
        return False
    return True


def builtins_for(dash, cli, at):
    b = dict(DEFAULT_BUILTINS)
    frm = ((dash.get("time") or {}).get("from") or "now-6h").strip()
    m = re.fullmatch(r"now-(\S+?)(?:/\w)?", frm)
    range_s = 6 * 3600.0
    if m:
        try:
            range_s = parse_duration(m.group(1))
        except ValueError:
            pass
    b["__range"] = format_duration(range_s)
    for k in list(cli):
        if k.startswith("__"):
            b[k] = cli[k][0]
    range_s = parse_duration(b["__range"])
    for base in ("__interval", "__rate_interval", "__range"):
        secs = parse_duration(b[base])
        b.setdefault(base + "_ms", str(int(secs * 1000)))
        b.setdefault(base + "_s", str(int(secs)))
    b.setdefault("__from", str(int((at - range_s) * 1000)))
    b.setdefault("__to", str(int(at * 1000)))
    b.setdefault("__dashboard", dash.get("title", ""))
    b.setdefault("__org", "1")
    b.setdefault("__auto", b["__interval"])
    return b, range_s


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 2)[2])
    ap.add_argument("--prometheus", required=True, help="Prometheus base URL, e.g. http://127.0.0.1:9090")
    ap.add_argument("--var", action="append", default=[], metavar="NAME=VALUE", help="set a template variable (repeatable)")
    ap.add_argument("--use-all", action="store_true", help="unset variables that offer All take All")
    ap.add_argument("--time", help="evaluation time (Unix seconds or RFC 3339); default now")
    ap.add_argument("--timeout", type=float, default=30.0, help="HTTP timeout per request, seconds (default 30)")
    ap.add_argument("--allow-empty", action="append", default=[], metavar="PANEL:REFID",
                    help="panel title (or 'dashboard | panel') and refId, fnmatch patterns, whose empty result is only "
                         "a warning (repeatable), e.g. 'Rep leaderboard:C'")
    ap.add_argument("-v", "--verbose", action="store_true", help="print the interpolated expression of each query")
    ap.add_argument("dashboards", nargs="+", metavar="DASHBOARD.json")
    args = ap.parse_args(argv)

    cli = {}
    for kv in args.var:
        if "=" not in kv:
            ap.error(f"--var {kv!r}: expected NAME=VALUE")
        k, v = kv.split("=", 1)
        k = k.strip().lstrip("$")
        cli.setdefault(k, []).append(v)
    for k in cli:
        if k.startswith("__"):
            try:
                parse_duration(cli[k][0]) if k in ("__interval", "__rate_interval", "__range") else None
            except ValueError as e:
                ap.error(f"--var {k}: {e}")
    if args.time:
        try:
            at = float(args.time)
        except ValueError:
            from datetime import datetime
            at = datetime.fromisoformat(args.time.replace("Z", "+00:00")).timestamp()
    else:
        at = time.time()

    prom = Prometheus(args.prometheus, args.timeout)
    try:
        prom._call("/api/v1/status/buildinfo", {})
    except CheckError as e:
        print(f"error: Prometheus at {args.prometheus} is not usable: {e}", file=sys.stderr)
        return 2

    allowed = []
    for a in args.allow_empty:
        title, sep, ref = a.rpartition(":")
        if not sep or not title:
            ap.error(f"--allow-empty {a!r}: expected PANEL:REFID")
        allowed.append((title, ref))

    def empty_allowed(dname, ptitle, ref):
        return any(fnmatch.fnmatchcase(ref, r) and (fnmatch.fnmatchcase(ptitle, t) or fnmatch.fnmatchcase(f"{dname} | {ptitle}", t))
                   for t, r in allowed)

    failures, problems, warnings = [], [], []
    total = with_data = nan_only = skipped = 0
    for path in args.dashboards:
        try:
            dash = load_dashboard(path)
        except (OSError, ValueError) as e:
            failures.append(f"{path}: cannot read dashboard: {e}")
            continue
        dname = dash.get("title") or path
        print(f"{dname}  [{path}]")
        builtins, range_s = builtins_for(dash, cli, at)
        dash_problems = []
        variables = resolve_variables(dash, prom, cli, args.use_all, builtins, at, range_s, dash_problems,
                                      lambda s: print(s))
        for p in dash_problems:
            problems.append(f"{dname}: {p}")
            print(f"  PROBLEM {p}")
        for panel, titles in all_panels(dash):
            if panel.get("type") == "row":
                continue
            ptitle = " / ".join(titles)
            if panel.get("libraryPanel") and not panel.get("targets"):
                print(f"  SKIP  {dname} | {ptitle} | library panel (not resolved)")
                skipped += 1
                continue
            for t in panel.get("targets") or []:
                ref = t.get("refId", "?")
                expr = t.get("expr")
                if t.get("hide") or not expr or not is_prometheus_target(panel, t, variables):
                    skipped += 1
                    why = "hidden" if t.get("hide") else ("no expr" if not expr else "not a Prometheus target")
                    print(f"  SKIP  {dname} | {ptitle} | {ref} | {why}")
                    continue
                total += 1
                unknown = set()
                q = interpolate(expr, variables, builtins, unknown)
                where = f"{dname} | {ptitle} | {ref}"
                try:
                    n, all_nan = count_series(prom.query(q, at))
                except CheckError as e:
                    print(f"  FAIL  {where} | error: {e}")
                    failures.append(f"{where}: error: {e}\n      {q}")
                    continue
                if unknown:
                    note = f" (unknown variables left as is: {', '.join(sorted(unknown))})"
                else:
                    note = ""
                if n == 0 and empty_allowed(dname, ptitle, ref):
                    print(f"  WARN  {where} | 0 series (no data, allowed by --allow-empty){note}")
                    warnings.append(f"{where}: no data (allowed)")
                elif n == 0:
                    print(f"  FAIL  {where} | 0 series (no data){note}")
                    failures.append(f"{where}: no data{note}\n      {q}")
                else:
                    with_data += 1
                    extra = " (every value NaN/Inf)" if all_nan else ""
                    nan_only += 1 if all_nan else 0
                    print(f"  OK    {where} | {n} series{extra}{note}")
                if args.verbose:
                    print("        " + q.replace("\n", "\n        "))
        print()

    failed = total - with_data - len(warnings)
    print(f"{total} queries run in {len(args.dashboards)} dashboard(s): {with_data} with data, {failed} failed"
          + (f", {len(warnings)} empty but allowed" if warnings else "")
          + (f", {skipped} skipped" if skipped else "")
          + (f", {nan_only} whose values are all NaN/Inf" if nan_only else ""))
    if problems:
        print(f"{len(problems)} variable problem(s):")
        for p in problems:
            print(f"  - {p}")
    if failures:
        print(f"{len(failures)} failing quer{'y' if len(failures) == 1 else 'ies'}:")
        for f in failures:
            print(f"  - {f}")
    return 1 if failures or problems else 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
