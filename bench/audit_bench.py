"""``python -m bench.audit_bench``: the audit store at scale (10M records by default).

Creates its own PostgreSQL database (``registryadmin_bench_audit``, dropped at the end,
never the shared ``test`` one), migrates it, seeds BENCH_AUDIT_ROWS records with COPY
(valid MACs, sealed chains, segment heads and hourly rollups, computed with ``audit.chain``),
then measures:

* the search page's record query (``parse_filter`` + ``AuditFilter.apply`` + ``keyset_page``,
  50 rows) for the common filters: p50/p95 over 30 runs after 3 warm-ups, EXPLAIN ANALYZE
  of every case in bench/output/audit_explain.txt (the slow ones flagged);
* the insert rate through ``audit.services.record`` in 2 and 4 processes (autocommit INSERTs);
* ``manage.py export_audit --format jsonl`` of every row: wall time, rows/s, RSS samples;
* the chart (``audit.charts.attempts_chart``) from rollups for 7 and 90 days and from records;
* ``manage.py verify_audit``: wall time, rows/s, peak RSS.

The parent only orchestrates: every Django step runs in a child (``--child <step>``) whose
DATABASE_URL points at the bench database. Results: stdout (table + JSON) and
bench/output/audit.json.

Knobs: BENCH_AUDIT_ROWS (10_000_000), BENCH_PG_ADMIN_URL, BENCH_INSERT_SECONDS (10),
BENCH_EXPORT_TIMEOUT / BENCH_VERIFY_TIMEOUT (seconds, 900 each; a step that runs out is
killed and reported as unfinished, with what it did so far).
"""

from __future__ import annotations

import collections
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "bench" / "output"
ROWS = int(os.environ.get("BENCH_AUDIT_ROWS", "10000000"))
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres")
PG_DB = "registryadmin_bench_audit"
HMAC_KEY = "bench-audit-hmac-key-0123456789abcdef"
INSERT_SECONDS = float(os.environ.get("BENCH_INSERT_SECONDS", "10"))
EXPORT_TIMEOUT = float(os.environ.get("BENCH_EXPORT_TIMEOUT", "900"))
VERIFY_TIMEOUT = float(os.environ.get("BENCH_VERIFY_TIMEOUT", "900"))
SPAN = timedelta(days=90)
CHUNK = 20_000
RUNS, WARMUPS, PAGE = 30, 3, 50
GOAL_SEARCH_MS, GOAL_INSERT_RATE, GOAL_EXPORT_RSS_MB = 100.0, 5000.0, 150.0

# --- the synthetic population -------------------------------------------------------------------

TEAMS = ["web", "api", "data", "infra", "ml", "mobile", "payments", "search", "ops", "security"]
TEAMS += [f"team{n:02d}" for n in range(90)]
APPS = ["app", "frontend", "backend", "worker", "db", "cache", "proxy", "cron", "ui", "gateway"]
APPS += [f"svc{n}" for n in range(10)]
REPOSITORIES = [f"{team}/{app}" for team in TEAMS for app in APPS]  # 100 x 20 = 2000
USERS = [f"user{n:04d}" for n in range(4000)]
ROBOTS = [f"robot${TEAMS[n % len(TEAMS)]}+bot{n // len(TEAMS)}" for n in range(1000)]
ACTORS = USERS + ROBOTS  # 5000
CIDR_NET = "198.51.100"  # the first 50 addresses live in one /24, for the CIDR search
IPS = [f"{CIDR_NET}.{n + 1}" for n in range(50)]
IPS += [f"10.{random.Random(n).randrange(256)}.{random.Random(-n).randrange(256)}.{n % 250 + 1}" for n in range(950)]
AGENTS = [
    "docker/24.0.7 go/go1.20.10 git-commit/311b9ff kernel/6.1.0 os/linux arch/amd64",
    "containerd/1.7.11",
    "skopeo/1.13.3",
    "Go-http-client/1.1",
    "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0",
]
KINDS = ["access", "registry_event", "admin_change", "signin", "credential", "job"]
KIND_WEIGHTS = [80, 15, 2, 1.5, 1, 0.5]
ACCESS_OUTCOMES = ["granted", "partial", "denied", "auth_failed", "invalid"]
ACCESS_WEIGHTS = [80, 5, 8, 5, 2]
EVENT_OUTCOMES = ["pull", "push", "delete"]
EVENT_WEIGHTS = [70, 25, 5]
DENIED_TEXT = "no grant"  # in the detail of refused access attempts: the text search looks for it
COLUMNS = (
    "id",
    "time",
    "kind",
    "outcome",
    "actor",
    "actor_id",
    "subject_type",
    "ip",
    "user_agent",
    "request_id",
    "registry",
    "repository",
    "actions",
    "detail",
    "segment",
    "mac",
    "key_id",
)


