#!/usr/bin/env python3
"""Writes the hand-made edge cases to tests/reference/cases/ (NAME.ndjson and,
where needed, NAME.args with extra replay arguments). Re-run after editing."""
import json
import os

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases")
os.makedirs(OUT, exist_ok=True)
CASES = {}
ARGS = {}
_n = [0]


def ev(typ, at, team="t1", rep="r1", eid=None, **kw):
    _n[0] += 1
    d = {"event_id": eid or f"x-{_n[0]}", "type": typ, "occurred_at": at, "team_id": team}
    if rep is not None:
        d["rep_id"] = rep
    d.update(kw)
    return json.dumps(d)


CONFIGS = {}


def case(name, lines, args=None, config=None):
    CASES[name] = lines
    args = list(args or [])
    if config:
        CONFIGS[name] = config
        args += ["--config", name + ".toml"]
    if args:
        ARGS[name] = args


# 1. events exactly on bucket boundaries; the clock exactly on a boundary
case("bucket_boundary_clock_on_edge", [
    ev("call.logged", "2026-11-10T11:00:00Z", outcome="meaningful"),       # 1h: bucket t-60 -> out
    ev("call.logged", "2026-11-10T11:00:59.999Z", outcome="meaningful"),   # same bucket -> out
    ev("call.logged", "2026-11-10T11:01:00Z", outcome="connected"),        # in 1h
    ev("call.logged", "2026-11-09T12:00:00Z", outcome="no_answer"),        # 1d: bucket t-24 -> out
    ev("call.logged", "2026-11-09T13:00:00Z", outcome="voicemail"),        # in 1d
    ev("call.logged", "2026-11-03T12:59:59Z", outcome="voicemail"),        # 7d: out
    ev("call.logged", "2026-11-03T13:00:00Z", outcome="voicemail"),        # 7d: in
    ev("call.logged", "2026-10-11T23:59:59.999Z", outcome="voicemail"),    # 30d: out
    ev("call.logged", "2026-10-12T00:00:00Z", outcome="voicemail"),        # 30d: in
    ev("deal.won", "2026-10-12T00:00:00Z", deal_id="D1", amount=100),      # 30d in
    ev("deal.won", "2026-09-12T00:00:00Z", deal_id="D2", amount=50),       # prev 30d: first day
    ev("deal.won", "2026-09-11T23:59:59Z", deal_id="D3", amount=70),       # before prev 30d
    ev("deal.won", "2026-11-09T12:30:00Z", deal_id="D4", amount=10),       # prev 1d
    ev("deal.won", "2026-11-10T11:30:00Z", deal_id="D5", amount=30),       # 1h, 1d
    ev("deal.won", "2026-11-10T10:00:00Z", deal_id="D6", amount=20),       # prev 1h (bucket t-120 ... t-61)
    ev("deal.won", "2026-11-10T09:59:59Z", deal_id="D7", amount=20),       # before prev 1h
    ev("call.logged", "2026-11-10T12:00:00Z", outcome="meaningful"),       # the clock
])
case("bucket_boundary_clock_mid", [
    ev("email.logged", "2026-11-10T11:34:59.999999Z", outcome="sent"),
    ev("email.logged", "2026-11-10T11:35:00Z", outcome="replied"),
    ev("email.logged", "2026-11-09T12:59:59.5Z", outcome="sent"),
    ev("email.logged", "2026-11-09T13:00:00Z", outcome="sent"),
    ev("email.logged", "2026-11-09T00:00:00Z", outcome="sent"),            # today? no (today = 11-10)
    ev("email.logged", "2026-11-10T00:00:00Z", outcome="sent"),            # today: first instant
    ev("email.logged", "2026-11-09T23:59:59.999999Z", outcome="sent"),     # wtd (Mon 11-09) but not today
    ev("email.logged", "2026-11-08T23:59:59.999999Z", outcome="sent"),     # not wtd
    ev("email.logged", "2026-11-10T12:34:56.789Z", outcome="meaningful"),  # the clock
])

# 2. the late horizon. clock 2026-09-20T10:00Z: 59 days before the UTC day = 2026-07-23,
#    quarter start 2026-07-01 -> horizon 2026-07-01T00:00Z
case("late_horizon_quarter", [
    ev("lead.created", "2026-09-20T10:00:00Z", lead_id="L0"),
    ev("lead.created", "2026-07-01T00:00:00Z", lead_id="L1"),              # exactly at horizon: applied
    ev("lead.created", "2026-06-30T23:59:59.999999Z", lead_id="L2"),       # late
    ev("lead.created", "2026-07-01T05:29:59.999999+05:30", lead_id="L3", eid="late-then-ok"),  # late
    ev("lead.created", "2026-07-01T00:00:00Z", lead_id="L3", eid="late-then-ok"),  # same id, not a duplicate: applied
    ev("deal.won", "2026-07-01T00:00:00Z", deal_id="D1", amount=5, lead_id="L1"),  # cycle 0 s
])
#    clock 2026-10-05T10:00Z: 59 days before 2026-10-05 = 2026-08-07; quarter start 10-01
case("late_horizon_rolling", [
    ev("lead.created", "2026-10-05T10:00:00Z", lead_id="L0"),
    ev("lead.created", "2026-08-07T00:00:00Z", lead_id="L1"),              # applied (prev 30d)
    ev("lead.created", "2026-08-06T23:59:59Z", lead_id="L2"),              # late
    ev("deal.won", "2026-08-07T00:00:00Z", deal_id="D1", amount=1000),     # prev 30d revenue -> growth
    ev("deal.won", "2026-09-10T00:00:00Z", deal_id="D2", amount=3000),     # current 30d
    ev("call.logged", "2026-08-06T23:59:59+05:30", outcome="meaningful"),  # = 08-06T18:29:59Z late
    ev("call.logged", "2026-08-07T05:30:00+05:30", outcome="meaningful"),  # = 08-07T00:00Z applied
])
#    wtd starting in the previous quarter: clock Thu 2026-04-02; the week began Mon 03-30
case("wtd_crosses_quarter", [
    ev("deal.won", "2026-03-30T00:00:00Z", deal_id="D1", amount=100),
    ev("deal.won", "2026-03-31T23:59:59Z", deal_id="D2", amount=200),
    ev("deal.won", "2026-04-01T00:00:00Z", deal_id="D3", amount=400),
    ev("quota.set", "2026-03-01T00:00:00Z", period="quarter", period_start="2026-04-01", amount=10000, rep=None),
    ev("quota.set", "2026-03-01T00:00:00Z", period="month", period_start="2026-03-01", amount=1000, rep=None),
    ev("call.logged", "2026-04-02T09:00:00Z", outcome="meaningful"),
])

# 3. duplicates 6 and 8 days apart (engine clock), and exactly 7 days
def filler(at, i):
    return ev("call.logged", at, rep="filler", eid=f"fill-{i}", outcome="no_answer")


case("dedup_6_and_8_days", [
    ev("deal.won", "2026-11-01T10:00:00Z", eid="W-1", deal_id="D1", amount=100),
    filler("2026-11-07T10:00:00Z", 1),
    ev("deal.won", "2026-11-01T10:00:00Z", eid="W-1", deal_id="D1", amount=100),   # 6 days: duplicate
    filler("2026-11-09T10:00:00Z", 2),
    ev("deal.won", "2026-11-01T10:00:00Z", eid="W-1", deal_id="D1", amount=100),   # 8 days: applied again
    ev("deal.won", "2026-11-01T10:00:00Z", eid="W-1", deal_id="D1", amount=100),   # dup of the re-application
])
case("dedup_exactly_7_days", [
    ev("lead.created", "2026-11-01T10:00:00Z", eid="E-1", lead_id="L1"),
    filler("2026-11-08T10:00:00Z", 3),
    ev("lead.created", "2026-11-01T10:00:00Z", eid="E-1", lead_id="L1"),
])
#   re-delivery whose first copy was applied when the clock was much later than its occurred_at
case("dedup_old_event_applied_recently", [
    filler("2026-11-10T00:00:00Z", 4),
    ev("lead.created", "2026-11-01T10:00:00Z", eid="E-2", lead_id="L1"),   # applied at clock 11-10
    filler("2026-11-12T00:00:00Z", 5),
    ev("lead.created", "2026-11-01T10:00:00Z", eid="E-2", lead_id="L1"),   # 11 days after occurred, 2 after applied
])
#   same event_id, different teams
case("dedup_across_teams", [
    ev("lead.created", "2026-11-01T10:00:00Z", eid="same", team="t1", lead_id="L1"),
    ev("lead.created", "2026-11-01T10:00:00Z", eid="same", team="t2", lead_id="L1"),
])

