#!/usr/bin/env python3
"""Checks the page's rendered DOM (chromium --dump-dom) against the JSON it
shows: used by tests/e2e/50-page.sh.

    page_dom.py DOM.html DOC.json LAGGARD_TEAM LAGGARD_REP [REPLAY.json]

DOC.json is the /api/v1/kpis document the page rendered (or the report's
embedded document of its default window), REPLAY.json the report's replay
summary. Every number the page carries (the data-value of a cell, i.e. the
JSON value it formats) must equal the document's, every funnel step, rep
and below-benchmark row of the document must be on the page, the displayed
counts must read as the JSON integers, and the below-benchmark list must
name the laggard. Exits 1 with the differences.
"""
import json
import sys
from html.parser import HTMLParser

FUNNEL = ["sales_outbound_activities", "sales_connects", "sales_meaningful_conversations", "sales_sqls", "sales_deals_created", "sales_deals_won"]
FUNNEL_RATES = ["sales_connect_ratio", "sales_reach_ratio", "sales_pass_ratio", "sales_pipe_ratio", "sales_win_ratio"]
LEADER = ["sales_revenue", "sales_quota_attainment_ratio", "sales_win_ratio", "sales_reach_ratio", "sales_lead_response_within_1h_ratio"]


class Dom(HTMLParser):
    """Collects the cells with data-key/data-value and the context
    (table, row, section) they are in."""

    def __init__(self):
        super().__init__()
        self.stack = []  # (tag, attrs)
        self.cells = []  # dicts: section, table attrs, row attrs, key, value, text
        self.rows = []  # (section, table id, row attrs)
        self.body = {}
        self.cur = None

    def ctx(self, tag, name=None):
        for t, a in reversed(self.stack):
            if t == tag and (name is None or name in a):
                return a
        return {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body":
            self.body = a
        if tag in ("meta", "br", "input", "link", "img"):
            return
        self.stack.append((tag, a))
        section = self.ctx("section").get("aria-labelledby", "")
        if tag == "tr":
            self.rows.append((section, self.ctx("table").get("id", ""), a))
        if tag in ("td", "th") and "data-key" in a:
            self.cur = {
                "section": section,
                "table": self.ctx("table"),
                "row": self.ctx("tr"),
                "key": a["data-key"],
                "value": a.get("data-value"),
                "text": "",
            }

    def handle_endtag(self, tag):
        while self.stack:
            t, _ = self.stack.pop()
            if t == tag:
                break
        if tag in ("td", "th") and self.cur is not None:
            self.cells.append(self.cur)
            self.cur = None

    def handle_data(self, data):
        if self.cur is not None:
            self.cur["text"] += data


def main():
    dom_file, doc_file, lag_team, lag_rep = sys.argv[1:5]
    replay = json.load(open(sys.argv[5])) if len(sys.argv) > 5 else None
    doc = json.load(open(doc_file))
    p = Dom()
    p.feed(open(dom_file, encoding="utf-8").read())
    errors = []
    checked = 0

    def value_of(c):
        return None if c["value"] is None else float(c["value"])

    if p.body.get("data-window") != doc["window"]:
        errors.append(f"page shows window {p.body.get('data-window')!r}, document {doc['window']!r}")
    if p.body.get("data-clock") != (doc["clock"] or ""):
        errors.append(f"page shows clock {p.body.get('data-clock')!r}, document {doc['clock']!r}")

    teams = {t["team"]: t for t in doc["teams"]}
    reps = {(t["team"], r["rep"]): r for t in doc["teams"] for r in t["reps"]}

    # funnel: every cell equals the team's value; every step the document has is shown
    seen = set()
    for c in p.cells:
        if c["section"] != "h-funnel":
            continue
        team = c["table"].get("data-team")
        want = teams.get(team, {}).get("kpis", {}).get(c["key"])
        got = value_of(c)
        checked += 1
        if got != (None if want is None else float(want)):
            errors.append(f"funnel {team} {c['key']}: page {got}, JSON {want}")
        if c["key"] in FUNNEL and want is not None:
            shown = c["text"].replace(",", "").strip()
            if shown != str(int(want)):
                errors.append(f"funnel {team} {c['key']}: page reads {c['text']!r}, JSON {want}")
        seen.add((team, c["key"]))
    for team, t in teams.items():
        for k in FUNNEL + FUNNEL_RATES:
            if k in t["kpis"] and (team, k) not in seen:
                errors.append(f"funnel {team}: {k} = {t['kpis'][k]} is not on the page")

    # leaderboard: one row per rep, every cell equal
    board = [r for s, tid, r in p.rows if tid == "leaderboard" and "data-rep" in r]
    if len(board) != len(reps):
        errors.append(f"leaderboard: {len(board)} rows, JSON has {len(reps)} reps")
    for c in p.cells:
        if c["section"] != "h-leader":
            continue
        key = (c["row"].get("data-team"), c["row"].get("data-rep"))
        want = reps.get(key, {}).get("kpis", {}).get(c["key"])
        checked += 1
        if value_of(c) != (None if want is None else float(want)):
            errors.append(f"leaderboard {key} {c['key']}: page {value_of(c)}, JSON {want}")

    # below benchmark: the same rows, the same numbers; the laggard is named
    rows = {(r.get("data-team"), r.get("data-rep"), r.get("data-kpi")) for s, tid, r in p.rows if tid == "below-table" and "data-kpi" in r}
    want_rows = {(b["team"], b["rep"] or "", b["kpi"]) for b in doc["below_benchmark"]}
    if rows != want_rows:
        errors.append(f"below benchmark: page {sorted(rows)}, JSON {sorted(want_rows)}")
    below = {(b["team"], b["rep"] or "", b["kpi"]): b for b in doc["below_benchmark"]}
    for c in p.cells:
        if c["section"] != "h-below":
            continue
        b = below.get((c["row"].get("data-team"), c["row"].get("data-rep"), c["row"].get("data-kpi")), {})
        want = b.get(c["key"])
        checked += 1
        if value_of(c) != (None if want is None else float(want)):
            errors.append(f"below {c['row']} {c['key']}: page {value_of(c)}, JSON {want}")
    if (lag_team, lag_rep, "reach_ratio") not in rows:
        errors.append(f"the below-benchmark list does not name the laggard {lag_rep} ({lag_team}): {sorted(rows)}")

    # engine health (live) / replay summary (report)
    if doc.get("engine"):
        for c in p.cells:
            if c["section"] == "h-health" and c["key"] == "events":
                r = c["row"].get("data-result")
                checked += 1
                if value_of(c) != float(doc["engine"]["events"][r]):
                    errors.append(f"health events {r}: page {value_of(c)}, JSON {doc['engine']['events'][r]}")
        series = [c for c in p.cells if c["section"] == "h-health" and c["key"] == "series"]
        if not series or value_of(series[0]) != float(doc["engine"]["series"]):
            errors.append(f"health series: page {series and value_of(series[0])}, JSON {doc['engine']['series']}")
    if replay is not None:
        names = {"lines": "lines", "applied": "applied", "duplicate": "duplicate", "late": "late", "invalid": "invalid_total"}
        got = {c["key"]: value_of(c) for c in p.cells if c["section"] == "h-replay" and c["key"] in names and not c["row"].get("data-reason")}
        for k, j in names.items():
            checked += 1
            if got.get(k) != float(replay[j]):
                errors.append(f"replay {k}: page {got.get(k)}, JSON {replay[j]}")
        for c in p.cells:
            if c["section"] == "h-replay" and c["row"].get("data-reason"):
                r = c["row"]["data-reason"]
                checked += 1
                if value_of(c) != float(replay["invalid"][r]):
                    errors.append(f"replay invalid {r}: page {value_of(c)}, JSON {replay['invalid'][r]}")
        lines = [r.get("data-line") for s, tid, r in p.rows if tid == "first-invalid" and "data-line" in r]
        if lines != [str(f["line"]) for f in replay["first_invalid"]]:
            errors.append(f"first invalid lines: page {lines}, JSON {[f['line'] for f in replay['first_invalid']]}")

    if checked < 50:
        errors.append(f"only {checked} numbers on the page: did the script run?")
    if errors:
        print(f"{dom_file}: {len(errors)} differences:", file=sys.stderr)
        for e in errors[:30]:
            print("  " + e, file=sys.stderr)
        sys.exit(1)
    print(f"{checked} numbers on the page equal the JSON; {len(rows)} below benchmark, the laggard {lag_rep} among them")


if __name__ == "__main__":
    main()