# The usage rollups (audit.usage) as the sealer would have counted the seeded records: each issued
# access record once per granted pull/push/delete and once as "login", a token's under its user.
_ISSUED_ACCESS = (
    "kind = 'access' AND outcome IN ('granted', 'probe', 'partial', 'denied') "
    "AND subject_type IN ('user', 'robot', 'token') AND actor <> ''"
)
_USE_SUBJECT = "CASE WHEN subject_type = 'token' THEN 'user' ELSE subject_type END"
USAGE_ROLLUPS = (
    "INSERT INTO audit_accessuseday (day, subject_type, actor, registry, repository, action, count, first_at, last_at) "  # noqa: S608 (constants only)
    f"SELECT (time AT TIME ZONE 'UTC')::date, {_USE_SUBJECT}, actor, registry, entry->>'name', action, count(*), "
    "min(time), max(time) FROM audit_auditrecord, jsonb_array_elements(actions::jsonb) AS entry, "
    "jsonb_array_elements_text(entry->'granted') AS action "
    f"WHERE {_ISSUED_ACCESS} AND entry->>'type' = 'repository' AND action IN ('pull', 'push', 'delete') "
    "GROUP BY 1, 2, 3, 4, 5, 6",
    "INSERT INTO audit_accessuseday (day, subject_type, actor, registry, repository, action, count, first_at, last_at) "  # noqa: S608 (constants only)
    f"SELECT (time AT TIME ZONE 'UTC')::date, {_USE_SUBJECT}, actor, registry, '', 'login', count(*), min(time), "
    f"max(time) FROM audit_auditrecord WHERE {_ISSUED_ACCESS} GROUP BY 1, 2, 3, 4",
    "INSERT INTO audit_accessuse (subject_type, actor, registry, repository, action, first_at, last_at, count) "
    "SELECT subject_type, actor, registry, repository, action, min(first_at), max(last_at), sum(count) "
    "FROM audit_accessuseday GROUP BY 1, 2, 3, 4, 5",
)


def _cumulative(weights: list[float]) -> list[float]:
    total, out = 0.0, []
    for weight in weights:
        total += weight
        out.append(total)
    return out


ACTOR_CW = _cumulative([1.0 / (n % 500 + 1) ** 0.7 for n in range(len(ACTORS))])  # a few busy actors
REPO_CW = _cumulative([1.0 / (n % 200 + 1) ** 0.6 for n in range(len(REPOSITORIES))])
IP_CW = _cumulative([1.0 / (n % 100 + 1) ** 0.5 for n in range(len(IPS))])
KIND_CW = _cumulative(KIND_WEIGHTS)
ACCESS_CW = _cumulative(ACCESS_WEIGHTS)
EVENT_CW = _cumulative(EVENT_WEIGHTS)


def _actor_fields(rng: random.Random) -> tuple[str, int | None, str]:
    actor = rng.choices(ACTORS, cum_weights=ACTOR_CW)[0]
    if actor.startswith("robot$"):
        return actor, None, "robot"
    number = int(actor[4:]) + 2
    return actor, number, "token" if number % 10 == 0 else "user"