# 4. lead response
case("lead_response_order", [
    ev("call.logged", "2026-11-02T09:00:00Z", lead_id="L1", outcome="no_answer"),     # before lead applied: ignored
    ev("lead.created", "2026-11-02T09:10:00Z", lead_id="L1"),
    ev("email.logged", "2026-11-02T09:05:00Z", lead_id="L1", outcome="sent", direction="inbound"),  # inbound: no
    ev("email.logged", "2026-11-02T09:05:00Z", lead_id="L1", outcome="sent"),          # before lead time -> 0 s
    ev("call.logged", "2026-11-02T10:00:00Z", lead_id="L1", outcome="connected"),      # later: no
    ev("lead.created", "2026-11-02T11:00:00Z", lead_id="L2", rep="r2"),
    ev("call.logged", "2026-11-02T12:00:00Z", lead_id="L2", rep="r3", outcome="voicemail"),  # exactly 3600 s, rep r3
    ev("lead.created", "2026-11-02T11:00:00Z", lead_id="L3"),
    ev("call.logged", "2026-11-02T12:00:00.001Z", lead_id="L3", outcome="voicemail"),  # 3600.001 s
    ev("lead.created", "2026-11-02T13:00:00Z", lead_id="L1"),                          # second lead.created: nothing
    ev("call.logged", "2026-11-02T13:30:00Z", lead_id="L1", outcome="voicemail"),
    ev("lead.created", "2026-11-02T13:00:00Z", team="t2", lead_id="L1"),               # same lead id, other team
    ev("call.logged", "2026-11-02T13:20:00Z", team="t2", lead_id="L1", outcome="voicemail"),
])
#   10 observations for quantiles: 60,120,...,600 s plus outliers
_lines = []
for i, secs in enumerate([60, 7200, 120, 180, 240, 3600, 300, 360, 420, 86400, 480, 5]):
    _lines.append(ev("lead.created", f"2026-11-03T08:00:00Z", lead_id=f"Q{i}", rep="r1"))
for i, secs in enumerate([60, 7200, 120, 180, 240, 3600, 300, 360, 420, 86400, 480, 5]):
    h, rem = divmod(secs, 3600)
    m, s = divmod(rem, 60)
    _lines.append(ev("call.logged", f"2026-11-{3 + h // 24:02d}T{8 + h % 24:02d}:{m:02d}:{s:02d}Z",
                     lead_id=f"Q{i}", rep=f"r{1 + i % 2}", outcome="no_answer"))
case("lead_response_quantiles", _lines)

# 5. deals: update of an open deal, reopen after won, lost, wrong team, sales cycle starts
case("deal_lifecycle", [
    ev("lead.created", "2026-11-01T00:00:00Z", lead_id="L1"),
    ev("deal.created", "2026-11-02T00:00:00Z", rep="a", deal_id="D1", lead_id="L1", amount=1000),
    ev("deal.created", "2026-11-03T00:00:00Z", rep="b", deal_id="D1", amount=5000),   # update: owner b, 5000
    ev("deal.created", "2026-11-03T00:00:00Z", rep="a", deal_id="D2", amount=200),
    ev("deal.won", "2026-11-05T00:00:00Z", rep="b", deal_id="D1", amount=4800),       # cycle: no lead_id -> deal.created's L1 (11-01)
    ev("deal.created", "2026-11-06T00:00:00Z", rep="a", deal_id="D1", amount=700),    # reopened: counts again
    ev("deal.won", "2026-11-08T00:00:00Z", rep="a", deal_id="D1", amount=700, lead_id="L1", kind="upsell"),  # cycle from lead (11-01)
    ev("deal.won", "2026-11-09T00:00:00Z", rep="a", deal_id="D9", amount=50, lead_id="L-unknown"),  # no observation
    ev("deal.created", "2026-11-09T00:00:00Z", team="t2", rep="a", deal_id="D2", amount=999),
    ev("deal.lost", "2026-11-09T01:00:00Z", team="t2", rep="a", deal_id="D2"),       # closes t2's D2 only
    ev("deal.created", "2026-11-09T02:00:00Z", rep="c", deal_id="D3", amount=0),      # amount 0
    ev("deal.won", "2026-11-10T00:00:00Z", rep="a", deal_id="D3", lead_id="L-unknown", amount=10, margin=0),  # unknown lead -> deal start
    ev("deal.created", "2026-11-10T01:00:00Z", rep="a", deal_id="D4", amount=300),
    ev("deal.won", "2026-11-10T00:30:00Z", rep="a", deal_id="D4", amount=300),        # won before created (event time): cycle 0
    ev("lead.qualified", "2026-11-10T02:00:00Z", lead_id="L1", stage="sql"),
    ev("lead.qualified", "2026-11-10T02:00:00Z", lead_id="L2", stage="sql"),
])
# won/lost before created (decisions.md): the older deal.created counts once, never opens
case("deal_won_before_created_in_file", [
    ev("deal.won", "2026-11-10T00:00:00Z", deal_id="D1", amount=300),
    ev("deal.created", "2026-11-09T00:00:00Z", deal_id="D1", amount=300),
    ev("deal.lost", "2026-11-10T01:00:00Z", deal_id="D2"),
    ev("deal.created", "2026-11-09T00:00:00Z", deal_id="D2", amount=50),
])

# 6. quotas
case("quotas", [
    # team A: own quota + rep quotas -> own wins
    ev("quota.set", "2026-10-30T00:00:00Z", team="A", rep=None, period="month", period_start="2026-11-01", amount=9000),
    ev("quota.set", "2026-10-30T00:00:00Z", team="A", rep="r1", period="month", period_start="2026-11-01", amount=4000),
    ev("quota.set", "2026-10-30T00:00:00Z", team="A", rep="r2", period="month", period_start="2026-11-01", amount=3000),
    # team B: no own quota -> sum of reps; r3's last one processed wins (occurred earlier)
    ev("quota.set", "2026-10-30T00:00:00Z", team="B", rep="r3", period="month", period_start="2026-11-01", amount=5000),
    ev("quota.set", "2026-10-29T00:00:00Z", team="B", rep="r3", period="month", period_start="2026-11-01", amount=6000),
    ev("quota.set", "2026-10-30T00:00:00Z", team="B", rep="r4", period="month", period_start="2026-11-01", amount=2000),
    ev("quota.set", "2026-10-30T00:00:00Z", team="B", rep="r4", period="month", period_start="2026-10-01", amount=99999),  # not in force
    ev("quota.set", "2026-10-30T00:00:00Z", team="B", rep="r4", period="quarter", period_start="2026-10-01", amount=24000),
    # team C: rep quota 0
    ev("quota.set", "2026-10-30T00:00:00Z", team="C", rep="r5", period="month", period_start="2026-11-01", amount=0),
    ev("deal.won", "2026-11-03T00:00:00Z", team="A", rep="r1", deal_id="D1", amount=1000),
    ev("deal.won", "2026-11-03T00:00:00Z", team="A", rep="r9", deal_id="D2", amount=500),
    ev("deal.won", "2026-11-04T00:00:00Z", team="B", rep="r3", deal_id="D3", amount=1200),
    ev("deal.won", "2026-10-20T00:00:00Z", team="B", rep="r4", deal_id="D4", amount=600),   # qtd, not mtd
    ev("deal.won", "2026-11-05T00:00:00Z", team="C", rep="r5", deal_id="D5", amount=10),
    ev("call.logged", "2026-11-20T00:00:00Z", team="A", rep="r2", outcome="no_answer"),
])

