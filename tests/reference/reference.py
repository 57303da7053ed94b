#!/usr/bin/env python3
"""Independent, deliberately naive reference implementation of the salespulse
KPI contract (docs/event-contract.md, docs/metrics.md).

    reference.py FILE [--now RFC3339] [--wall RFC3339] [--config TOML] [--verbose]

Reads NDJSON events, folds them in file order only to decide which events are
applied (validation, dedup, late) and to record the processing order; every
KPI is then recomputed from the list of applied events at the end. Prints the
`sales_*` series (name{labels} value) on stdout and a one-line summary
(`reference lines=.. applied=.. duplicate=.. late=.. invalid=.. invalid_<r>=..`)
on stderr; with --verbose, one line per rejected input line.

Standard library only. Written from the contract, not from the Rust code.
Readings of ambiguous points are marked READING below.
"""
import json
import math
import re
import sys
from collections import defaultdict
from datetime import date, datetime, timezone
from fractions import Fraction

US = 1_000_000                 # microseconds per second
MIN, HOUR, DAY = 60 * US, 3600 * US, 86400 * US

# ---------------------------------------------------------------- contract constants
TYPES = {
    "lead.created", "lead.qualified", "call.logged", "email.logged",
    "meeting.booked", "meeting.completed", "deal.created", "quote.sent",
    "deal.won", "deal.lost", "nps.recorded", "customer.churned",
    "spend.recorded", "quota.set",
}
REPORTING_CURRENCY = "USD"
MAX_BYTES = 64 * 1024
FUTURE_TOL = 5 * MIN
MAX_REPS, MAX_TEAMS = 100_000, 10_000
DEDUP = 7 * DAY
JOIN_TTL = 180 * DAY
DEAL_TTL = 365 * DAY
PERSISTENCE = 14 * DAY          # v1.1 horizons.persistence
MAX_PRODUCT_LINES = 20          # v1.1 limits.max_product_lines_per_team
REGIONS = {}                    # v1.1 [segments.regions]
# rolling windows: (label, length, bucket)
ROLLING = [("1h", HOUR, MIN), ("1d", DAY, HOUR), ("7d", 7 * DAY, HOUR), ("30d", 30 * DAY, DAY)]
CALENDAR = ["today", "wtd", "mtd", "qtd"]
Z = 1.96
TEAM_BENCHMARKS = []
BENCHMARKS = [
    ("reach_ratio", "min", 0.35), ("reach_ratio", "target", 0.40),
    ("pass_ratio", "min", 0.11), ("pipe_ratio", "min", 0.73),
    ("lead_response_within_1h_ratio", "target", 1.0),
    # v1.1
    ("lead_touches_mean", "target", 16.0), ("pipeline_coverage_ratio", "target", 3.0),
]

ID_RE = re.compile(r"[A-Za-z0-9._:@-]+\Z")
RFC3339_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})\Z")
DATE_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})\Z")
EPOCH_ORD = date(1970, 1, 1).toordinal()


class Invalid(Exception):
    def __init__(self, reason, detail=""):
        super().__init__(reason)
        self.reason, self.detail = reason, detail


def parse_rfc3339(s):
    """RFC 3339 with offset -> integer microseconds since the epoch, or None."""
    if not isinstance(s, str):
        return None
    m = RFC3339_RE.match(s)
    if not m:
        return None
    y, mo, d, h, mi, sec = (int(m.group(i)) for i in range(1, 7))
    frac, off = m.group(7), m.group(8)
    try:
        day = date(y, mo, d)
    except ValueError:
        return None
    if h > 23 or mi > 59 or sec > 60:
        return None
    if off in ("Z", "z"):
        off_s = 0
    else:
        oh, om = int(off[1:3]), int(off[4:6])
        if oh > 23 or om > 59:
            return None
        off_s = (oh * 3600 + om * 60) * (1 if off[0] == "+" else -1)
    micros = int((frac or "0")[:6].ljust(6, "0"))
    # a leap second :60 counts as the next minute's second 0 (sec=60 does that)
    days = day.toordinal() - EPOCH_ORD
    return ((days * 86400 + h * 3600 + mi * 60 + sec - off_s) * US) + micros