def _record(rng: random.Random, index: int) -> dict[str, Any]:
    kind = rng.choices(KINDS, cum_weights=KIND_CW)[0]
    actor, actor_id, subject_type = _actor_fields(rng)
    repository = rng.choices(REPOSITORIES, cum_weights=REPO_CW)[0]
    registry = "registry" if index % 10 else "mirror"
    ip: str | None = rng.choices(IPS, cum_weights=IP_CW)[0]
    actions: list[dict[str, Any]] = []
    detail: dict[str, Any]
    if kind == "access":
        outcome = rng.choices(ACCESS_OUTCOMES, cum_weights=ACCESS_CW)[0]
        requested = ["pull", "push"] if rng.random() < 0.3 else ["pull"]
        if outcome == "granted":
            granted, denied = requested, []
        elif outcome == "partial":
            requested = ["pull", "push"]
            granted, denied = ["pull"], ["push"]
        elif outcome == "denied":
            granted, denied = [], requested
        else:
            granted, denied = [], []
        if outcome == "auth_failed":
            if rng.random() < 0.5:
                actor, actor_id, subject_type = "", None, "anonymous"
        actions = [
            {"type": "repository", "name": repository, "requested": requested, "granted": granted, "denied": denied}
        ]
        detail = {"service": registry, "scopes": 1}
        if denied:
            detail["reason"] = f"{DENIED_TEXT} for {','.join(denied)} on {repository}"
    elif kind == "registry_event":
        outcome = rng.choices(EVENT_OUTCOMES, cum_weights=EVENT_CW)[0]
        detail = {"tag": f"v1.{index % 40}.{index % 7}", "digest": f"sha256:{rng.getrandbits(64):016x}"}
    elif kind == "admin_change":
        outcome = "success"
        detail = {"action": "grant.create", "target": f"{repository.split('/')[0]} -> {repository}"}
        repository = ""
    elif kind == "signin":
        outcome = "success" if rng.random() < 0.9 else "failure"
        detail = {"method": "password"}
        repository, registry = "", ""
    elif kind == "credential":
        outcome = "success"
        detail = {"action": "token.create", "credential": f"{actor}/ci"}
        repository, registry = "", ""
    else:
        outcome = "success" if rng.random() < 0.95 else "error"
        detail = {"job": "seal_audit", "duration_ms": rng.randrange(5, 900)}
        actor, actor_id, subject_type, ip, repository, registry = "system", None, "system", None, "", ""
    return {
        "kind": kind,
        "outcome": outcome,
        "actor": actor,
        "actor_id": actor_id,
        "subject_type": subject_type,
        "ip": ip,
        "user_agent": AGENTS[index % len(AGENTS)] if ip else "",
        "request_id": f"{rng.getrandbits(128):032x}",
        "registry": registry,
        "repository": repository,
        "actions": actions,
        "detail": detail,
    }


# --- child: seeding -----------------------------------------------------------------------------

_SEED: dict[str, Any] = {}


def _copy_text(value: Any) -> str:
    if value is None:
        return "\\N"
    text = str(value)
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        text = text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return text