# 7. spend
case("spend_zero_and_rep", [
    ev("spend.recorded", "2026-11-10T00:00:00Z", rep="r1", amount=0, category="marketing"),
    ev("spend.recorded", "2026-11-10T00:00:00Z", rep="!! not an id", amount=0, category="sales"),
    ev("lead.created", "2026-11-10T01:00:00Z", lead_id="L1"),
    ev("deal.won", "2026-11-10T02:00:00Z", rep="r2", deal_id="D1", amount=100),
    ev("spend.recorded", "2026-11-10T00:00:00Z", team="t2", rep=None, amount=0, category="sales"),
    ev("spend.recorded", "2026-11-10T00:00:00Z", team="t2", rep=None, amount=250.5, category="marketing"),
    ev("lead.created", "2026-11-10T01:00:00Z", team="t2", rep=None, lead_id="L1"),
    ev("deal.won", "2026-11-10T02:00:00Z", team="t2", rep="r2", deal_id="D1", amount=100, kind="renewal"),
])

# 8. currency, offsets, fractions
case("currency_and_times", [
    ev("deal.won", "2026-11-10T05:29:59.999+05:30", deal_id="D1", amount=10, currency="usd"),   # 11-09T23:59:59.999Z
    ev("deal.won", "2026-11-10T05:30:00+05:30", deal_id="D2", amount=20, currency="Usd"),       # 11-10T00:00Z
    ev("deal.won", "2026-11-10T05:30:00+05:30", deal_id="D3", amount=40, currency="EUR"),
    ev("deal.won", "2026-11-10T05:30:00+05:30", deal_id="D4", amount=80, currency="eur"),
    ev("deal.won", "2026-11-10T05:30:00+05:30", deal_id="D5", amount=160, currency=""),
    ev("deal.won", "2026-11-10T05:30:00+05:30", deal_id="D6", amount=320, currency=None),
    ev("deal.won", "2026-11-10T05:30:00+05:30", deal_id="D7", amount=640, currency=5),
    ev("call.logged", "2026-11-10t12:00:00.1234567z", outcome="meaningful"),
    ev("call.logged", "2026-11-10T11:59:60Z", outcome="meaningful"),
    ev("call.logged", "2026-11-10T12:00:00.5-00:00", outcome="connected"),
    ev("call.logged", "2026-11-10 12:00:00Z", outcome="connected"),
    ev("call.logged", "2026-11-10T12:00:00", outcome="connected"),
    ev("call.logged", "2026-11-10T12:00:00+0530", outcome="connected"),
    ev("call.logged", "2026-11-10T12:00:00+24:00", outcome="connected"),
    ev("call.logged", "2026-02-29T12:00:00Z", outcome="connected"),
    ev("call.logged", "2026-11-10T12:00Z", outcome="connected"),
    ev("call.logged", "2026-11-10T12:00:00.Z", outcome="connected"),
    ev("call.logged", "2026-11-10T13:00:00.000001+01:00", outcome="no_answer"),                # clock
])