def fmt_time(us):
    return datetime.fromtimestamp(us // US, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------- validation
def _no_dup_keys(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("repeated key")
    return dict(pairs)


# Every field name of events.md (the envelope and every type's fields).
CONTRACT_FIELDS = frozenset(
    "event_id type occurred_at team_id rep_id lead_id source stage outcome direction duration_s "
    "meeting_id scheduled_for status rescheduled_by deal_id amount kind margin reason score "
    "customer_id mrr category period period_start currency".split())


def _bad_constant(c):
    raise ValueError("non-finite constant " + c)


def _parse_int(s):
    # an integer literal too long for Python's int parser (or beyond the double
    # range) becomes a float, inf if out of range, so that it is only rejected
    # where it is read (below), never as `json`
    return int(s) if len(s) <= 300 else float(s)


def is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def validate(raw):
    """bytes of one line -> normalized event dict, or raises Invalid."""
    if len(raw) > MAX_BYTES:
        raise Invalid("too_large")
    try:
        text = raw.decode("utf-8")
        # READING (docs/decisions.md, Input): a number beyond the range of a
        # double (1e400) is valid JSON. Python reads it as inf: in a field that
        # is not read for this type it changes nothing; in a read field the
        # checks below (finite amount, integral score) make it `bad_field`.
        obj = json.loads(text, object_pairs_hook=_no_dup_keys, parse_constant=_bad_constant,
                         parse_int=_parse_int)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise Invalid("json", str(exc))
    if not isinstance(obj, dict):
        raise Invalid("json", "not an object")
    # READING (docs/decisions.md, Input, "Numbers beyond the range of a
    # double"): the engine refuses such a number in any field name the
    # contract knows, even on a type that does not read that field, with
    # `bad_field` before any other check; in other fields it is ignored.
    if any(k in CONTRACT_FIELDS and isinstance(v, float) and math.isinf(v) for k, v in obj.items()):
        raise Invalid("bad_field", "a number beyond the range of a double")
    # READING: JSON null is the same as an absent field.
    g = {k: v for k, v in obj.items() if v is not None}

    # envelope: missing first, then bad
    for f in ("event_id", "type", "occurred_at", "team_id"):
        if f not in g:
            raise Invalid("missing_field", f)
    eid = g["event_id"]
    if not (isinstance(eid, str) and 1 <= len(eid) <= 128 and all(0x20 <= ord(c) <= 0x7E for c in eid)):
        raise Invalid("bad_field", "event_id")
    if not isinstance(g["type"], str):
        raise Invalid("bad_field", "type")
    e = parse_rfc3339(g["occurred_at"])
    if e is None:
        raise Invalid("bad_field", "occurred_at")

    def idv(f, maxlen):
        v = g[f]
        if not (isinstance(v, str) and 1 <= len(v) <= maxlen and ID_RE.match(v)):
            raise Invalid("bad_field", f)
        return v

    team = idv("team_id", 64)
    typ = g["type"]
    if typ not in TYPES:
        raise Invalid("unknown_type", typ)

    # type-specific: (required, optional) with checkers
    def enum(*vals):
        return lambda v: isinstance(v, str) and v in vals

    def amount(v):
        return is_num(v) and math.isfinite(v) and v >= 0

    def lid(v):
        return isinstance(v, str) and 1 <= len(v) <= 128 and bool(ID_RE.match(v))

    def rid(v):
        return isinstance(v, str) and 1 <= len(v) <= 64 and bool(ID_RE.match(v))

    def ts(v):
        return parse_rfc3339(v) is not None

    def score(v):
        return is_num(v) and math.isfinite(v) and float(v).is_integer() and 0 <= v <= 10

    def text256(v):
        return isinstance(v, str) and len(v) <= 256

    def period_start(v):
        return isinstance(v, str) and DATE_RE.match(v) is not None

    call_out = enum("no_answer", "voicemail", "connected", "meaningful")
    mail_out = enum("sent", "bounced", "replied", "meaningful")
    direction = enum("outbound", "inbound")
    spec = {
        "lead.created": ({"lead_id": lid}, {"rep_id": rid, "source": enum("inbound", "outbound", "referral", "partner", "other")}),
        "lead.qualified": ({"lead_id": lid, "stage": enum("mql", "sql")}, {"rep_id": rid}),
        "call.logged": ({"rep_id": rid, "outcome": call_out}, {"lead_id": lid, "direction": direction, "duration_s": amount}),
        "email.logged": ({"rep_id": rid, "outcome": mail_out}, {"lead_id": lid, "direction": direction}),
        "meeting.booked": ({"rep_id": rid, "meeting_id": lid}, {"lead_id": lid, "scheduled_for": ts}),
        "meeting.completed": ({"rep_id": rid, "meeting_id": lid, "status": enum("held", "no_show", "rescheduled", "canceled")},
                              {"rescheduled_by": enum("rep", "prospect"), "lead_id": lid}),
        # v1.1: product_line follows the team_id id rule (1..64 characters)
        "deal.created": ({"rep_id": rid, "deal_id": lid, "amount": amount}, {"lead_id": lid, "product_line": rid}),
        "quote.sent": ({"rep_id": rid}, {"deal_id": lid, "amount": amount, "lead_id": lid, "product_line": rid}),
        "deal.won": ({"rep_id": rid, "deal_id": lid, "amount": amount},
                     {"lead_id": lid, "kind": enum("new", "upsell", "cross_sell", "renewal"), "margin": amount, "product_line": rid}),
        "deal.lost": ({"rep_id": rid, "deal_id": lid}, {"reason": text256, "lead_id": lid, "product_line": rid}),
        "nps.recorded": ({"score": score}, {"rep_id": rid, "customer_id": lid, "lead_id": lid}),
        "customer.churned": ({"customer_id": lid, "reason": enum("voluntary", "involuntary")}, {"rep_id": rid, "mrr": amount, "lead_id": lid}),
        # READING: rep_id on spend.recorded is ignored (events.md: "rep_id is ignored")
        "spend.recorded": ({"amount": amount, "category": enum("marketing", "sales")}, {"lead_id": lid}),
        "quota.set": ({"period": enum("month", "quarter"), "period_start": period_start, "amount": amount}, {"rep_id": rid, "lead_id": lid}),
    }
    req, opt = spec[typ]
    for f in req:
        if f not in g:
            raise Invalid("missing_field", f)
    for f, chk in list(req.items()) + list(opt.items()):
        if f in g and not chk(g[f]):
            raise Invalid("bad_field", f)
    if typ == "quota.set":
        m = DATE_RE.match(g["period_start"])
        try:
            d = date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            raise Invalid("bad_field", "period_start")
        if d.day != 1 or (g["period"] == "quarter" and d.month not in (1, 4, 7, 10)):
            raise Invalid("bad_field", "period_start")
    if "currency" in g:
        c = g["currency"]
        if not isinstance(c, str):
            raise Invalid("bad_field", "currency")
        # READING: ISO codes compared ignoring ASCII case ("usd" is USD)
        if c.upper() != REPORTING_CURRENCY:
            raise Invalid("currency", c)

    ev = {"event_id": eid, "type": typ, "e": e, "team": team,
          "rep": None if typ == "spend.recorded" else g.get("rep_id"),
          "lead": g.get("lead_id")}
    for f in ("source", "stage", "outcome", "direction", "meeting_id", "status", "rescheduled_by",
              "deal_id", "amount", "kind", "margin", "score", "customer_id", "reason", "mrr",
              "category", "period", "period_start", "product_line"):
        if f in g and (f in req or f in opt):
            ev[f] = g[f]
    ev.setdefault("direction", "outbound")
    ev.setdefault("kind", "new")
    ev.setdefault("source", "other")
    for f in ("amount", "margin", "mrr"):
        if f in ev:
            ev[f] = float(ev[f])
    return ev


# ---------------------------------------------------------------- calendar
# Calendar windows and quota periods use the configured time zone (default
# UTC); TZ is a zoneinfo.ZoneInfo or None for UTC. A local midnight that does
# not exist (DST jump at midnight) is the first local instant that exists.
TZ = None


def _local_date(t):
    if TZ is None:
        return date.fromordinal(t // DAY + EPOCH_ORD)
    return datetime.fromtimestamp(t // US, tz=timezone.utc).astimezone(TZ).date()


def _ts_of_date(dd):
    """Start (microseconds since the epoch) of local day dd."""
    if TZ is None:
        return (dd.toordinal() - EPOCH_ORD) * DAY
    # fold=0 on a nonexistent wall time uses the offset before the jump, which
    # lands on the first instant after the gap; for an ambiguous one, the first.
    return int(datetime(dd.year, dd.month, dd.day, tzinfo=TZ).timestamp()) * US


def day_start(t):
    return _ts_of_date(_local_date(t))


def week_start(t):
    d = _local_date(t)
    return _ts_of_date(date.fromordinal(d.toordinal() - d.weekday()))


def month_start_date(t):
    d = _local_date(t)
    return date(d.year, d.month, 1)


def quarter_start_date(t):
    d = _local_date(t)
    return date(d.year, (d.month - 1) // 3 * 3 + 1, 1)


def period_bounds(period, t):
    """(start, end) instants of the month / quarter holding t, local zone."""
    d = month_start_date(t) if period == "month" else quarter_start_date(t)
    months = 1 if period == "month" else 3
    m = d.month - 1 + months
    nxt = date(d.year + m // 12, m % 12 + 1, 1)
    return _ts_of_date(d), _ts_of_date(nxt)


def calendar_start(name, t):
    return {"today": day_start(t), "wtd": week_start(t),
            "mtd": _ts_of_date(month_start_date(t)), "qtd": _ts_of_date(quarter_start_date(t))}[name]


def in_rolling(e, t, W, g):
    return t // g - W // g < e // g <= t // g


def in_prev_rolling(e, t, W, g):
    return t // g - 2 * (W // g) < e // g <= t // g - W // g


def is_late(e, clock):
    """events.md step 5: an event in no window still kept (current windows,
    previous window of each rolling window)."""
    if clock is None:
        return False
    for _, W, g in ROLLING:
        if clock // g - 2 * (W // g) < e // g:   # current or previous rolling window (or a later bucket)
            return False
    for c in CALENDAR:
        if e >= calendar_start(c, clock):
            return False
    return True


# ---------------------------------------------------------------- fold
def fold(lines, now=None, wall=None, verbose=False):
    clock = now
    wall = wall if wall is not None else (now if now is not None else
                                          int(datetime.now(timezone.utc).timestamp() * US))
    applied, last_applied_at = [], {}
    teams, reps = set(), set()
    stats = defaultdict(int)
    for n, raw in enumerate(lines, 1):
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if raw == b"":          # READING: an empty line is no event; whitespace-only is `json`
            continue
        stats["lines"] += 1
        try:
            ev = validate(raw)
            if ev["e"] - wall > FUTURE_TOL:
                raise Invalid("future")
            new_team = ev["team"] not in teams
            new_rep = ev["rep"] is not None and (ev["team"], ev["rep"]) not in reps
            if (new_team and len(teams) >= MAX_TEAMS) or (new_rep and len(reps) >= MAX_REPS):
                raise Invalid("cardinality")
        except Invalid as inv:
            stats["invalid"] += 1
            stats["invalid_" + inv.reason] += 1
            if verbose:
                print(f"reference: line {n}: invalid {inv.reason}: {inv.detail}", file=sys.stderr)
            continue
        # READING (decisions.md, plausible from "already applied within the
        # dedup horizon"): measured from the engine clock when the first copy
        # was applied; "within" includes the boundary (exactly 7 days).
        prev = last_applied_at.get(ev["event_id"])
        if prev is not None and clock - prev <= DEDUP:
            stats["duplicate"] += 1
            if verbose:
                print(f"reference: line {n}: duplicate", file=sys.stderr)
            continue
        if is_late(ev["e"], clock):
            stats["late"] += 1
            if verbose:
                print(f"reference: line {n}: late", file=sys.stderr)
            continue
        if now is None:
            clock = ev["e"] if clock is None else max(clock, ev["e"])
        last_applied_at[ev["event_id"]] = clock
        teams.add(ev["team"])
        if ev["rep"] is not None:
            reps.add((ev["team"], ev["rep"]))
        ev["seq"] = len(applied)
        ev["clock"] = clock
        applied.append(ev)
        stats["applied"] += 1
    return applied, clock, stats


# ---------------------------------------------------------------- KPIs
def windows_of(e, t):
    ws = [name for name, W, g in ROLLING if in_rolling(e, t, W, g)]
    # READING (decisions.md): an event of the current calendar period counts at
    # once, even if it is after t (only possible with --now / the wall clock,
    # up to the 5-minute `future` tolerance). metrics.md says "to t".
    ws += [c for c in CALENDAR if calendar_start(c, t) <= e and calendar_start(c, e) == calendar_start(c, t)]
    return ws


def wilson_upper(num, den):
    n = den
    p = min(1.0, num / den)
    z2 = Z * Z
    return (p + z2 / (2 * n) + Z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))) / (1 + z2 / n)


def nearest_rank(xs, q):
    xs = sorted(xs)
    n = len(xs)
    rank = max(1, -(-(q.numerator * n) // q.denominator))
    return xs[rank - 1]


def compute(applied, t):
    out = []   # (name, labels dict, value)

    def emit(name, labels, value):
        out.append((name, dict(labels), float(value)))

    # ---- joins and deal state, in processing order
    leads = {}          # (team, lead) -> (time, seq)
    answered = set()
    first_deal_created = {}   # (team, deal) -> [time of the first deal.created, first lead_id named]
    open_deals = {}     # (team, deal) -> dict(amount, rep, opened)
    closes = {}         # (team, deal) -> dict(at=close event time, counted=bool)
    quotas = {}         # (team, rep|None, period, period_start) -> amount
    lr_obs, cyc_obs = [], []  # (team, rep, time, seconds)
    created_new = set()  # seq of deal.created counted in deals_created / pipeline_added
    leads_new = set()    # seq of lead.created counted in leads_created
    # v1.1 (metrics.md, "Follow-up persistence", "Touches to SQL")
    lead_rec = {}        # (team, lead) -> the record of the lead defined by its first applied lead.created
    all_leads = []       # every such record: team, rep, L, touches, sql
    sql_obs = []         # dicts: team, rep, e, touches
    # v1.1 product lines: per team, names with a slot in order of first application
    pl_names = defaultdict(list)
    deal_pl = {}         # (team, deal) -> label the first deal.created naming one named
    pl_of_seq = {}       # seq of a deal event -> its product_line label

    def pl_label(team, name):
        # READING (decisions.md, v1.1): a line takes its slot with the first
        # applied event naming it, of any type; "none" and "other" are those labels.
        if name is None or name == "none":
            return "none"
        if name == "other":
            return "other"
        names = pl_names[team]
        if name in names:
            return name
        if len(names) < MAX_PRODUCT_LINES:
            names.append(name)
            return name
        return "other"
    # READING: join state ("kept for 180 days") is forgotten once the engine
    # clock is more than 180 days past the lead's / first deal.created's /
    # close's time; an open deal expires once the clock is more than 365 days
    # past the deal.created that opened it.
    def lead_known(k, clock):
        return k in leads and clock - leads[k][0] <= JOIN_TTL

    def deal_known(k, clock):
        return k in first_deal_created and clock - first_deal_created[k][0] <= JOIN_TTL

    def close_known(k, clock):
        return k in closes and clock - closes[k]["at"] <= JOIN_TTL

    for ev in applied:
        typ, team, e, clock = ev["type"], ev["team"], ev["e"], ev["clock"]
        if typ == "lead.created":
            k = (team, ev["lead"])
            # READING (docs/decisions.md, Joins, "A lead counts once"): the
            # first applied lead.created of a (team, lead) defines the lead and
            # is the one counted in sales_leads_created; a later one while the
            # lead is remembered (180 days from its time) is applied (it is in
            # sales_events_total) but is not a new lead. A forgotten lead's
            # next lead.created is a new lead.
            if not lead_known(k, clock):
                leads[k] = (e, ev["seq"])
                answered.discard(k)
                leads_new.add(ev["seq"])
                rec = {"team": team, "rep": ev["rep"], "L": e, "touches": 0, "sql": False, "acts": [], "sql_obs": None}
                lead_rec[k] = rec
                all_leads.append(rec)
        elif typ == "lead.qualified" and ev["stage"] == "sql":
            k = (team, ev["lead"])
            if lead_known(k, clock):
                rec = lead_rec[k]
                if e < rec["L"] + PERSISTENCE:
                    rec["sql"] = True
                if rec["sql_obs"] is None:
                    # READING (decisions.md, v1.1, "Touches to SQL under
                    # reordering"): the activities applied so far, less one
                    # when the latest of them occurred after the SQL.
                    n = len(rec["acts"]) - (1 if rec["acts"] and max(rec["acts"]) > e else 0)
                    rec["sql_obs"] = {"team": team, "rep": ev["rep"], "e": e, "touches": n}
                    sql_obs.append(rec["sql_obs"])
        elif typ in ("call.logged", "email.logged") and ev["direction"] == "outbound" and ev["lead"]:
            k = (team, ev["lead"])
            if lead_known(k, clock):
                rec = lead_rec[k]
                if e < rec["L"] + PERSISTENCE:
                    rec["touches"] += 1
                if rec["sql_obs"] is None:
                    rec["acts"].append(e)
                elif e <= rec["sql_obs"]["e"]:
                    rec["sql_obs"]["touches"] += 1
            if lead_known(k, clock) and k not in answered:
                answered.add(k)
                lr_obs.append((team, ev["rep"], e, max(0, e - leads[k][0]) / US))
        elif typ == "quote.sent":
            pl_label(team, ev.get("product_line"))
        elif typ == "deal.created":
            k = (team, ev["deal_id"])
            pl_of_seq[ev["seq"]] = pl_label(team, ev.get("product_line"))
            # the first deal.created of the deal that names a product line names the deal's
            if "product_line" in ev and k not in deal_pl:
                deal_pl[k] = pl_of_seq[ev["seq"]]
            if not deal_known(k, clock):
                first_deal_created[k] = [e, ev["lead"]]
            elif first_deal_created[k][1] is None:
                # READING: "the lead_id its deal.created named" (decisions.md)
                # is the first lead_id any applied deal.created of the deal
                # named, so that the order of creation and update does not
                # matter; a deal.created that otherwise changes nothing (an
                # older update of a counted closed deal) still names it.
                first_deal_created[k][1] = ev["lead"]
            d = open_deals.get(k)
            if d is not None and clock - d["opened"] > DEAL_TTL:
                d = open_deals.pop(k)
                d = None
            c = closes.get(k) if close_known(k, clock) else None
            if d is not None:
                # an update of the open deal: amount and owner
                d["amount"], d["rep"] = ev["amount"], ev["rep"]
            elif c is not None and e <= c["at"]:
                # READING (docs/decisions.md, Joins, "Won or lost before
                # created"): a won/lost is remembered with its time even for an
                # unknown deal; a deal.created not newer than that close is the
                # creation of an already closed deal: counted once per
                # lifecycle (deals_created, pipeline_added), never opened; an
                # older update of a counted closed deal changes nothing.
                if not c["counted"]:
                    c["counted"] = True
                    created_new.add(ev["seq"])
            else:
                # new, closed before it (reopened), or past its TTL: opens and counts
                closes.pop(k, None)
                open_deals[k] = {"amount": ev["amount"], "rep": ev["rep"], "opened": e}
                created_new.add(ev["seq"])
        elif typ in ("deal.won", "deal.lost"):
            k = (team, ev["deal_id"])
            # v1.1: the event's product_line, else the one the deal's deal.created named, else none
            if "product_line" in ev:
                pl_of_seq[ev["seq"]] = pl_label(team, ev["product_line"])
            else:
                pl_of_seq[ev["seq"]] = deal_pl.get(k) or "none"
            if typ == "deal.won":
                # READING (docs/decisions.md, Joins, "Sales cycle start"): the
                # deal's lead is the won event's lead_id or, when it carries
                # none, the first lead_id named by the deal's (still
                # remembered) deal.created events; the start is that lead's
                # lead.created time if the lead is known, else the time of the
                # first deal.created processed (also for a reopened deal), else
                # no observation.
                start = None
                fdc = first_deal_created[k] if deal_known(k, clock) else None
                lead = ev["lead"] or (fdc[1] if fdc else None)
                if lead and lead_known((team, lead), clock):
                    start = leads[(team, lead)][0]
                elif fdc is not None:
                    start = fdc[0]
                if start is not None:
                    cyc_obs.append((team, ev["rep"], e, max(0, e - start) / US))
            # READING: a won/lost closes the open deal whatever its time
            # (processing order); a deal past its TTL is not open, so its close
            # is that of an unknown deal and a not-newer deal.created still counts.
            d = open_deals.pop(k, None)
            if d is not None and clock - d["opened"] > DEAL_TTL:
                d = None
            prev = closes.get(k) if close_known(k, clock) else None
            if d is not None or prev is None:
                # counted: a deal.created of this lifecycle was already counted
                # (the one that opened the deal)
                closes[k] = {"at": e, "counted": d is not None}
            else:
                # READING: a further close of a closed deal keeps the latest
                # close time (max), whatever the order of the closes
                prev["at"] = max(prev["at"], e)
        elif typ == "quota.set":
            quotas[(team, ev["rep"], ev["period"], ev["period_start"])] = ev["amount"]

    # ---- windowed accumulation
    acc = defaultdict(lambda: defaultdict(float))
    active = defaultdict(set)
    obs = defaultdict(lambda: {"lr": [], "cyc": []})
    prev_rev = defaultdict(float)
    scopes_seen = set()

    def scopes(team, rep):
        return [(team, None)] + ([(team, rep)] if rep is not None else [])

    for ev in applied:
        team, rep, typ, e = ev["team"], ev["rep"], ev["type"], ev["e"]
        for sc in scopes(team, rep):
            scopes_seen.add(sc)
        for name, W, g in ROLLING:
            if typ == "deal.won" and in_prev_rolling(e, t, W, g):
                for sc in scopes(team, rep):
                    prev_rev[(sc, name)] += ev["amount"]
        ws = windows_of(e, t)
        if not ws:
            continue
        inc = defaultdict(float)
        if typ == "lead.created":
            # READING (docs/decisions.md, Joins): only the lead.created that
            # defined a new lead counts (see leads_new above)
            if ev["seq"] in leads_new:
                inc["leads_created"] += 1
        elif typ == "lead.qualified":
            inc["mqls" if ev["stage"] == "mql" else "sqls"] += 1
        elif typ in ("call.logged", "email.logged"):
            if ev["direction"] == "outbound":
                inc["outbound_activities"] += 1
                if typ == "call.logged":
                    inc["outbound_calls"] += 1
                    if ev["outcome"] in ("connected", "meaningful"):
                        inc["connects"] += 1
                if ev["outcome"] == "meaningful":
                    inc["meaningful_conversations"] += 1
            else:
                inc["inbound_activities"] += 1
        elif typ == "meeting.booked":
            inc["meetings_booked"] += 1
        elif typ == "meeting.completed":
            st = ev["status"]
            if st == "held":
                inc["meetings_held"] += 1
            elif st == "no_show":
                inc["meetings_no_show"] += 1
            elif st == "rescheduled" and ev.get("rescheduled_by") == "rep":
                inc["meetings_rescheduled_by_rep"] += 1
        elif typ == "deal.created":
            if ev["seq"] in created_new:
                inc["deals_created"] += 1
                inc["pipeline_added"] += ev["amount"]
        elif typ == "quote.sent":
            inc["quotes_sent"] += 1
        elif typ == "deal.won":
            inc["deals_won"] += 1
            inc["revenue"] += ev["amount"]
            if ev["kind"] == "new":
                inc["new_customers"] += 1
            if ev["kind"] in ("upsell", "cross_sell"):
                inc["upsell_deals"] += 1
            if "margin" in ev:
                inc["margin"] += ev["margin"]
                inc["_margin_base"] += ev["amount"]
                inc["_margin_n"] += 1
        elif typ == "deal.lost":
            inc["deals_lost"] += 1
        elif typ == "nps.recorded":
            inc["nps_responses"] += 1
            if ev["score"] >= 9:
                inc["nps_promoters"] += 1
            elif ev["score"] <= 6:
                inc["nps_detractors"] += 1
        elif typ == "customer.churned":
            inc[("churned_customers", ev["reason"])] += 1
            inc["churned_mrr"] += ev.get("mrr", 0.0)
        elif typ == "spend.recorded":
            inc[("spend", ev["category"])] += ev["amount"]
        for w in ws:
            for sc in scopes(team, rep):
                a = acc[(sc, w)]
                for k, v in inc.items():
                    a[k] += v
                a["_events"] += 1
            if rep is not None and typ != "quota.set":
                active[(team, w)].add(rep)

    # v1.1: product lines (team level)
    pl_acc = defaultdict(lambda: defaultdict(float))   # (team, label, window) -> counts
    for ev in applied:
        if ev["seq"] not in pl_of_seq:
            continue
        inc = {}
        if ev["type"] == "deal.created":
            if ev["seq"] in created_new:
                inc = {"deals_created": 1, "pipeline_added": ev["amount"]}
        elif ev["type"] == "deal.won":
            inc = {"deals_won": 1, "revenue": ev["amount"]}
        elif ev["type"] == "deal.lost":
            inc = {"deals_lost": 1}
        if not inc:
            continue
        for w in windows_of(ev["e"], t):
            a = pl_acc[(ev["team"], pl_of_seq[ev["seq"]], w)]
            a["_any"] += 1
            for k, v in inc.items():
                a[k] += v
    # v1.1: follow-up persistence, observed at L + H once the clock is past it
    for rec in all_leads:
        at = rec["L"] + PERSISTENCE
        if t < at:
            continue
        n, sq = rec["touches"], rec["sql"]
        for w in windows_of(at, t):
            for sc in scopes(rec["team"], rec["rep"]):
                a = acc[(sc, w)]
                a["followed_leads"] += 1
                a["_touches"] += n
                a["_single"] += 1 if (n == 1 and not sq) else 0
                a["_untouched"] += 1 if (n == 0 and not sq) else 0
            scopes_seen.add((rec["team"], None))
            if rec["rep"] is not None:
                scopes_seen.add((rec["team"], rec["rep"]))
    for o in sql_obs:
        for w in windows_of(o["e"], t):
            for sc in scopes(o["team"], o["rep"]):
                acc[(sc, w)]["sql_conversions"] += 1
                acc[(sc, w)]["_sql_touches"] += o["touches"]

    for team, rep, e, secs in lr_obs:
        for w in windows_of(e, t):
            for sc in scopes(team, rep):
                obs[(sc, w)]["lr"].append(secs)
    for team, rep, e, secs in cyc_obs:
        for w in windows_of(e, t):
            for sc in scopes(team, rep):
                obs[(sc, w)]["cyc"].append(secs)

    # quotas in force at t
    qperiod = {"month": month_start_date(t).isoformat(), "quarter": quarter_start_date(t).isoformat()}

    def quota(team, rep, period):
        ps = qperiod[period]
        if rep is not None:
            return quotas.get((team, rep, period, ps))
        own = quotas.get((team, None, period, ps))
        if own is not None:
            return own
        reps_q = [v for (tm, r, p, s), v in quotas.items() if tm == team and r is not None and p == period and s == ps]
        return sum(reps_q) if reps_q else None

    all_windows = [w for w, _, _ in ROLLING] + CALENDAR
    for sc in sorted(scopes_seen, key=lambda s: (s[0], s[1] or "")):
        team, rep = sc
        base = {"team": team} if rep is None else {"team": team, "rep": rep}
        for w in all_windows:
            a = acc.get((sc, w), {})
            L = dict(base, window=w)
            get = lambda k: a.get(k, 0.0)
            for k in ("leads_created", "mqls", "sqls", "outbound_activities", "inbound_activities",
                      "outbound_calls", "connects", "meaningful_conversations", "meetings_booked",
                      "meetings_held", "meetings_no_show", "meetings_rescheduled_by_rep", "deals_created",
                      "pipeline_added", "quotes_sent", "deals_won", "deals_lost", "revenue",
                      "new_customers", "upsell_deals", "margin", "nps_responses", "nps_promoters",
                      "nps_detractors", "churned_mrr"):
                if get(k) != 0:
                    emit("sales_" + k, L, get(k))
            for reason in ("voluntary", "involuntary"):
                if get(("churned_customers", reason)) != 0:
                    emit("sales_churned_customers", dict(L, reason=reason), get(("churned_customers", reason)))
            n_active = 0
            if rep is None:
                for cat in ("marketing", "sales"):
                    if get(("spend", cat)) != 0:
                        emit("sales_spend", dict(L, category=cat), get(("spend", cat)))
                n_active = len(active.get((team, w), ()))
                if n_active:
                    emit("sales_active_reps", L, n_active)

            def ratio(name, num, den):
                if den > 0:
                    emit(name, L, num / den)
            ratio("sales_reach_ratio", get("meaningful_conversations"), get("outbound_activities"))
            ratio("sales_connect_ratio", get("connects"), get("outbound_calls"))
            ratio("sales_pass_ratio", get("sqls"), get("meaningful_conversations"))
            ratio("sales_pipe_ratio", get("deals_created"), get("sqls"))
            ratio("sales_no_show_ratio", get("meetings_no_show"), get("meetings_held") + get("meetings_no_show"))
            ratio("sales_lead_to_mql_ratio", get("mqls"), get("leads_created"))
            ratio("sales_mql_to_sql_ratio", get("sqls"), get("mqls"))
            ratio("sales_win_ratio", get("deals_won"), get("deals_won") + get("deals_lost"))
            ratio("sales_close_ratio", get("deals_won"), get("quotes_sent"))
            ratio("sales_upsell_ratio", get("upsell_deals"), get("deals_won"))
            ratio("sales_margin_ratio", get("margin"), get("_margin_base"))
            ratio("sales_avg_deal_size", get("revenue"), get("deals_won"))
            ratio("sales_nps", 100 * (get("nps_promoters") - get("nps_detractors")), get("nps_responses"))
            # v1.1
            for k in ("followed_leads", "sql_conversions"):
                if get(k) != 0:
                    emit("sales_" + k, L, get(k))
            ratio("sales_lead_touches_mean", get("_touches"), get("followed_leads"))
            ratio("sales_leads_single_touch_ratio", get("_single"), get("followed_leads"))
            ratio("sales_leads_untouched_ratio", get("_untouched"), get("followed_leads"))
            ratio("sales_touches_to_sql_mean", get("_sql_touches"), get("sql_conversions"))
            ratio("sales_lead_to_customer_ratio", get("new_customers"), get("leads_created"))
            if get("outbound_activities") > 0:
                emit("sales_reach_upper95_ratio", L, wilson_upper(get("meaningful_conversations"), get("outbound_activities")))
            if get("sqls") > 0:
                emit("sales_pipe_upper95_ratio", L, wilson_upper(get("deals_created"), get("sqls")))
            if rep is None:
                mk, sa = get(("spend", "marketing")), get(("spend", "sales"))
                # READING (decisions.md): "holds no marketing spend" = marketing spend sum is 0
                if mk > 0:
                    ratio("sales_cost_per_lead", mk, get("leads_created"))
                if mk + sa > 0:
                    ratio("sales_cac", mk + sa, get("new_customers"))
                ratio("sales_revenue_per_rep", get("revenue"), n_active)
            if w in dict((n, 1) for n, _, _ in ROLLING):
                ratio("sales_growth_ratio", get("revenue") - prev_rev.get((sc, w), 0.0), prev_rev.get((sc, w), 0.0))
            if w in ("mtd", "qtd"):
                q = quota(team, rep, "month" if w == "mtd" else "quarter")
                if q is not None:
                    ratio("sales_quota_attainment_ratio", get("revenue"), q)
                    # v1.1: x (period length / time elapsed), after 24 hours of the period
                    start, end = period_bounds("month" if w == "mtd" else "quarter", t)
                    if q > 0 and t - start >= DAY:
                        emit("sales_projected_quota_attainment_ratio", L, get("revenue") / q * (end - start) / (t - start))
            o = obs.get((sc, w))
            if o:
                for key, fam in (("lr", "lead_response"), ("cyc", "cycle")):
                    xs = o[key]
                    if not xs:
                        continue
                    cnt = "sales_lead_responses" if key == "lr" else "sales_cycles"
                    emit(cnt, L, len(xs))
                    emit(f"sales_{fam}_mean_seconds", L, sum(xs) / len(xs))
                    emit(f"sales_{fam}_p50_seconds", L, nearest_rank(xs, Fraction(1, 2)))
                    emit(f"sales_{fam}_p90_seconds", L, nearest_rank(xs, Fraction(9, 10)))
                    if key == "lr":
                        emit("sales_lead_response_within_1h_ratio", L, sum(1 for x in xs if x <= 3600) / len(xs))
        # current state
        mine = [d for (tm, _), d in open_deals.items()
                if tm == team and (rep is None or d["rep"] == rep) and t - d["opened"] <= DEAL_TTL]
        if mine:
            emit("sales_open_deals", base, len(mine))
            emit("sales_pipeline_value", base, sum(d["amount"] for d in mine))
        for period in ("month", "quarter"):
            q = quota(team, rep, period)
            if q is not None:
                emit("sales_quota", dict(base, period=period), q)
                # v1.1: coverage = pipeline value / (quota - revenue of mtd / qtd)
                w = "mtd" if period == "month" else "qtd"
                if w in CALENDAR:
                    left = q - acc.get((sc, w), {}).get("revenue", 0.0)
                    if left > 0:
                        emit("sales_pipeline_coverage_ratio", dict(base, period=period), sum(d["amount"] for d in mine) / left)
        if rep is None and team in REGIONS:
            emit("sales_team_info", {"team": team, "region": REGIONS[team]}, 1)
    # v1.1 product lines
    for (team, label, w), a in pl_acc.items():
        L = {"team": team, "window": w, "product_line": label}
        for k in ("deals_created", "pipeline_added", "deals_won", "deals_lost", "revenue"):
            if a.get(k, 0) != 0:
                emit(f"sales_{k}_by_product", L, a[k])
        if a.get("deals_won", 0) + a.get("deals_lost", 0) > 0:
            emit("sales_win_ratio_by_product", L, a.get("deals_won", 0) / (a.get("deals_won", 0) + a.get("deals_lost", 0)))
    for kpi, bound, v in BENCHMARKS:
        emit("sales_benchmark", {"kpi": kpi, "bound": bound}, v)
    for team, kpi, bound, v in TEAM_BENCHMARKS:
        emit("sales_benchmark", {"kpi": kpi, "bound": bound, "team": team}, v)
    counts = defaultdict(int)
    for ev in applied:
        counts[(ev["team"], ev["rep"], ev["type"])] += 1
    for (team, rep, typ), c in counts.items():
        L = {"team": team, "type": typ}
        if rep is not None:
            L["rep"] = rep
        emit("sales_events_total", L, c)
    return out


def parse_duration(s):
    m = re.fullmatch(r"(\d+)([smhd])", s)
    if not m:
        raise SystemExit("reference: bad duration " + s)
    return int(m.group(1)) * {"s": US, "m": MIN, "h": HOUR, "d": DAY}[m.group(2)]


def load_config(path):
    """Honours windows.list, windows.time_zone, events.currency,
    events.max_message_bytes, events.future_tolerance, limits.*, horizons.*,
    benchmarks (and benchmarks.teams.*) of a salespulse TOML config."""
    global TZ, ROLLING, CALENDAR, REPORTING_CURRENCY, MAX_BYTES, FUTURE_TOL
    global MAX_REPS, MAX_TEAMS, DEDUP, JOIN_TTL, DEAL_TTL, BENCHMARKS, PERSISTENCE, MAX_PRODUCT_LINES, REGIONS
    import tomllib
    import zoneinfo
    cfg = tomllib.load(open(path, "rb"))
    w = cfg.get("windows", {})
    tz = w.get("time_zone", "UTC")
    TZ = None if tz == "UTC" else zoneinfo.ZoneInfo(tz)
    if "list" in w:
        ROLLING, CALENDAR = [], []
        for item in w["list"]:
            if item in ("today", "wtd", "mtd", "qtd"):
                CALENDAR.append(item)
                continue
            name, _, bucket = item.partition(":")
            W = parse_duration(name)
            g = parse_duration(bucket) if bucket else (MIN if W <= 2 * HOUR else HOUR if W <= 7 * DAY else DAY)
            ROLLING.append((name, W, g))
    ev = cfg.get("events", {})
    REPORTING_CURRENCY = ev.get("currency", REPORTING_CURRENCY).upper()
    MAX_BYTES = ev.get("max_message_bytes", MAX_BYTES)
    if "future_tolerance" in ev:
        FUTURE_TOL = parse_duration(ev["future_tolerance"])
    lim = cfg.get("limits", {})
    MAX_REPS, MAX_TEAMS = lim.get("max_reps", MAX_REPS), lim.get("max_teams", MAX_TEAMS)
    hz = cfg.get("horizons", {})
    DEDUP = parse_duration(hz.get("dedup", "7d"))
    JOIN_TTL = parse_duration(hz.get("joins", "180d"))
    DEAL_TTL = parse_duration(hz.get("deal_ttl", "365d"))
    PERSISTENCE = parse_duration(hz.get("persistence", "14d"))
    MAX_PRODUCT_LINES = lim.get("max_product_lines_per_team", MAX_PRODUCT_LINES)
    REGIONS = dict(cfg.get("segments", {}).get("regions", {}))
    b = cfg.get("benchmarks")
    if b is not None:
        def split(d):
            out = []
            for k, v in d.items():
                if k == "teams":
                    continue
                kpi, _, bound = k.rpartition("_")
                out.append((kpi, bound, float(v)))
            return out
        # READING: keys of [benchmarks] override the defaults one by one
        merged = {(k, bd): v for k, bd, v in BENCHMARKS}
        merged.update({(k, bd): v for k, bd, v in split(b)})
        BENCHMARKS = [(k, bd, v) for (k, bd), v in merged.items()]
        for team, d in b.get("teams", {}).items():
            TEAM_BENCHMARKS.extend((team, *x) for x in split(d))


def render(series):
    lines = []
    for name, labels, v in series:
        lab = ",".join(f'{k}="{labels[k]}"' for k in sorted(labels))
        lines.append(f"{name}{{{lab}}} {v!r}")
    return sorted(lines)


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file")
    ap.add_argument("--now", help="evaluate at this RFC 3339 instant (also the wall clock)")
    ap.add_argument("--wall", help="wall clock for the `future` check (default: machine clock)")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--config", help="salespulse TOML config (windows, events, limits, horizons, benchmarks)")
    args = ap.parse_args(argv)
    if args.config:
        load_config(args.config)
    now = parse_rfc3339(args.now) if args.now else None
    wall = parse_rfc3339(args.wall) if args.wall else None
    if args.now and now is None or args.wall and wall is None:
        ap.error("--now/--wall must be RFC 3339 with an offset")
    data = sys.stdin.buffer.read() if args.file == "-" else open(args.file, "rb").read()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    applied, clock, stats = fold(lines, now=now, wall=wall, verbose=args.verbose)
    series = compute(applied, clock) if clock is not None else compute([], 0)
    print("\n".join(render(series)))
    summary = " ".join(f"{k}={stats.get(k, 0)}" for k in ("lines", "applied", "duplicate", "late", "invalid"))
    summary += "".join(f" {k}={v}" for k, v in sorted(stats.items()) if k.startswith("invalid_"))
    summary += f" clock={fmt_time(clock) if clock is not None else '-'}"
    print("reference " + summary, file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