def _seed_chunk(chunk: int) -> tuple[bytes, list[tuple[int, str, str]]]:
    """Rows [chunk*CHUNK, ...) as COPY text, and (id, segment, mac) for the chains, in (time, id) order."""
    from audit.chain import current_key, record_mac, segment_name

    key_id, key = current_key()
    rows, start_us, span_us = _SEED["rows"], _SEED["start_us"], _SEED["span_us"]
    rng = random.Random(chunk * 7919 + 17)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    lines, links = [], []
    for index in range(chunk * CHUNK, min(rows, (chunk + 1) * CHUNK)):
        base = start_us + index * span_us // rows
        step = max(1, span_us // rows)
        moment = epoch + timedelta(microseconds=base + rng.randrange(step))
        values = _record(rng, index)
        values["time"] = moment
        values["segment"] = segment_name(values["kind"], moment)
        mac = record_mac(values, key)
        record_id = index + 1
        lines.append(
            "\t".join(
                (
                    str(record_id),
                    moment.isoformat(),
                    values["kind"],
                    values["outcome"],
                    _copy_text(values["actor"]),
                    _copy_text(values["actor_id"]),
                    values["subject_type"],
                    _copy_text(values["ip"]),
                    _copy_text(values["user_agent"]),
                    values["request_id"],
                    values["registry"],
                    values["repository"],
                    _copy_text(json.dumps(values["actions"], separators=(",", ":"))),
                    _copy_text(json.dumps(values["detail"], separators=(",", ":"))),
                    values["segment"],
                    mac,
                    key_id,
                )
            )
        )
        links.append((record_id, values["segment"], mac))
    return ("\n".join(lines) + "\n").encode(), links


def _bounded(pool: Any, chunks: int, ahead: int = 6) -> Any:
    """Chunk results in order, with at most ``ahead`` in flight: memory stays flat if COPY is the slower side."""
    pending: collections.deque[Any] = collections.deque()
    for chunk in range(chunks):
        pending.append(pool.apply_async(_seed_chunk, (chunk,)))
        if len(pending) >= ahead:
            yield pending.popleft().get()
    while pending:
        yield pending.popleft().get()


def child_seed(rows: int = ROWS, span: timedelta = SPAN) -> dict[str, Any]:
    """COPY ``rows`` records spread over the ``span`` before now, sealed, with segments and rollups.

    ``bench.pages_bench`` uses it too (1M records over 30 days, under its seeded accounts).
    """
    import multiprocessing

    import psycopg
    from django.db import connections

    from audit.chain import current_key, head_checkpoint, link, segment_link, tip_checkpoint

    url = os.environ["DATABASE_URL"]
    key_id, _ = current_key()
    now = datetime.now(UTC)
    end_us = int((now - timedelta(minutes=2) - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1_000_000)
    span_us = int(span.total_seconds() * 1_000_000)
    _SEED.update(rows=rows, start_us=end_us - span_us, span_us=span_us)
    connections.close_all()
    timings: dict[str, float] = {}
    started = time.perf_counter()
    chunks = (rows + CHUNK - 1) // CHUNK
    heads: dict[str, list[Any]] = {}  # segment -> [count, head]
    sealed_at = now.isoformat()
    with psycopg.connect(url) as records_conn, psycopg.connect(url) as seals_conn:
        for conn in (records_conn, seals_conn):
            conn.execute("SET synchronous_commit = off")
            conn.execute("SET maintenance_work_mem = '512MB'")
            conn.execute("SET TIME ZONE 'UTC'")
        # Secondary indexes are built once after the load (their definitions are kept verbatim).
        dropped = records_conn.execute(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename IN ('audit_auditrecord', "
            "'audit_auditseal') AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)"
        ).fetchall()
        for name, _definition in dropped:
            records_conn.execute(f'DROP INDEX "{name}"')
        context = multiprocessing.get_context("fork")
        with (
            context.Pool(2) as pool,
            records_conn.cursor().copy(f"COPY audit_auditrecord ({', '.join(COLUMNS)}) FROM STDIN") as records_copy,
            seals_conn.cursor().copy(
                "COPY audit_auditseal (record_id, segment, seq, chain, sealed_at, key_id) FROM STDIN"
            ) as seals_copy,
        ):
            for done, (blob, links) in enumerate(_bounded(pool, chunks), 1):
                records_copy.write(blob)
                seal_lines = []
                for record_id, segment, mac in links:
                    state = heads.get(segment)
                    if state is None:
                        state = heads[segment] = [0, ""]
                    state[0] += 1
                    state[1] = link(segment, state[0], state[1], mac)
                    # As the sealer writes them: the first seal of a segment names its key, the rest follow it.
                    named = key_id if state[0] == 1 else "\\N"
                    seal_lines.append(f"{record_id}\t{segment}\t{state[0]}\t{state[1]}\t{sealed_at}\t{named}")
                seals_copy.write(("\n".join(seal_lines) + "\n").encode())
                if done % 50 == 0 or done == chunks:
                    rate = done * CHUNK / (time.perf_counter() - started)
                    _log(f"seed: {min(done * CHUNK, rows):,}/{rows:,} rows copied ({rate:,.0f} rows/s)")
        timings["copy_s"] = time.perf_counter() - started
        mark = time.perf_counter()
        # Segments are linked into the chain of segments in name order, as the sealer links them.
        segment_rows, previous, previous_link = [], "", ""
        for position, name in enumerate(sorted(heads), start=1):
            count, head = heads[name]
            chained = segment_link(position, name, previous, previous_link)
            segment_rows.append(
                (
                    name,
                    count,
                    head,
                    now,
                    head_checkpoint(name, count, head),
                    position,
                    previous,
                    chained,
                    key_id,
                    key_id,
                )
            )
            previous, previous_link = name, chained
        with records_conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO audit_auditsegment (name, count, head, updated_at, dropped_at, checkpoint, position, "
                "previous, link, key_id, link_key_id) VALUES (%s, %s, %s, %s, NULL, %s, %s, %s, %s, %s, %s)",
                segment_rows,
            )
            if segment_rows:
                cursor.execute(
                    "INSERT INTO audit_auditsegmentchain (id, count, segment, link, checkpoint, updated_at, key_id) "
                    "VALUES (1, %s, %s, %s, %s, %s, %s)",
                    [
                        len(segment_rows),
                        previous,
                        previous_link,
                        tip_checkpoint(len(segment_rows), previous, previous_link),
                        now,
                        key_id,
                    ],
                )
        records_conn.execute("SELECT setval(pg_get_serial_sequence('audit_auditrecord', 'id'), %s)", [max(rows, 1)])
        records_conn.execute(
            "INSERT INTO audit_auditrollup (hour, kind, outcome, registry, repository, actor, ip, count) "
            "SELECT date_trunc('hour', time), kind, outcome, registry, repository, actor, ip, count(*) "
            "FROM audit_auditrecord GROUP BY 1, 2, 3, 4, 5, 6, 7"
        )
        records_conn.execute(
            "INSERT INTO audit_audithourly (hour, kind, outcome, registry, count) "
            "SELECT date_trunc('hour', time), kind, outcome, registry, count(*) FROM audit_auditrecord "
            "GROUP BY 1, 2, 3, 4"
        )
        for statement in USAGE_ROLLUPS:
            records_conn.execute(statement)
        records_conn.commit()
        seals_conn.commit()
        timings["rollups_segments_s"] = time.perf_counter() - mark
        mark = time.perf_counter()
        records_conn.autocommit = True
        for _name, definition in dropped:
            records_conn.execute(definition)
        timings["indexes_s"] = time.perf_counter() - mark
        mark = time.perf_counter()
        records_conn.execute("VACUUM ANALYZE audit_auditrecord")
        records_conn.execute("VACUUM ANALYZE audit_auditseal")
        records_conn.execute("VACUUM ANALYZE audit_auditrollup")
        records_conn.execute("VACUUM ANALYZE audit_audithourly")
        records_conn.execute("VACUUM ANALYZE audit_accessuse")
        records_conn.execute("VACUUM ANALYZE audit_accessuseday")
        records_conn.execute("ANALYZE audit_auditsegment")
        timings["vacuum_analyze_s"] = time.perf_counter() - mark
        sizes = {
            table: records_conn.execute("SELECT pg_size_pretty(pg_total_relation_size(%s))", [table]).fetchone()[0]
            for table in ("audit_auditrecord", "audit_auditseal", "audit_auditrollup")
        }
        rollups = records_conn.execute("SELECT count(*) FROM audit_auditrollup").fetchone()[0]
    timings["total_s"] = time.perf_counter() - started
    return {
        "rows": rows,
        "segments": len(heads),
        "rollup_rows": rollups,
        "rows_per_s": rows / timings["total_s"],
        "seconds": {k: round(v, 1) for k, v in timings.items()},
        "table_sizes": sizes,
        "rebuilt_indexes": [name for name, _ in dropped],
        "seeded_until": datetime.fromtimestamp(end_us / 1e6, UTC).isoformat(),
    }


# --- child: searches and charts -----------------------------------------------------------------


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def child_queries() -> dict[str, Any]:
    from django.db import connection, reset_queries

    from audit import charts
    from audit.filters import keyset_page, parse_filter
    from audit.models import AuditRecord

    now = datetime.now(UTC)
    latest = AuditRecord.objects.order_by("-time").values_list("time", flat=True).first() or now
    busy_actor = USERS[7]
    busy_ip = IPS[3]
    first_page, cursor = keyset_page(parse_filter({}).apply(), None, PAGE)
    cases: dict[str, tuple[dict[str, str], Any]] = {
        "a_latest": ({}, None),
        "b_7d_denied": ({"since": (now - timedelta(days=7)).isoformat(), "outcome": "denied"}, None),
        "c_actor": ({"user": busy_actor}, None),
        "d1_repo_prefix": ({"repository": "web/"}, None),
        "d2_repo_exact": ({"repository": "web/frontend"}, None),
        "e_event_push": ({"kind": "registry_event", "action": "push"}, None),
        "f_ip_exact": ({"ip": busy_ip}, None),
        "g_cidr_24": ({"ip": f"{CIDR_NET}.0/24"}, None),
        "h_second_page": ({}, cursor),
        "i_text_24h": ({"since": (latest - timedelta(hours=24)).isoformat(), "text": DENIED_TEXT}, None),
    }
    # The second page of a filtered search, too: the cursor of case b's first page.
    _, denied_cursor = keyset_page(parse_filter(cases["b_7d_denied"][0]).apply(), None, PAGE)
    cases["h2_second_page_denied"] = (cases["b_7d_denied"][0], denied_cursor)
    results: dict[str, Any] = {}
    explains: list[str] = []
    for name, (params, page_cursor) in cases.items():
        times = []
        rows = 0
        for run in range(WARMUPS + RUNS):
            started = time.perf_counter()
            records, _next = keyset_page(parse_filter(params).apply(), page_cursor, PAGE)
            elapsed = (time.perf_counter() - started) * 1000
            rows = len(records)
            if run >= WARMUPS:
                times.append(elapsed)
            reset_queries()
        p95 = _percentile(times, 0.95)
        results[name] = {
            "filter": params,
            "cursor": page_cursor.encode() if page_cursor else None,
            "rows": rows,
            "p50_ms": round(statistics.median(times), 2),
            "p95_ms": round(p95, 2),
            "max_ms": round(max(times), 2),
            "meets_goal": p95 < GOAL_SEARCH_MS,
        }
        queryset = parse_filter(params).apply()
        if page_cursor is not None:
            from django.db.models import Q

            queryset = queryset.filter(Q(time__lt=page_cursor.time) | Q(time=page_cursor.time, id__lt=page_cursor.id))
        queryset = queryset.order_by("-time", "-id")[: PAGE + 1]
        sql = str(queryset.query)
        plan = queryset.explain(analyze=True, buffers=True)
        flag = "SLOW" if p95 >= GOAL_SEARCH_MS else "ok"
        explains.append(f"=== {name} [{flag}] p50 {results[name]['p50_ms']} ms, p95 {p95:.1f} ms\n{sql}\n\n{plan}\n")
        results[name]["plan_top"] = [line.strip() for line in plan.splitlines()[:4]]
        _log(f"search {name}: p50 {results[name]['p50_ms']} ms p95 {p95:.1f} ms ({rows} rows)")
    (OUTPUT / "audit_explain.txt").write_text("\n".join(explains))
    del first_page

    # Charts, as the page calls them (plus the top lists it shows under the chart).
    chart_results: dict[str, Any] = {}
    hour = charts.floor_hour(now)
    chart_cases = {
        "rollups_7d": {"since": (hour - timedelta(days=7)).isoformat()},
        "rollups_90d": {"since": (hour - timedelta(days=90)).isoformat()},
        "records_7d_groupby": {"since": (now - timedelta(days=7, seconds=1)).isoformat()},  # not hour-aligned
        "rollups_24h_default": {},
    }
    for name, params in chart_cases.items():
        times, top_times = [], []
        for run in range(2 + 10):
            audit_filter = parse_filter(params)
            started = time.perf_counter()
            chart = charts.attempts_chart(audit_filter, now)
            middle = time.perf_counter()
            charts.top_lists(chart.window)
            ended = time.perf_counter()
            if run >= 2:
                times.append((middle - started) * 1000)
                top_times.append((ended - middle) * 1000)
        chart_results[name] = {
            "source": chart.source,
            "bars": len(chart.bars),
            "total": chart.total,
            "p50_ms": round(statistics.median(times), 2),
            "p95_ms": round(_percentile(times, 0.95), 2),
            "top_lists_p50_ms": round(statistics.median(top_times), 2),
        }
        _log(f"chart {name}: {chart.source} p50 {chart_results[name]['p50_ms']} ms")
    connection.close()
    return {"searches": results, "charts": chart_results}


# --- child: the real write path -----------------------------------------------------------------


def child_insert(start_at: float, seconds: float, worker: int) -> dict[str, Any]:
    from django.db import connection

    from audit.context import AuditContext
    from audit.services import record

    rng = random.Random(worker)
    connection.ensure_connection()
    while time.time() < start_at:
        time.sleep(0.01)
    deadline, count = start_at + seconds, 0
    started = time.perf_counter()
    while time.time() < deadline:
        repository = rng.choice(REPOSITORIES)
        actor = rng.choice(USERS)
        context = AuditContext(
            actor=actor,
            actor_id=int(actor[4:]) + 2,
            ip=rng.choice(IPS),
            user_agent=AGENTS[0],
            request_id=f"{rng.getrandbits(128):032x}",
        )
        scope = {"type": "repository", "name": repository, "requested": ["pull"], "granted": ["pull"], "denied": []}
        record("access", "granted", context, registry="registry", repository=repository, actions=[scope], detail={})
        count += 1
    elapsed = time.perf_counter() - started
    return {"records": count, "seconds": elapsed}


# --- parent -------------------------------------------------------------------------------------


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def bench_env(work: Path, database: str = PG_DB) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "TEST_"))}
    env.update(
        DATA_DIR=str(work / "data"),
        DATABASE_URL=PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{database}",
        SECRET_KEY="bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        AUDIT_HMAC_KEY=HMAC_KEY,
        LOG_LEVEL="WARNING",
        BOOTSTRAP_ON_MIGRATE="false",
        DJANGO_SETTINGS_MODULE="registryadmin.settings",
        BENCH_AUDIT_ROWS=str(ROWS),
    )
    return env