# 9. validation
_long = "x" * 128
case("validation", [
    ev("nps.recorded", "2026-11-10T00:00:00Z", score=9.0),
    ev("nps.recorded", "2026-11-10T00:00:00Z", score=7.5),
    ev("nps.recorded", "2026-11-10T00:00:00Z", score=11),
    ev("nps.recorded", "2026-11-10T00:00:00Z", score=-1),
    ev("nps.recorded", "2026-11-10T00:00:00Z", score="9"),
    ev("nps.recorded", "2026-11-10T00:00:00Z", score=True),
    ev("nps.recorded", "2026-11-10T00:00:00Z", score=6, rep=None),
    ev("nps.recorded", "2026-11-10T00:00:00Z", score=8, customer_id=None),
    ev("nps.recorded", "2026-11-10T00:00:00Z", score=1e1),
    ev("deal.won", "2026-11-10T00:00:00Z", deal_id="D1", amount=-1),
    ev("deal.won", "2026-11-10T00:00:00Z", deal_id="D1", amount="100"),
    ev("deal.won", "2026-11-10T00:00:00Z", deal_id="D1", amount=None),
    ev("deal.won", "2026-11-10T00:00:00Z", deal_id="D1", amount=1e5, margin=-0.0),
    ev("deal.won", "2026-11-10T00:00:00Z", deal_id="D1", amount=1, kind="churn"),
    ev("deal.won", "2026-11-10T00:00:00Z", deal_id="D1", amount=1, kind=None),
    ev("deal.lost", "2026-11-10T00:00:00Z", deal_id="D1", reason="r" * 256),
    ev("deal.lost", "2026-11-10T00:00:00Z", deal_id="D1", reason="r" * 257),
    ev("deal.lost", "2026-11-10T00:00:00Z", deal_id="D1", reason=""),
    ev("quota.set", "2026-11-10T00:00:00Z", period="month", period_start="2026-11-02", amount=1),
    ev("quota.set", "2026-11-10T00:00:00Z", period="quarter", period_start="2026-11-01", amount=1),
    ev("quota.set", "2026-11-10T00:00:00Z", period="quarter", period_start="2026-10-01", amount=1),
    ev("quota.set", "2026-11-10T00:00:00Z", period="month", period_start="2026-11-01T00:00:00Z", amount=1),
    ev("quota.set", "2026-11-10T00:00:00Z", period="week", period_start="2026-11-01", amount=1),
    ev("quota.set", "2026-11-10T00:00:00Z", period="month", period_start="2026-13-01", amount=1),
    ev("lead.created", "2026-11-10T00:00:00Z", lead_id=_long),
    ev("lead.created", "2026-11-10T00:00:00Z", lead_id=_long + "y"),
    ev("lead.created", "2026-11-10T00:00:00Z", lead_id="has space"),
    ev("lead.created", "2026-11-10T00:00:00Z", lead_id=""),
    ev("lead.created", "2026-11-10T00:00:00Z", lead_id="L1", source="web"),
    ev("lead.created", "2026-11-10T00:00:00Z", lead_id="L1", rep="r" * 65),
    ev("lead.created", "2026-11-10T00:00:00Z", lead_id="L1", rep="r" * 64),
    ev("lead.created", "2026-11-10T00:00:00Z", lead_id="L1", team="t" * 65),
    ev("lead.created", "2026-11-10T00:00:00Z", lead_id="L1", team="t" * 64),
    ev("lead.created", "2026-11-10T00:00:00Z", lead_id="L1", team="ü"),
    ev("lead.created", "2026-11-10T00:00:00Z", lead_id="L1", eid="e" * 128),
    ev("lead.created", "2026-11-10T00:00:00Z", lead_id="L1", eid="e" * 129),
    ev("lead.created", "2026-11-10T00:00:00Z", lead_id="L1", eid="é"),
    ev("lead.created", "2026-11-10T00:00:00Z", lead_id="L1", eid="tab\there"),
    ev("lead.created", "2026-11-10T00:00:00Z", lead_id="L1", eid=""),
    ev("lead.created", "2026-11-10T00:00:00Z", lead_id="L1", eid=" "),
    ev("lead.created", "2026-11-10T00:00:00Z", lead_id="L1", extra={"a": [1, 2]}),
    ev("lead.created", "2026-11-10T00:00:00Z", lead_id="L1", stage="bogus"),            # field of another type
    ev("lead.qualified", "2026-11-10T00:00:00Z", lead_id="L1", stage="SQL"),
    ev("lead.qualified", "2026-11-10T00:00:00Z", lead_id="L1"),
    ev("call.logged", "2026-11-10T00:00:00Z", outcome="replied"),
    ev("email.logged", "2026-11-10T00:00:00Z", outcome="connected"),
    ev("call.logged", "2026-11-10T00:00:00Z", outcome="connected", direction="sideways"),
    ev("call.logged", "2026-11-10T00:00:00Z", outcome="connected", duration_s=-5),
    ev("call.logged", "2026-11-10T00:00:00Z", outcome="connected", duration_s="5"),
    ev("call.logged", "2026-11-10T00:00:00Z", outcome="connected", rep=None),
    ev("meeting.booked", "2026-11-10T00:00:00Z", meeting_id="M1", scheduled_for="tomorrow"),
    ev("meeting.booked", "2026-11-10T00:00:00Z", meeting_id="M1", scheduled_for="2026-11-11T10:00:00+01:00"),
    ev("meeting.completed", "2026-11-10T00:00:00Z", meeting_id="M1", status="rescheduled", rescheduled_by="rep"),
    ev("meeting.completed", "2026-11-10T00:00:00Z", meeting_id="M1", status="rescheduled", rescheduled_by="prospect"),
    ev("meeting.completed", "2026-11-10T00:00:00Z", meeting_id="M1", status="rescheduled", rescheduled_by="boss"),
    ev("meeting.completed", "2026-11-10T00:00:00Z", meeting_id="M1", status="no_show"),
    ev("meeting.completed", "2026-11-10T00:00:00Z", meeting_id="M1", status="canceled"),
    ev("meeting.completed", "2026-11-10T00:00:00Z", meeting_id="M1"),
    ev("customer.churned", "2026-11-10T00:00:00Z", customer_id="C1", reason="involuntary"),
    ev("customer.churned", "2026-11-10T00:00:00Z", customer_id="C1", reason="voluntary", mrr=1e400 if False else 10.5, rep=None),
    ev("customer.churned", "2026-11-10T00:00:00Z", customer_id="C1", reason="other"),
    ev("quote.sent", "2026-11-10T00:00:00Z"),
    ev("quote.sent", "2026-11-10T00:00:00Z", amount=-3),
    ev("spend.recorded", "2026-11-10T00:00:00Z", amount=10, category="rent"),
    ev("lead.created", "2026-11-10T00:00:00Z", lead_id="L1", type=None),
    ev("lead.created", "2026-11-10T00:00:00Z", lead_id="L1", type=5),
    ev("lead.converted", "2026-11-10T00:00:00Z", lead_id="L1"),
    ev("lead.created", "2026-11-10T00:00:00Z", lead_id="L1", team_id=None),
    ev("lead.created", "2026-11-10T00:00:00Z", lead_id="L1", occurred_at=None),
    '{"event_id":"raw-2","type":"deal.won","occurred_at":"2026-11-10T00:00:00Z","team_id":"t1","rep_id":"r1","deal_id":"D1","amount":1e400}',
    '{"event_id":"raw-3","type":"deal.won","occurred_at":"2026-11-10T00:00:00Z","team_id":"t1","rep_id":"r1","deal_id":"D1","amount":NaN}',
    '{"event_id":"raw-4","type":"lead.created","occurred_at":"2026-11-10T00:00:00Z","team_id":"t1","lead_id":"L1","lead_id":"L2"}',
    '["not","an","object"]',
    '"just a string"',
    'null',
    '',
    '   ',
    '{"event_id":"raw-5","type":"lead.created","occurred_at":"2026-11-10T00:00:00Z","team_id":"t1","lead_id":"L1"}\r',
    '{"event_id":"raw-6","type":"lead.created","occurred_at":"2026-11-10T00:00:00Z","team_id":"t1","lead_id":"L1","pad":"' + "p" * 65400 + '"}',
    '{"event_id":"raw-7","type":"lead.created","occurred_at":"2026-11-10T00:00:00Z","team_id":"t1","lead_id":"L1","pad":"' + "p" * 65600 + '"}',
    ev("lead.created", "2026-11-10T00:00:00Z", lead_id="L1", eid="utf", note="héllo ✓"),
    ev("lead.created", "2026-11-23T00:00:00Z", lead_id="L1"),
])
# a number outside the double range in an unknown (ignored) field: the JSON is
# valid and the number changes nothing (decisions.md, Input)
_H = '{"event_id":"%s","type":"%s","occurred_at":"2026-11-10T00:00:00Z","team_id":"t1"%s}'
case("json_huge_number_in_unknown_field", [
    _H % ("raw-1", "lead.created", ',"lead_id":"L1","x":1e400'),
    '{"event_id":"raw-1b","type":"lead.created","occurred_at":"2026-11-10T00:00:00Z","team_id":"t1","lead_id":"L2","crm":{"big":123456789012345678901234567890e300}}',
    '{"event_id":"raw-1c","type":"deal.won","occurred_at":"2026-11-10T00:00:00Z","team_id":"t1","rep_id":"r1","deal_id":"D1","amount":100000000000000000000000}',
    _H % ("raw-1d", "lead.created", ',"lead_id":"L3","x":[1e400,-1e400,{"y":1e999}]'),
    _H % ("raw-1e", "lead.created", ',"lead_id":"L4","x":1' + "0" * 5000),      # 5001-digit integer
    _H % ("raw-1f", "deal.created", ',"rep_id":"r1","deal_id":"D2","amount":1e-400'),  # underflows to 0: fine
])
# ... in a field the event's type reads: bad_field
case("json_huge_number_in_read_field", [
    _H % ("raw-2a", "deal.created", ',"rep_id":"r1","deal_id":"D1","amount":1e400'),
    _H % ("raw-2b", "deal.created", ',"rep_id":"r1","deal_id":"D2","amount":1' + "0" * 400),
    _H % ("raw-2c", "deal.won", ',"rep_id":"r1","deal_id":"D3","amount":5,"margin":1e400'),
    _H % ("raw-2d", "nps.recorded", ',"score":1e400'),
    _H % ("raw-2e", "customer.churned", ',"customer_id":"c","reason":"voluntary","mrr":1e400'),
    _H % ("raw-2f", "call.logged", ',"rep_id":"r1","outcome":"connected","duration_s":1e400'),
    _H % ("raw-2g", "quote.sent", ',"rep_id":"r1","amount":1e400'),
    _H % ("raw-2h", "spend.recorded", ',"category":"sales","amount":1e400'),
    _H % ("raw-2i", "quota.set", ',"period":"month","period_start":"2026-11-01","amount":1e400'),
    _H % ("raw-2j", "lead.created", ',"lead_id":"L1"'),
])
# ... in a contract field that this type does not read (the same fields with a
# string or negative value are ignored by both): must change nothing.
# KNOWN ENGINE DIFFERENCE: the engine makes these `bad_field`.
case("json_huge_number_in_field_of_other_type", [
    _H % ("raw-3a", "lead.created", ',"lead_id":"L1","amount":1e400'),
    _H % ("raw-3b", "lead.created", ',"lead_id":"L2","amount":"abc"'),           # control: applied
    _H % ("raw-3c", "deal.lost", ',"rep_id":"r1","deal_id":"D1","amount":1e400'),
    _H % ("raw-3d", "email.logged", ',"rep_id":"r1","outcome":"sent","duration_s":1e400'),
    _H % ("raw-3e", "spend.recorded", ',"category":"sales","amount":1,"rep_id":1e400'),
])

# 10. --now: future events and the fixed clock
case("now_and_future", [
    ev("call.logged", "2026-11-10T11:00:00Z", outcome="meaningful"),
    ev("call.logged", "2026-11-10T12:04:59Z", outcome="meaningful"),   # within 5 min after now: applied, future bucket
    ev("call.logged", "2026-11-10T12:05:00Z", outcome="meaningful"),   # exactly 5 min: applied
    ev("call.logged", "2026-11-10T12:05:00.001Z", outcome="meaningful"),  # more than 5 min: future
    ev("call.logged", "2026-11-10T12:00:30Z", outcome="connected"),    # same minute bucket as now
    ev("call.logged", "2026-08-01T00:00:00Z", outcome="connected"),    # late at now
], args=["--now", "2026-11-10T12:00:00Z"])

# 11. active reps, events_total, reps moving teams, nps, wilson, growth
case("reps_and_ratios", [
    ev("quota.set", "2026-11-10T00:00:00Z", rep="q-only", period="month", period_start="2026-11-01", amount=100),
    ev("nps.recorded", "2026-11-10T00:00:00Z", rep="n1", score=7),
    ev("nps.recorded", "2026-11-10T00:00:00Z", rep="n1", score=8),
    ev("nps.recorded", "2026-11-10T00:00:00Z", rep="n1", score=6),
    ev("nps.recorded", "2026-11-10T00:00:00Z", rep=None, score=0),
    ev("lead.qualified", "2026-11-10T00:00:00Z", rep="p", lead_id="L1", stage="sql"),
    ev("lead.qualified", "2026-11-10T00:00:00Z", rep="p", lead_id="L2", stage="sql"),
    ev("lead.qualified", "2026-11-10T00:00:00Z", rep="p", lead_id="L2", stage="mql"),
    ev("deal.created", "2026-11-10T00:00:00Z", rep="p", deal_id="D1", amount=1),
    ev("deal.created", "2026-11-10T00:00:00Z", rep="p", deal_id="D2", amount=1),
    ev("deal.created", "2026-11-10T00:00:00Z", rep="p", deal_id="D3", amount=1),
    ev("call.logged", "2026-11-10T00:00:00Z", rep="mover", outcome="meaningful"),
    ev("call.logged", "2026-11-10T00:00:00Z", rep="mover", team="t2", outcome="no_answer"),
    ev("email.logged", "2026-11-10T00:00:00Z", rep="m2", outcome="meaningful", direction="inbound"),
    ev("deal.won", "2026-11-10T00:00:00Z", rep="g", deal_id="G1", amount=100),
    ev("deal.won", "2026-11-09T00:00:00Z", rep="g", deal_id="G2", amount=300),   # prev 1d
    ev("deal.won", "2026-10-01T00:00:00Z", rep="g", deal_id="G3", amount=50),    # prev 30d
    ev("deal.won", "2026-11-10T00:00:00Z", rep="g", deal_id="G4", amount=0),
    ev("deal.won", "2026-11-10T00:00:00Z", rep="h", deal_id="H1", amount=0, margin=0),
    ev("customer.churned", "2026-11-10T00:00:00Z", rep="h", customer_id="C1", reason="involuntary"),
    ev("meeting.booked", "2026-11-10T00:00:00Z", rep="h", meeting_id="M1"),
    ev("meeting.completed", "2026-11-10T00:00:00Z", rep="h", meeting_id="M1", status="rescheduled"),
])

# 12. sales cycle start on a reopened deal without lead_id on the won events
#     (decisions.md: the lead its deal.created named)
case("cycle_reopened_deal", [
    ev("lead.created", "2026-11-01T00:00:00Z", lead_id="L1"),
    ev("deal.created", "2026-11-02T00:00:00Z", deal_id="D1", lead_id="L1", amount=10),
    ev("deal.won", "2026-11-05T00:00:00Z", deal_id="D1", amount=10),        # no lead_id: the deal.created's L1 -> 4 days
    ev("deal.created", "2026-11-06T00:00:00Z", deal_id="D1", amount=20),
    ev("deal.won", "2026-11-08T00:00:00Z", deal_id="D1", amount=20),        # still L1 of the first deal.created -> 7 days
    ev("deal.lost", "2026-11-09T00:00:00Z", deal_id="D1"),                  # not open: closes nothing
])

# 13. join state horizons (180 days) and the deal TTL (365 days)
case("join_and_deal_expiry", [
    ev("lead.created", "2026-01-01T00:00:00Z", lead_id="L1"),
    ev("deal.created", "2026-01-01T00:00:00Z", deal_id="D1", amount=10),
    ev("deal.created", "2025-11-23T00:00:00Z", deal_id="D2", amount=30),
    ev("lead.created", "2026-01-01T00:00:00Z", lead_id="L2"),
    ev("call.logged", "2026-06-30T00:00:00Z", lead_id="L2", outcome="no_answer"),   # 180 d: known
    ev("call.logged", "2026-06-30T00:00:01Z", lead_id="L1", outcome="no_answer"),   # 180 d + 1 s: forgotten
    ev("deal.won", "2026-06-30T00:00:01Z", deal_id="D1", lead_id="L1", amount=5),   # both forgotten: no cycle
    ev("lead.created", "2026-07-01T00:00:00Z", lead_id="L1"),                        # a new lead
    ev("call.logged", "2026-07-01T00:10:00Z", lead_id="L1", outcome="no_answer"),   # 600 s
    ev("deal.created", "2026-07-02T00:00:00Z", deal_id="D3", amount=7),
    ev("lead.created", "2026-11-22T00:00:00Z", rep="r2", lead_id="L9"),              # D2 opened 2025-11-23: 364 d, open
])
case("deal_ttl_expired", [
    ev("deal.created", "2025-11-01T00:00:00Z", deal_id="D2", amount=30),
    ev("deal.created", "2025-11-01T12:00:00Z", deal_id="D3", amount=40),
    ev("lead.created", "2026-11-01T06:00:00Z", rep="r2", lead_id="L9"),              # D2: 365 d 6 h: expired, D3 open
    ev("deal.created", "2026-11-01T06:00:00Z", rep="r3", deal_id="D2", amount=50),   # reopens D2: created again
    ev("deal.won", "2026-11-01T07:00:00Z", deal_id="D2", amount=50),                 # cycle from 2026 deal.created
])