def run_child(step: str, env: dict[str, str], *args: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.audit_bench", "--child", step, *args]
    result = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def _rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def measured(command: list[str], env: dict[str, str], timeout: float, count_lines: bool) -> dict[str, Any]:
    """Run a command, polling its RSS every 0.5 s; stdout is counted (lines) and thrown away."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    counted = {"lines": 0, "bytes": 0, "tail": b""}

    def drain() -> None:
        assert process.stdout is not None
        while block := process.stdout.read(1 << 20):
            counted["lines"] += block.count(b"\n")
            counted["bytes"] += len(block)
            counted["tail"] = (counted["tail"] + block)[-2000:]

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    samples: list[int] = []
    timed_out = False
    while process.poll() is None:
        rss = _rss_kb(process.pid)
        if rss is not None:
            samples.append(rss)
        if time.perf_counter() - started > timeout:
            timed_out = True
            process.kill()
            break
        time.sleep(0.5)
    process.wait()
    reader.join(timeout=10)
    elapsed = time.perf_counter() - started
    stderr = process.stderr.read().decode(errors="replace")[-2000:] if process.stderr else ""
    mb = [s / 1024 for s in samples] or [0.0]
    quarter = max(1, len(mb) // 4)
    steady = mb[quarter:] or mb  # past start-up (imports, first chunk)
    result = {
        "seconds": round(elapsed, 1),
        "exit_code": process.returncode,
        "timed_out": timed_out,
        "rss_mb": {
            "samples": len(samples),
            "peak": round(max(mb), 1),
            "median": round(statistics.median(mb), 1),
            "last": round(mb[-1], 1),
            "first_quarter_peak": round(max(mb[:quarter]), 1),
            "last_quarter_peak": round(max(mb[-quarter:]), 1),
            "growth_after_startup": round(max(steady) - steady[0], 1),
            "every_10th_sample": [round(v) for v in mb[::10]][:60],
        },
        "stderr_tail": stderr.strip()[-500:],
        "stdout_tail": counted["tail"].decode(errors="replace").strip()[-300:] if not count_lines else "",
    }
    if count_lines:
        result["lines"] = counted["lines"]
        result["bytes"] = counted["bytes"]
    return result


def insert_rate(env: dict[str, str], processes: int) -> dict[str, Any]:
    start_at = time.time() + 5
    command = [sys.executable, "-m", "bench.audit_bench", "--child", "insert"]
    workers = [
        subprocess.Popen(
            [*command, str(start_at), str(INSERT_SECONDS), str(n)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(processes)
    ]
    results = []
    for worker in workers:
        out, _ = worker.communicate()
        if worker.returncode:
            raise RuntimeError(f"insert worker failed ({worker.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    total = sum(r["records"] for r in results)
    seconds = max(r["seconds"] for r in results)
    return {"processes": processes, "records": total, "seconds": round(seconds, 2), "records_per_s": total / seconds}


def main() -> int:
    import psycopg

    OUTPUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="audit-bench-"))
    env = bench_env(work)
    summary: dict[str, Any] = {"rows": ROWS, "started": datetime.now(UTC).isoformat(), "cpus": os.cpu_count()}
    began = time.perf_counter()
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {PG_DB}")
    try:
        _log(f"migrating {PG_DB}")
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
        _log(f"seeding {ROWS:,} records")
        summary["seed"] = run_child("seed", env)
        _log("searches and charts")
        queries = run_child("queries", env)
        summary["searches"], summary["charts"] = queries["searches"], queries["charts"]
        summary["insert"] = {}
        for processes in (2, 4):
            _log(f"insert rate, {processes} processes")
            summary["insert"][f"{processes}_processes"] = insert_rate(env, processes)
        _log("export_audit --format jsonl")
        export = measured(
            [sys.executable, "manage.py", "export_audit", "--format", "jsonl"], env, EXPORT_TIMEOUT, count_lines=True
        )
        export["rows_per_s"] = export["lines"] / export["seconds"] if export["seconds"] else None
        summary["export"] = export
        _log(f"export: {export['lines']:,} rows in {export['seconds']} s, peak RSS {export['rss_mb']['peak']} MB")
        _log("verify_audit")
        verify = measured([sys.executable, "manage.py", "verify_audit"], env, VERIFY_TIMEOUT, count_lines=False)
        checked = None
        if verify["stdout_tail"].startswith("intact:"):
            checked = int(verify["stdout_tail"].split()[1])
        verify["outcome"] = verify["stdout_tail"].split(":")[0] if verify["stdout_tail"] else "unfinished"
        verify["checked"] = checked
        verify["rows_per_s"] = checked / verify["seconds"] if checked else None
        summary["verify"] = verify
        _log(f"verify: {verify['stdout_tail'] or 'no result'} in {verify['seconds']} s")
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
        shutil.rmtree(work, ignore_errors=True)
    summary["total_seconds"] = round(time.perf_counter() - began, 1)
    summary["goals"] = goals(summary)
    (OUTPUT / "audit.json").write_text(json.dumps(summary, indent=2, default=str))
    print(table(summary))
    print(json.dumps(summary, indent=2, default=str))
    return 0


def goals(summary: dict[str, Any]) -> dict[str, Any]:
    searches = summary.get("searches", {})
    best_insert = max((r["records_per_s"] for r in summary.get("insert", {}).values()), default=0.0)
    export = summary.get("export", {})
    return {
        "search_p95_under_100ms": all(r["meets_goal"] for r in searches.values()),
        "slow_searches": sorted(name for name, r in searches.items() if not r["meets_goal"]),
        "insert_at_least_5000_per_s": best_insert >= GOAL_INSERT_RATE,
        "export_peak_rss_under_150mb": bool(export) and export["rss_mb"]["peak"] < GOAL_EXPORT_RSS_MB,
        "export_rss_flat": bool(export) and export["rss_mb"]["growth_after_startup"] < 20,
        "export_complete": bool(export) and not export["timed_out"] and export["exit_code"] == 0,
        "verify_intact": summary.get("verify", {}).get("outcome") == "intact",
    }


def table(summary: dict[str, Any]) -> str:
    lines = [f"audit bench: {summary['rows']:,} records, {summary['total_seconds']} s in all"]
    seed = summary["seed"]
    lines.append(f"  seed            {seed['seconds']['total_s']:>9} s  ({seed['rows_per_s']:,.0f} rows/s)")
    for name, r in summary["searches"].items():
        mark = "" if r["meets_goal"] else "  MISSES 100 ms"
        lines.append(f"  search {name:<22} p50 {r['p50_ms']:>8.1f} ms  p95 {r['p95_ms']:>8.1f} ms{mark}")
    for name, r in summary["charts"].items():
        lines.append(f"  chart {name:<23} p50 {r['p50_ms']:>8.1f} ms  p95 {r['p95_ms']:>8.1f} ms  ({r['source']})")
    for name, r in summary["insert"].items():
        lines.append(f"  insert {name:<22} {r['records_per_s']:>9,.0f} records/s")
    export, verify = summary["export"], summary["verify"]
    rate = f"{export['rows_per_s']:,.0f}" if export.get("rows_per_s") else "-"
    lines.append(
        f"  export jsonl     {export['seconds']:>9} s  {rate} rows/s  peak RSS {export['rss_mb']['peak']} MB"
        f"  growth {export['rss_mb']['growth_after_startup']} MB{'  (TIMED OUT)' if export['timed_out'] else ''}"
    )
    rate = f"{verify['rows_per_s']:,.0f}" if verify.get("rows_per_s") else "-"
    lines.append(
        f"  verify_audit     {verify['seconds']:>9} s  {rate} rows/s  peak RSS {verify['rss_mb']['peak']} MB"
        f"  {verify['outcome']}{'  (TIMED OUT)' if verify['timed_out'] else ''}"
    )
    lines.append(f"  goals: {json.dumps(summary['goals'])}")
    return "\n".join(lines)


def child_main(argv: list[str]) -> int:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    step = argv[0]
    if step == "seed":
        result = child_seed()
    elif step == "queries":
        result = child_queries()
    elif step == "insert":
        result = child_insert(float(argv[1]), float(argv[2]), int(argv[3]))
    else:
        raise SystemExit(f"unknown child step {step!r}")
    print(json.dumps(result, default=str), flush=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        sys.exit(child_main(sys.argv[2:]))
    sys.exit(main())