# 14. time zones (config windows.time_zone)
NY = '''[windows]\ntime_zone = "America/New_York"\n'''
case("tz_new_york_dst_day", [
    ev("quota.set", "2026-02-20T00:00:00Z", rep=None, period="month", period_start="2026-03-01", amount=1000),
    ev("quota.set", "2026-02-20T00:00:00Z", rep=None, period="quarter", period_start="2026-01-01", amount=3000),
    ev("deal.won", "2026-03-08T04:59:59Z", deal_id="D1", amount=1),     # Sat 3-07 23:59:59 EST
    ev("deal.won", "2026-03-08T05:00:00Z", deal_id="D2", amount=2),     # Sun 3-08 00:00 EST: today
    ev("deal.won", "2026-03-02T04:59:59Z", deal_id="D3", amount=4),     # Sun 3-01 local: mtd, not wtd
    ev("deal.won", "2026-03-02T05:00:00Z", deal_id="D4", amount=8),     # Mon 3-02 local: wtd
    ev("deal.won", "2026-03-01T04:59:59Z", deal_id="D5", amount=16),    # Feb 28 local: qtd only
    ev("deal.won", "2026-01-01T04:59:59Z", deal_id="D6", amount=32),    # 2025 local: not qtd
    ev("deal.won", "2026-01-01T05:00:00Z", deal_id="D7", amount=64),    # qtd
    ev("call.logged", "2026-03-09T03:30:00Z", outcome="meaningful"),    # clock: Sun 3-08 23:30 EDT
], config=NY)
case("tz_new_york_month_end", [
    ev("quota.set", "2026-02-20T00:00:00Z", rep=None, period="month", period_start="2026-03-01", amount=1000),
    ev("quota.set", "2026-02-20T00:00:00Z", rep=None, period="month", period_start="2026-04-01", amount=5000),
    ev("quota.set", "2026-02-20T00:00:00Z", rep=None, period="quarter", period_start="2026-04-01", amount=7000),
    ev("quota.set", "2026-02-20T00:00:00Z", rep=None, period="quarter", period_start="2026-01-01", amount=3000),
    ev("deal.won", "2026-03-31T12:00:00Z", deal_id="D1", amount=100),
    ev("deal.won", "2026-04-01T00:30:00Z", deal_id="D2", amount=200),   # still March 31 in New York
    ev("call.logged", "2026-04-01T02:00:00Z", outcome="meaningful"),    # clock: 3-31 22:00 EDT
], config=NY)
case("tz_new_york_fall_back", [
    ev("deal.won", "2026-11-01T03:59:59Z", deal_id="D1", amount=1),     # 10-31 23:59:59 EDT
    ev("deal.won", "2026-11-01T04:00:00Z", deal_id="D2", amount=2),     # 11-01 00:00 EDT
    ev("deal.won", "2026-11-01T05:30:00Z", deal_id="D3", amount=4),     # 01:30 EDT
    ev("deal.won", "2026-11-01T06:30:00Z", deal_id="D4", amount=8),     # 01:30 EST (repeated hour)
    ev("call.logged", "2026-11-02T04:30:00Z", outcome="meaningful"),    # clock: 11-01 23:30 EST
], config=NY)
case("tz_santiago_midnight_gap", [
    ev("deal.won", "2026-09-06T03:59:59Z", deal_id="D1", amount=1),     # 09-05 23:59:59 -04
    ev("deal.won", "2026-09-06T04:00:00Z", deal_id="D2", amount=2),     # 09-06 01:00 -03 (00:00 does not exist)
    ev("deal.won", "2026-08-31T03:59:59Z", deal_id="D3", amount=4),     # Sun 08-30 23:59:59 local
    ev("deal.won", "2026-08-31T04:00:00Z", deal_id="D4", amount=8),     # Mon 08-31 00:00 local
    ev("call.logged", "2026-09-06T15:00:00Z", outcome="meaningful"),
], config='''[windows]\ntime_zone = "America/Santiago"\n''')
case("tz_kolkata_quarter", [
    ev("quota.set", "2026-06-01T00:00:00Z", rep="r1", period="quarter", period_start="2026-07-01", amount=800),
    ev("deal.won", "2026-06-30T18:29:59Z", deal_id="D1", amount=1),     # 06-30 23:59:59 IST
    ev("deal.won", "2026-06-30T18:30:00Z", deal_id="D2", amount=2),     # 07-01 00:00 IST
    ev("call.logged", "2026-07-01T01:00:00Z", outcome="meaningful"),
], config='''[windows]\ntime_zone = "Asia/Kolkata"\n''')

# 15. configured limits, windows, currency, benchmarks
case("config_limits", [
    ev("lead.created", "2026-11-10T00:00:00Z", team="A", rep="r1", lead_id="L1"),
    ev("lead.created", "2026-11-10T00:00:00Z", team="A", rep="r2", lead_id="L2"),
    ev("lead.created", "2026-11-10T00:00:00Z", team="A", rep="r3", lead_id="L3"),   # 3rd rep: cardinality
    ev("lead.created", "2026-11-10T00:00:00Z", team="A", rep=None, lead_id="L4"),
    ev("lead.created", "2026-11-10T00:00:00Z", team="B", rep=None, lead_id="L5"),   # 2nd team: cardinality
    ev("spend.recorded", "2026-11-10T00:00:00Z", team="A", rep="r9", amount=5, category="sales"),  # rep ignored
    ev("lead.created", "2026-11-10T00:00:00Z", team="A", rep="r1", lead_id="L6", currency="eur"),
    ev("lead.created", "2026-11-10T00:00:00Z", team="A", rep="r1", lead_id="L7", currency="usd"),
], config='''[limits]\nmax_reps = 2\nmax_teams = 1\n[events]\ncurrency = "EUR"\n''')
case("config_windows", [
    ev("deal.won", "2026-05-01T00:00:00Z", deal_id="D0", amount=1),     # prev 90d
    ev("deal.won", "2026-08-20T00:00:00Z", deal_id="D1", amount=2),     # 90d
    ev("deal.won", "2026-11-08T00:00:00Z", deal_id="D2", amount=4),     # 3d
    ev("deal.won", "2026-11-10T10:00:00Z", deal_id="D3", amount=8),     # 2h prev
    ev("deal.won", "2026-11-10T11:30:00Z", deal_id="D4", amount=16),    # 2h
    ev("deal.won", "2026-03-01T00:00:00Z", deal_id="D5", amount=32),    # late (older than prev 90d and qtd)
    ev("call.logged", "2026-11-10T12:00:00Z", outcome="meaningful"),
], config='''[windows]\nlist = ["2h", "3d:1d", "90d", "qtd", "today"]\n[benchmarks]\nreach_ratio_min = 0.3\n[benchmarks.teams.t1]\npass_ratio_min = 0.2\n''')

# 16. clock exactly on a day/month/quarter start (a Thursday)
case("clock_on_quarter_start", [
    ev("deal.won", "2026-09-30T23:59:59.999999Z", deal_id="D1", amount=1),   # wtd (Mon 09-28) only among calendar
    ev("deal.won", "2026-09-28T00:00:00Z", deal_id="D2", amount=2),          # wtd
    ev("deal.won", "2026-09-27T23:59:59Z", deal_id="D3", amount=4),
    ev("quota.set", "2026-09-01T00:00:00Z", rep=None, period="quarter", period_start="2026-10-01", amount=100),
    ev("quota.set", "2026-09-01T00:00:00Z", rep=None, period="quarter", period_start="2026-07-01", amount=100),
    ev("deal.won", "2026-10-01T00:00:00Z", deal_id="D4", amount=8),          # the clock, in every window
])
# 17. a week that starts before the quarter, with only short windows configured
case("config_wtd_extends_horizon", [
    ev("call.logged", "2026-04-02T09:00:00Z", outcome="meaningful"),
    ev("call.logged", "2026-03-30T00:00:00Z", outcome="meaningful"),     # kept by wtd
    ev("call.logged", "2026-03-29T23:59:59Z", outcome="meaningful"),     # late
    ev("call.logged", "2026-04-01T00:00:00Z", outcome="connected"),
], config='''[windows]\nlist = ["1h", "wtd", "qtd"]\n''')
# 18. quantiles: many zeros, sub-second and large durations
_q = []
_vals = [0] * 7 + [0.000001, 0.25, 0.5, 1, 1.5, 59.999, 60, 61, 3599.999999, 3600, 86400, 604800, 1e6, 2.5e6]
for i, v in enumerate(_vals):
    _q.append(ev("lead.created", "2026-10-01T00:00:00Z", lead_id=f"Z{i}"))
for i, v in enumerate(_vals):
    us = int(round(v * 1_000_000))
    import datetime as _dt
    at = (_dt.datetime(2026, 10, 1, tzinfo=_dt.timezone.utc) + _dt.timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    _q.append(ev("email.logged", at, lead_id=f"Z{i}", rep=f"r{i % 3}", outcome="sent"))
    _q.append(ev("deal.won", at, lead_id=f"Z{i}", deal_id=f"D{i}", rep=f"r{i % 3}", amount=1))
case("quantiles_zeros_and_spread", _q)
# 19. --now after the events
case("now_later", [
    ev("deal.won", "2026-10-01T00:00:00Z", deal_id="D1", amount=1),
    ev("deal.won", "2026-12-01T00:00:00Z", deal_id="D2", amount=2),
    ev("deal.won", "2026-12-31T23:00:00Z", deal_id="D3", amount=4),
    ev("deal.won", "2026-09-30T23:59:59Z", deal_id="D4", amount=8),      # late at now
], args=["--now", "2026-12-31T23:59:59Z"])
case("empty", [])

# 20. envelope fields on every type, optional ids, the 64 KiB boundary
_v = []
_extra = {"nps.recorded": {"score": 5}, "spend.recorded": {"amount": 1, "category": "sales", "rep_id": None},
          "quota.set": {"period": "month", "period_start": "2026-11-01", "amount": 1},
          "customer.churned": {"customer_id": "c", "reason": "voluntary"}, "deal.lost": {"deal_id": "d"},
          "meeting.completed": {"meeting_id": "m", "status": "held"}, "quote.sent": {},
          "lead.qualified": {"stage": "sql"}, "deal.created": {"deal_id": "d", "amount": 1}}
for _t, _f in _extra.items():
    _f = dict(_f)
    _r = _f.pop("rep_id", "r1")
    _v.append(ev(_t, "2026-11-10T00:00:00Z", rep=_r, lead_id="bad lead", **_f))
_v += [
    ev("quote.sent", "2026-11-10T00:00:00Z", deal_id="bad deal"),
    ev("nps.recorded", "2026-11-10T00:00:00Z", score=3, customer_id="bad cust"),
    ev("meeting.completed", "2026-11-10T00:00:00Z", meeting_id="m", status="held", rescheduled_by="boss"),
    ev("quota.set", "2026-11-10T00:00:00Z", rep="bad rep", period="month", period_start="2026-11-01", amount=1),
    ev("lead.created", "2026-11-10T00:00:00Z", rep=None, lead_id="L", source=None),
]
for _size in (65535, 65536, 65537):
    _d = {"event_id": f"big{_size}", "type": "lead.created", "occurred_at": "2026-11-10T00:00:00Z",
          "team_id": "t1", "lead_id": "L", "pad": ""}
    _s = json.dumps(_d, separators=(",", ":"))
    _v.append(_s.replace('"pad":""', '"pad":"' + "p" * (_size - len(_s)) + '"'))
case("validation_other_fields", _v)
# a UTF-8 byte order mark before the first event (both reject the line as `json`)
case("bom_first_line", ["\ufeff" + ev("lead.created", "2026-11-10T00:00:00Z", lead_id="L1"),
                        ev("lead.created", "2026-11-10T00:00:00Z", lead_id="L2")])

# 21. a lead counts once (decisions.md, Joins): a later lead.created of a known
#     lead is applied (events_total) but is no new lead; per team; the count
#     and the lead time belong to the first one
case("lead_counts_once", [
    ev("lead.created", "2026-11-01T00:00:00Z", rep="a", lead_id="L1"),
    ev("lead.created", "2026-11-02T00:00:00Z", rep="b", lead_id="L1"),            # re-sync: not a new lead
    ev("lead.created", "2026-10-30T00:00:00Z", rep=None, lead_id="L1"),           # older, still not new
    ev("lead.created", "2026-11-02T00:00:00Z", rep="b", team="t2", lead_id="L1"),  # other team: new
    ev("lead.qualified", "2026-11-02T00:00:00Z", rep="b", lead_id="L1", stage="mql"),
    ev("call.logged", "2026-11-03T00:00:00Z", rep="b", lead_id="L1", outcome="connected"),  # 2 days after 11-01
    ev("lead.created", "2026-11-03T00:00:00Z", rep="a", lead_id="L1"),            # does not re-arm the response
    ev("call.logged", "2026-11-03T01:00:00Z", rep="a", lead_id="L1", outcome="connected"),
    ev("spend.recorded", "2026-11-02T00:00:00Z", rep=None, amount=100, category="marketing"),
    ev("deal.won", "2026-11-04T00:00:00Z", rep="a", deal_id="D1", lead_id="L1", amount=1),  # cycle from 11-01
])
HZ = '[horizons]\njoins = "2d"\ndeal_ttl = "3d"\n'
case("lead_forgotten_short_horizon", [
    ev("lead.created", "2026-11-01T00:00:00Z", lead_id="L1"),
    ev("lead.created", "2026-11-03T00:00:00Z", lead_id="L1"),                     # exactly 2 d: known
    ev("lead.created", "2026-11-03T00:00:01Z", rep="z", lead_id="L1"),            # 2 d + 1 s: a new lead
    ev("lead.created", "2026-11-04T00:00:00Z", lead_id="L1"),                     # known (the 11-03 one)
    ev("call.logged", "2026-11-04T00:10:00Z", lead_id="L1", outcome="voicemail"),  # from 11-03T00:00:01
], config=HZ)

# 22. won or lost before created (decisions.md, Joins): created, updated, won in
#     every arrival order -> one deal created, none open (one deal per order)
_C = lambda d: ev("deal.created", "2026-11-02T00:00:00Z", rep="a", deal_id=d, amount=100, lead_id="L1")
_U = lambda d: ev("deal.created", "2026-11-03T00:00:00Z", rep="b", deal_id=d, amount=250)
_W = lambda d: ev("deal.won", "2026-11-05T00:00:00Z", rep="c", deal_id=d, amount=300)
_lines = [ev("lead.created", "2026-11-01T00:00:00Z", lead_id="L1")]
for _o in ("CUW", "CWU", "UCW", "UWC", "WCU", "WUC"):
    _lines += [{"C": _C, "U": _U, "W": _W}[x]("D" + _o) for x in _o]
case("deal_created_updated_won_every_order", _lines)
case("deal_close_before_create", [
    # lost 11-10 then won 11-08: the close time is the later one; 11-09 counts, stays closed
    ev("deal.lost", "2026-11-10T00:00:00Z", deal_id="A"),
    ev("deal.won", "2026-11-08T00:00:00Z", deal_id="A", amount=5),
    ev("deal.created", "2026-11-09T00:00:00Z", deal_id="A", amount=7),
    # won 11-08, lost 11-10, created 11-09: counts, closed
    ev("deal.won", "2026-11-08T00:00:00Z", deal_id="B", amount=5),
    ev("deal.lost", "2026-11-10T00:00:00Z", deal_id="B"),
    ev("deal.created", "2026-11-09T00:00:00Z", deal_id="B", amount=7),
    # won 11-10, created 11-07 counts, lost 11-08, created 11-09: an older update: nothing
    ev("deal.won", "2026-11-10T00:00:00Z", deal_id="C", amount=5),
    ev("deal.created", "2026-11-07T00:00:00Z", deal_id="C", amount=7),
    ev("deal.lost", "2026-11-08T00:00:00Z", deal_id="C"),
    ev("deal.created", "2026-11-09T00:00:00Z", deal_id="C", amount=9),
    # created at exactly the close time: counts, closed; 1 us later: reopens
    ev("deal.won", "2026-11-10T00:00:00Z", deal_id="E", amount=5),
    ev("deal.created", "2026-11-10T00:00:00Z", deal_id="E", amount=7),
    ev("deal.created", "2026-11-10T00:00:00.000001Z", deal_id="E", amount=9),
    # open, won, reopened, older update of the open deal, lost, older creation: nothing
    ev("deal.created", "2026-11-01T00:00:00Z", deal_id="F", amount=1),
    ev("deal.won", "2026-11-05T00:00:00Z", deal_id="F", amount=5),
    ev("deal.created", "2026-11-06T00:00:00Z", deal_id="F", amount=7),
    ev("deal.created", "2026-11-04T00:00:00Z", deal_id="F", amount=11),             # updates the open deal
    ev("deal.lost", "2026-11-08T00:00:00Z", deal_id="F"),
    ev("deal.created", "2026-11-07T00:00:00Z", deal_id="F", amount=13),
    # a close older than the open deal still closes it (processing order)
    ev("deal.created", "2026-11-05T00:00:00Z", deal_id="G", amount=1),
    ev("deal.won", "2026-11-03T00:00:00Z", deal_id="G", amount=5),
    ev("deal.created", "2026-11-04T00:00:00Z", deal_id="G", amount=7),              # newer than the close: reopens
    ev("deal.created", "2026-11-02T00:00:00Z", deal_id="G", amount=9),              # update of the open deal
    # reopened after a close at 11-10, then closed by an older lost (11-09): 11-11 reopens
    ev("deal.created", "2026-11-01T00:00:00Z", deal_id="H", amount=1),
    ev("deal.won", "2026-11-10T00:00:00Z", deal_id="H", amount=2),
    ev("deal.created", "2026-11-12T00:00:00Z", deal_id="H", amount=4),
    ev("deal.lost", "2026-11-09T00:00:00Z", deal_id="H"),
    ev("deal.created", "2026-11-11T00:00:00Z", deal_id="H", amount=8),
    # another team's close does not touch t1
    ev("deal.won", "2026-11-10T00:00:00Z", team="t2", deal_id="A", amount=1),
    ev("deal.created", "2026-11-12T00:00:00Z", deal_id="A", amount=16),              # newer than A's close: reopens
])
# 23. sales cycle start (decisions.md, Joins): the won event's lead, else the
#     lead named by the deal's deal.created, else the first deal.created
case("cycle_lead_of_the_deal", [
    ev("lead.created", "2026-11-01T00:00:00Z", lead_id="L1"),
    ev("lead.created", "2026-10-31T00:00:00Z", lead_id="L2"),
    # created names L1, update names L2: L1 (4 d)
    ev("deal.created", "2026-11-02T00:00:00Z", deal_id="D1", amount=1, lead_id="L1"),
    ev("deal.created", "2026-11-03T00:00:00Z", deal_id="D1", amount=1, lead_id="L2"),
    ev("deal.won", "2026-11-05T00:00:00Z", deal_id="D1", amount=1),
    # no lead anywhere: the first deal.created processed (11-03): 2 d
    ev("deal.created", "2026-11-03T00:00:00Z", deal_id="D2", amount=1),
    ev("deal.created", "2026-11-02T00:00:00Z", deal_id="D2", amount=1),
    ev("deal.won", "2026-11-05T00:00:00Z", deal_id="D2", amount=1),
    # the created's lead unknown (L9): the first deal.created: 3 d
    ev("deal.created", "2026-11-02T00:00:00Z", deal_id="D3", amount=1, lead_id="L9"),
    ev("deal.created", "2026-11-03T00:00:00Z", deal_id="D3", amount=1, lead_id="L2"),
    ev("deal.won", "2026-11-05T00:00:00Z", deal_id="D3", amount=1),
    # the first deal.created names none, the update names L1: L1 (4 d)
    ev("deal.created", "2026-11-02T00:00:00Z", deal_id="D4", amount=1),
    ev("deal.created", "2026-11-03T00:00:00Z", deal_id="D4", amount=1, lead_id="L1"),
    ev("deal.created", "2026-11-03T01:00:00Z", deal_id="D4", amount=1, lead_id="L2"),
    ev("deal.won", "2026-11-05T00:00:00Z", deal_id="D4", amount=1),
    # the won event names an unknown lead: the deal.created's L1 is not used (3 d)
    ev("deal.created", "2026-11-02T00:00:00Z", deal_id="D5", amount=1, lead_id="L1"),
    ev("deal.won", "2026-11-05T00:00:00Z", deal_id="D5", amount=1, lead_id="LX"),
    # the deal's lead arrives after the deal.created, before the won: 6 d
    ev("deal.created", "2026-11-02T00:00:00Z", deal_id="D6", amount=1, lead_id="L3"),
    ev("lead.created", "2026-10-30T00:00:00Z", lead_id="L3"),
    ev("deal.won", "2026-11-05T00:00:00Z", deal_id="D6", amount=1),
    # won before created with the won's lead (4 d); the created then counts
    ev("deal.won", "2026-11-05T00:00:00Z", deal_id="D7", amount=5, lead_id="L1"),
    ev("deal.created", "2026-11-02T00:00:00Z", deal_id="D7", amount=1),
    # won before created, no lead: no observation; a second won then uses the
    # created's lead L2 (6 d)
    ev("deal.won", "2026-11-05T00:00:00Z", deal_id="D8", amount=1),
    ev("deal.created", "2026-11-02T00:00:00Z", deal_id="D8", amount=1, lead_id="L2"),
    ev("deal.won", "2026-11-06T00:00:00Z", deal_id="D8", amount=1),
    # reopened with another lead: the first lead stays (L1: 3 d, then 5 d)
    ev("deal.created", "2026-11-02T00:00:00Z", deal_id="D9", amount=1, lead_id="L1"),
    ev("deal.won", "2026-11-04T00:00:00Z", deal_id="D9", amount=1),
    ev("deal.created", "2026-11-05T00:00:00Z", deal_id="D9", amount=1, lead_id="L2"),
    ev("deal.won", "2026-11-06T00:00:00Z", deal_id="D9", amount=1),
])
# 24. short join / deal horizons: a close is remembered for the join horizon;
#     a deal past its TTL is not open, its close does not count its creation
case("deal_close_forgotten", [
    ev("deal.won", "2026-11-01T00:00:00Z", deal_id="D1", amount=5),
    ev("call.logged", "2026-11-04T00:00:00Z", outcome="connected"),
    ev("deal.created", "2026-10-31T00:00:00Z", deal_id="D1", amount=7),            # close forgotten: opens
], config=HZ)
case("deal_close_remembered_to_the_edge", [
    ev("deal.won", "2026-11-01T00:00:00Z", deal_id="D1", amount=5),
    ev("call.logged", "2026-11-03T00:00:00Z", outcome="connected"),
    ev("deal.created", "2026-10-31T00:00:00Z", deal_id="D1", amount=7),            # 2 d: remembered
], config=HZ)
case("deal_ttl_expired_then_closed", [
    ev("deal.created", "2026-11-01T00:00:00Z", deal_id="D1", amount=5),
    ev("call.logged", "2026-11-05T00:00:00Z", outcome="connected"),
    ev("deal.won", "2026-11-05T00:00:00Z", deal_id="D1", amount=5),                # deal past its TTL
    ev("deal.created", "2026-11-04T00:00:00Z", deal_id="D1", amount=7),            # counts, stays closed
    ev("deal.created", "2026-11-03T00:00:00Z", deal_id="D1", amount=9),            # nothing
], config=HZ)
case("cycle_first_deal_created_forgotten", [
    ev("lead.created", "2026-11-01T00:00:00Z", lead_id="L1"),
    ev("deal.created", "2026-11-02T00:00:00Z", deal_id="D1", amount=1, lead_id="L1"),
    ev("lead.created", "2026-11-03T12:00:00Z", lead_id="L1"),                      # L1 forgotten: new lead
    ev("deal.won", "2026-11-04T06:00:00Z", deal_id="D1", amount=1),                # D1 forgotten: no cycle
    ev("deal.created", "2026-11-04T07:00:00Z", deal_id="D2", amount=1, lead_id="L1"),
    ev("deal.won", "2026-11-07T00:00:00Z", deal_id="D2", amount=1),                # L1, D2 forgotten: none
], config=HZ)

for name, text in CONFIGS.items():
    with open(os.path.join(OUT, name + ".toml"), "w") as f:
        f.write(text)

for name, lines in CASES.items():
    with open(os.path.join(OUT, name + ".ndjson"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n" if lines else "")
    argf = os.path.join(OUT, name + ".args")
    if name in ARGS:
        with open(argf, "w") as f:
            f.write(" ".join(ARGS[name]) + "\n")
    elif os.path.exists(argf):
        os.remove(argf)
print(f"wrote {len(CASES)} cases to {OUT}")
