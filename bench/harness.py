#!/usr/bin/env python3
"""callstate benchmark harness (run it through `bench/run`).

For each dataset: simulate 30 days with the benchmark scenario, ingest it with the release
binary, then answer the same questions three ways and check that the answers agree:

* in-process: `callstate-bench` (the query engine as a library, no HTTP);
* end-to-end: `callstate serve` over HTTP (keep-alive client in this process);
* DuckDB: hand-written SQL over the Parquet segments the log wrote (`duckdb_side` below),
  in its own process so its memory is measured on its own.

Each step's wall time and peak RSS (from wait4 or /proc/PID/status) is printed and written to
bench/RESULTS.md with the machine description. Nothing here is a test: CI never runs it.
"""

import argparse
import csv
import http.client
import json
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCENARIO_FILE = ROOT / "bench/scenarios/month.toml"
SCENARIO = tomllib.loads(SCENARIO_FILE.read_text())
SILENCE_US = 90_000_000
START = "2026-10-01T00:00:00Z"
END = "2026-10-31T00:00:00Z"
# Datasets: name → (devices per cluster, traffic scale); the scenario has two clusters, and
# the scale puts the 30 days at about 1M and 10M events.
DATASETS = {"1m": (2500, 0.027), "10m": (25000, 0.031)}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run(cmd, stdout=None):
    """Runs a command; returns (seconds, peak RSS bytes, stdout text)."""
    secs, rss, out, _ = run_cpu(cmd, stdout)
    return secs, rss, out


def run_cpu(cmd, stdout=None):
    """Like run, also returning the CPU seconds (user + system) the command used."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE if stdout is None else stdout)
    out = p.stdout.read().decode() if stdout is None else ""
    _, status, ru = os.wait4(p.pid, 0)
    secs = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed ({status}): {' '.join(map(str, cmd))}")
    return secs, ru.ru_maxrss * 1024, out, ru.ru_utime + ru.ru_stime


def proc_status_bytes(pid, field):
    """A size field of /proc/<pid>/status (VmRSS, VmHWM, RssAnon, RssFile) in bytes; 0 if absent."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def vm_hwm(pid):
    return proc_status_bytes(pid, "VmHWM")


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, round((len(s) - 1) * p))]


# ---------------------------------------------------------------------------------------------
# DuckDB: the same questions in hand-written SQL over the log's Parquet segments.
# ---------------------------------------------------------------------------------------------

SERVICE = "kind IN ('device_in_service', 'device_out_of_service')"


def duckdb_side(args):
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {os.cpu_count()}")
    # a year of events does not fit in memory: DuckDB spills beyond this
    con.execute("SET memory_limit = '12GB'")
    seg = str(Path(args.data) / "segments" / "seg-????????.parquet")
    F, T, AT = args.from_us, args.to_us, args.at_us
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    times = {}

    def timed(name, f):
        t = time.perf_counter()
        r = f()
        times[name] = time.perf_counter() - t
        return r

    # The log's events, sorted by device then time so that the zone maps of a device lookup
    # prune (what a DuckDB user would do).
    timed(
        "load_s",
        lambda: con.execute(
            f"""CREATE TABLE ev AS
            SELECT epoch_us(time) AS t, ingest_seq AS s, kind, cluster, device, node,
                   device_pool, cause, nodes, scope, target,
                   epoch_us(window_start) AS ws, epoch_us(window_end) AS we, source
            FROM read_parquet('{seg}') ORDER BY device, t, s"""
        ),
    )

    if not getattr(args, "windows", None):
        # 1. Device state at T for each pair: the last service event at or before T, unless its
        #    source had been silent for 90 s or more by then.
        pairs = list(csv.reader(open(args.pairs)))[1:]
        lat, states = [], []
        q_last = f"""SELECT kind, node, source FROM ev WHERE device = $1 AND {SERVICE} AND t <= $2
                     ORDER BY t DESC, s DESC LIMIT 1"""
        q_src = "SELECT max(t) FROM ev WHERE source = $1 AND t <= $2"
        for d, at in pairs:
            tus = int(at)
            t0 = time.perf_counter()
            row = con.execute(q_last, [d, tus]).fetchone()
            if row is None:
                st, node = "unknown", ""
            else:
                last = con.execute(q_src, [row[2], tus]).fetchone()[0]
                if tus - last >= SILENCE_US:
                    st, node = "unknown", ""
                elif row[0] == "device_in_service":
                    st, node = "in_service", row[1] or ""
                else:
                    st, node = "out_of_service", ""
            lat.append((time.perf_counter() - t0) * 1e3)
            states.append((d, at, st, node))
        times["state_p50_ms"] = pct(lat, 0.5)
        times["state_p99_ms"] = pct(lat, 0.99)
        write_csv(out / "state_pairs.csv", ["device", "at", "state", "node"], states)

        # 2. Fleet at AT: every device with a service event, same rule.
        fleet_sql = f"""
            WITH devs AS (SELECT DISTINCT device FROM ev WHERE {SERVICE}),
            last AS (
                SELECT device, kind, node, source FROM ev WHERE {SERVICE} AND t <= {AT}
                QUALIFY row_number() OVER (PARTITION BY device ORDER BY t DESC, s DESC) = 1),
            src AS (SELECT source, max(t) AS lt FROM ev WHERE t <= {AT} GROUP BY source)
            SELECT d.device,
                CASE WHEN l.kind IS NULL OR {AT} - src.lt >= {SILENCE_US} THEN 'unknown'
                     WHEN l.kind = 'device_in_service' THEN 'in_service'
                     ELSE 'out_of_service' END AS state,
                CASE WHEN l.kind = 'device_in_service' AND {AT} - src.lt < {SILENCE_US}
                     THEN coalesce(l.node, '') ELSE '' END AS node
            FROM devs d LEFT JOIN last l USING (device) LEFT JOIN src USING (source)
            ORDER BY d.device"""
        fleet = timed("fleet_s", lambda: con.execute(fleet_sql).fetchall())
        write_csv(out / "fleet.csv", ["device", "state", "node"], fleet)

    # 3. The state intervals of design.md §2-3, cut by the sources' silences and clipped to
    #    the window; then seconds per device and per pool, maintenance windows excluded.
    def intervals():
        con.execute(
            f"""CREATE TEMP TABLE svc AS
            SELECT device, cluster, t, s, source, cause, kind = 'device_in_service' AS ins,
                   CASE WHEN kind = 'device_in_service' THEN node END AS node, node AS raw_node,
                   last_value(device_pool IGNORE NULLS) OVER (PARTITION BY device ORDER BY t, s
                       ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS pool_sofar
            FROM ev WHERE {SERVICE}"""
        )
        # One interval per change of (state, node).
        con.execute(
            """CREATE TEMP TABLE ch AS
            SELECT * FROM (
                SELECT *, lag(ins) OVER w AS pins, lag(node) OVER w AS pnode,
                       row_number() OVER w AS rn
                FROM svc WINDOW w AS (PARTITION BY device ORDER BY t, s))
            WHERE rn = 1 OR ins <> pins OR node IS DISTINCT FROM pnode"""
        )
        con.execute(
            """CREATE TEMP TABLE final_pool AS
            SELECT device, pool_sofar AS pool FROM svc
            QUALIFY row_number() OVER (PARTITION BY device ORDER BY t DESC, s DESC) = 1"""
        )
        con.execute(
            """CREATE TEMP TABLE cfg AS
            SELECT device_pool AS pool, t, s, nodes[1] AS home FROM ev
            WHERE kind = 'device_pool_config' AND len(nodes) > 0"""
        )
        con.execute(
            """CREATE TEMP TABLE iv AS
            WITH x AS (
                SELECT c.device, c.cluster, c.source, c.ins, c.cause, c.t AS vf, c.s,
                       c.node,
                       coalesce(c.node, last_value(c.node IGNORE NULLS) OVER (
                           PARTITION BY c.device ORDER BY c.t, c.s
                           ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), c.raw_node)
                           AS last_node,
                       coalesce(c.pool_sofar, f.pool) AS pool,
                       coalesce(lead(c.t) OVER (PARTITION BY c.device ORDER BY c.t, c.s),
                                9223372036854775807) AS vt
                FROM ch c JOIN final_pool f USING (device)),
            first_cfg AS (SELECT pool, arg_min(home, t) AS home FROM cfg GROUP BY pool)
            SELECT row_number() OVER () AS id, x.*, coalesce(a.home, fc.home) AS home
            FROM x ASOF LEFT JOIN cfg a ON x.pool = a.pool AND x.vf >= a.t
            LEFT JOIN first_cfg fc ON x.pool = fc.pool"""
        )
        # Silences: from 90 s after an event of a source until its next event, when the gap
        # is longer than 90 s (open-ended after its last event).
        con.execute(
            f"""CREATE TEMP TABLE sil AS
            SELECT source, t + {SILENCE_US} AS ss, coalesce(nt, 9223372036854775807) AS se
            FROM (SELECT source, t, lead(t) OVER (PARTITION BY source ORDER BY t) AS nt FROM ev)
            WHERE nt IS NULL OR nt - t > {SILENCE_US}"""
        )
        # Pieces: the unknown parts (interval ∩ silence) and the rest of each interval.
        con.execute(
            """CREATE TEMP TABLE unk AS
            SELECT iv.id, greatest(iv.vf, sil.ss) AS a, least(iv.vt, sil.se) AS b
            FROM iv JOIN sil ON iv.source = sil.source AND sil.ss < iv.vt AND sil.se > iv.vf"""
        )
        con.execute(
            """CREATE TEMP TABLE pieces AS
            WITH known AS (
                SELECT iv.id, iv.vf AS a, coalesce(min(u.a), iv.vt) AS b
                FROM iv LEFT JOIN unk u USING (id) GROUP BY iv.id, iv.vf, iv.vt
                UNION ALL
                SELECT u.id, u.b AS a,
                       coalesce(lead(u.a) OVER (PARTITION BY u.id ORDER BY u.a), iv.vt) AS b
                FROM unk u JOIN iv USING (id)),
            p AS (
                SELECT id, a, b, CASE WHEN ins THEN 'in_service' ELSE 'out_of_service' END
                    AS state FROM known JOIN iv USING (id) WHERE a < b
                UNION ALL SELECT id, a, b, 'unknown' FROM unk WHERE a < b)
            SELECT row_number() OVER () AS pid, p.state, p.a, p.b, iv.device, iv.cluster,
                   iv.pool, iv.home, iv.last_node, iv.cause,
                   CASE WHEN p.state = 'in_service' THEN iv.node END AS node
            FROM p JOIN iv USING (id)"""
        )

    timed("intervals_s", intervals)


    def seconds(F=F, T=T):
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE per_device AS
            WITH cl AS (
                SELECT pid, state, greatest(a, {F}) AS a, least(b, {T}) AS b, device, cluster,
                       pool, home, last_node, node
                FROM pieces WHERE a < {T} AND b > {F}),
            mw AS (SELECT scope, target, ws, we FROM ev
                   WHERE kind = 'maintenance_window' AND ws IS NOT NULL AND we IS NOT NULL),
            ov AS (
                SELECT cl.pid, greatest(cl.a, mw.ws) AS xs, least(cl.b, mw.we) AS xe
                FROM cl JOIN mw ON mw.ws < cl.b AND mw.we > cl.a AND (
                    (mw.scope = 'cluster' AND mw.target = cl.cluster)
                    OR (mw.scope = 'device' AND mw.target = cl.device)
                    OR (mw.scope = 'device_pool' AND mw.target = cl.pool)
                    OR (mw.scope = 'node' AND (mw.target = cl.node OR mw.target = cl.last_node
                                               OR mw.target = cl.home)))),
            isl AS (
                SELECT pid, xs, xe, sum(CASE WHEN pm IS NULL OR xs > pm THEN 1 ELSE 0 END)
                    OVER (PARTITION BY pid ORDER BY xs, xe) AS g
                FROM (SELECT *, max(xe) OVER (PARTITION BY pid ORDER BY xs, xe
                          ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS pm FROM ov)),
            il AS (SELECT pid, g, min(xs) AS s, max(xe) AS e FROM isl GROUP BY pid, g),
            excl AS (SELECT pid, sum(e - s) AS x FROM il GROUP BY pid),
            p AS (SELECT cl.*, coalesce(excl.x, 0) AS x FROM cl LEFT JOIN excl USING (pid)),
            devs AS (SELECT device, pool FROM final_pool),
            agg AS (
                SELECT device,
                    sum(CASE WHEN state = 'in_service' THEN b - a - x ELSE 0 END) AS ins,
                    sum(CASE WHEN state = 'out_of_service' THEN b - a - x ELSE 0 END) AS oos,
                    sum(CASE WHEN state = 'unknown' THEN b - a - x ELSE 0 END) AS unk,
                    sum(x) AS excl, sum(b - a) AS known
                FROM p GROUP BY device),
            -- outages: maximal runs of out-of-service time outside the islands of excluded
            -- time, joined across adjacent pieces
            ob AS (
                SELECT o.pid, o.device, o.a, o.b, il.s, il.e,
                       lag(il.e) OVER (PARTITION BY o.pid ORDER BY il.s) AS pe
                FROM (SELECT pid, device, a, b FROM cl WHERE state = 'out_of_service') o
                LEFT JOIN il USING (pid)),
            free AS (
                SELECT device, coalesce(pe, a) AS fs, s AS fe FROM ob WHERE s IS NOT NULL
                UNION ALL
                SELECT device, coalesce(max(e), min(a)) AS fs, min(b) AS fe FROM ob
                GROUP BY pid, device),
            fr AS (
                SELECT device, fs, fe, CASE WHEN lag(fe) OVER (PARTITION BY device ORDER BY fs)
                    = fs THEN 0 ELSE 1 END AS new
                FROM free WHERE fs < fe),
            runs AS (
                SELECT device, max(fe) - min(fs) AS len FROM (
                    SELECT device, fs, fe,
                           sum(new) OVER (PARTITION BY device ORDER BY fs) AS r FROM fr)
                GROUP BY device, r),
            outs AS (SELECT device, count(*) AS outages, max(len) AS longest FROM runs
                     GROUP BY device)
            SELECT d.device, coalesce(d.pool, '(none)') AS pool,
                coalesce(ins, 0) / 1e6 AS in_service_s, coalesce(oos, 0) / 1e6 AS oos_s,
                (coalesce(unk, 0) + {T - F} - coalesce(known, 0)) / 1e6 AS unknown_s,
                coalesce(excl, 0) / 1e6 AS excluded_s, coalesce(outages, 0) AS outages,
                coalesce(longest, 0) / 1e6 AS longest_s
            FROM devs d LEFT JOIN agg USING (device) LEFT JOIN outs USING (device)"""
        )

    if getattr(args, "windows", None):
        # the history benchmark: SLA by pool for each calendar month, nothing else
        months = [tuple(map(int, w.split(":"))) for w in args.windows.split(",")]
        rows = []

        def by_month():
            for f, t in months:
                seconds(f, t)
                rows.extend((f, t, *r) for r in con.execute(
                    """SELECT pool, count(*), sum(in_service_s), sum(oos_s)
                       FROM per_device GROUP BY pool ORDER BY pool""").fetchall())

        timed("sla_months_s", by_month)
        times["sla_months_cold_s"] = times["load_s"] + times["intervals_s"] + times["sla_months_s"]
        times["rows"] = len(rows)
        print(json.dumps(times))
        return

    timed("availability_seconds_s", seconds)
    by_device = timed(
        "availability_device_fetch_s",
        lambda: con.execute(
            """SELECT device, 1, in_service_s, oos_s, unknown_s, excluded_s, outages, longest_s
               FROM per_device ORDER BY device"""
        ).fetchall(),
    )
    by_pool = timed(
        "availability_pool_fetch_s",
        lambda: con.execute(
            """SELECT pool, count(*), sum(in_service_s), sum(oos_s), sum(unknown_s),
                      sum(excluded_s), sum(outages), max(longest_s)
               FROM per_device GROUP BY pool ORDER BY pool"""
        ).fetchall(),
    )
    header = ["group", "devices", "in_service_s", "out_of_service_s", "unknown_s",
              "excluded_s", "outages", "longest_outage_s"]
    write_csv(out / "availability_device.csv", header, by_device)
    write_csv(out / "availability_pool.csv", header, by_pool)

    # 4. Incidents: outage starts (re-home blips excluded) per node, or per cluster for
    #    CTIManager failures, 60 s apart at most, five devices or more.
    def incidents():
        return con.execute(
            f"""WITH o AS (
                SELECT p.*, lag(state) OVER w AS pstate, lag(b) OVER w AS pb
                FROM pieces p WINDOW w AS (PARTITION BY device ORDER BY a, pid)),
            starts AS (
                SELECT cluster, device, a AS start, cause,
                    CASE WHEN cause = 'ctimanager_failure' THEN 'ctimanager' ELSE 'node' END
                        AS scope,
                    CASE WHEN cause = 'ctimanager_failure' THEN '' ELSE last_node END AS target
                FROM o WHERE state = 'out_of_service'
                    AND (pstate IS NULL OR pstate <> 'out_of_service' OR pb <> a)
                    AND cause IS DISTINCT FROM 'rehome'
                    AND (cause = 'ctimanager_failure' OR last_node IS NOT NULL)),
            g AS (
                SELECT *, sum(CASE WHEN prev IS NULL OR start - prev > 60000000 THEN 1 ELSE 0
                    END) OVER (PARTITION BY cluster, scope, target ORDER BY start, device) AS k
                FROM (SELECT *, lag(start) OVER (PARTITION BY cluster, scope, target
                          ORDER BY start, device) AS prev FROM starts))
            SELECT cluster, scope, target, min(start) AS start, count(DISTINCT device) AS n
            FROM g GROUP BY cluster, scope, target, k
            HAVING count(DISTINCT device) >= 5 AND min(start) >= {F} AND min(start) < {T}
            ORDER BY start, cluster, scope, target"""
        ).fetchall()

    found = timed("incidents_s", incidents)
    write_csv(
        out / "incidents.csv",
        ["cluster", "scope", "target", "start", "devices_affected"],
        [(c, s, t, us_to_rfc3339(st), n) for c, s, t, st, n in found],
    )
    times["sla_pool_cold_s"] = (
        times["load_s"] + times["intervals_s"] + times["availability_seconds_s"]
        + times["availability_pool_fetch_s"]
    )
    times["availability_device_s"] = (
        times["intervals_s"] + times["availability_seconds_s"]
        + times["availability_device_fetch_s"]
    )
    times["availability_pool_s"] = (
        times["intervals_s"] + times["availability_seconds_s"]
        + times["availability_pool_fetch_s"]
    )
    times["duckdb_version"] = duckdb.__version__
    print(json.dumps(times))


def us_to_rfc3339(us):
    import datetime

    t = datetime.datetime.fromtimestamp(us / 1e6, tz=datetime.timezone.utc)
    frac = us % 1_000_000
    base = t.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{frac:06d}Z".replace(".000000Z", "Z")


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


# ---------------------------------------------------------------------------------------------
# Agreement
# ---------------------------------------------------------------------------------------------


def read_csv(path):
    with open(path) as f:
        return list(csv.reader(f))[1:]


def close(a, b):
    a, b = float(a), float(b)
    return abs(a - b) <= 1e-6 * max(1.0, abs(a), abs(b))


def agree(name, ours, theirs, numeric_from=None, normalize=None):
    """Row-by-row equality (numbers within 1e-6 relative); returns a list of problems."""
    a, b = read_csv(ours), read_csv(theirs)
    if normalize:
        a, b = [normalize(r) for r in a], [normalize(r) for r in b]
    problems = []
    if len(a) != len(b):
        problems.append(f"{name}: {len(a)} rows vs {len(b)} rows")
    for ra, rb in zip(a, b):
        same = len(ra) == len(rb) and all(
            (close(x, y) if numeric_from is not None and i >= numeric_from else x == y)
            for i, (x, y) in enumerate(zip(ra, rb))
        )
        if not same:
            problems.append(f"{name}: {ra} vs {rb}")
            if len(problems) > 5:
                break
    return problems


def compare(ours, theirs):
    problems = []
    problems += agree("state", ours / "state_pairs.csv", theirs / "state_pairs.csv")
    problems += agree("fleet", ours / "fleet.csv", theirs / "fleet.csv")
    problems += agree("availability by device", ours / "availability_device.csv",
                      theirs / "availability_device.csv", numeric_from=1)
    problems += agree("availability by pool", ours / "availability_pool.csv",
                      theirs / "availability_pool.csv", numeric_from=1)
    problems += agree("incidents", ours / "incidents.csv", theirs / "incidents.csv")
    return problems


# ---------------------------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port, p):
    """Waits until the server process `p` on `port` answers /readyz with 200."""
    while True:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
            c.request("GET", "/readyz")
            r = c.getresponse()
            r.read()
            if r.status == 200:
                return
        except OSError:
            pass
        if p.poll() is not None:
            raise SystemExit("callstate serve exited")
        time.sleep(0.02)


def http_side(binary, data, pairs, at, frm, to, out):
    port = free_port()
    t0 = time.perf_counter()
    p = subprocess.Popen(
        [binary, "serve", "--data", str(data), "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(port, p)
        res = {"ready_s": time.perf_counter() - t0}
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

        def get(path, **q):
            url = path + ("?" + urllib.parse.urlencode(q) if q else "")
            t = time.perf_counter()
            conn.request("GET", url)
            r = conn.getresponse()
            body = r.read()
            secs = time.perf_counter() - t
            if r.status != 200:
                raise SystemExit(f"GET {url}: {r.status} {body[:300]!r}")
            return secs, json.loads(body)

        # The first question derives the log's state (cached per log version after that).
        res["first_sla_pool_s"], _ = get("/api/v1/sla", **{"from": frm, "to": to,
                                                           "group_by": "device_pool"})
        res["first_question_s"] = res["first_sla_pool_s"]
        lat, states = [], []
        for d, t in pairs:
            secs, body = get(f"/api/v1/devices/{urllib.parse.quote(d)}/state", at=t)
            lat.append(secs * 1e3)
            states.append((d, body["state"], body["node"] or ""))
        res["state_p50_ms"] = pct(lat, 0.5)
        res["state_p99_ms"] = pct(lat, 0.99)
        res["fleet_s"], fleet = get("/api/v1/state", at=at)
        res["availability_device_s"], by_device = get(
            "/api/v1/availability", **{"from": frm, "to": to, "group_by": "device"})
        res["availability_pool_s"], by_pool = get(
            "/api/v1/availability", **{"from": frm, "to": to, "group_by": "device_pool"})
        res["sla_pool_s"], _ = get("/api/v1/sla", **{"from": frm, "to": to,
                                                      "group_by": "device_pool"})
        res["incidents_s"], incidents = get("/api/v1/incidents", **{"from": frm, "to": to})
        res["rss_peak_bytes"] = vm_hwm(p.pid)
        # Over HTTP the answers must be the in-process ones.
        problems = []
        mine = {(d, s, n) for d, _, s, n in read_csv(out / "state_pairs.csv")}
        if set(states) - mine:
            problems.append(f"HTTP state differs: {sorted(set(states) - mine)[:3]}")
        if len(fleet["devices"]) != len(read_csv(out / "fleet.csv")):
            problems.append("HTTP fleet size differs")
        pools = {r[0]: r for r in read_csv(out / "availability_pool.csv")}
        for g in by_pool:
            if not close(g["in_service_s"], pools[g["group_key"]][2]):
                problems.append(f"HTTP availability differs for {g['group_key']}")
        if len(by_device) != len(read_csv(out / "availability_device.csv")):
            problems.append("HTTP availability by device: row count differs")
        if len(incidents) != len(read_csv(out / "incidents.csv")):
            problems.append("HTTP incidents differ")
        res["problems"] = problems
        return res
    finally:
        p.terminate()
        p.wait()


# ---------------------------------------------------------------------------------------------
# Live: the same server answering while a writer keeps posting (quiet vs live)
# ---------------------------------------------------------------------------------------------

LIVE_BASE = "2026-10-31T00:00:00Z"  # the writer's events continue the month from here


def live_devices(data, path):
    """Each device's latest in-service report (what the writer's flips and calls use)."""
    import duckdb

    rows = duckdb.sql(
        f"""SELECT device, arg_max(cluster, time), arg_max(node, time),
                   arg_max(device_pool, time), arg_max(device_type, time)
            FROM read_parquet('{data}/segments/seg-????????.parquet')
            WHERE kind = 'device_in_service' GROUP BY device ORDER BY device"""
    ).fetchall()
    write_csv(path, ["device", "cluster", "node", "device_pool", "device_type"], rows)
    return len(rows)


def ingest_range(data):
    import duckdb

    lo, hi = duckdb.sql(
        f"""SELECT epoch_us(min(ingest_time)), epoch_us(max(ingest_time))
            FROM read_parquet('{data}/segments/seg-????????.parquet')"""
    ).fetchall()[0]
    return lo, hi


def writer_main(args):
    """(internal) A bridge-like writer: posts heartbeats, device flips, calls and a few late
    events at `rate` events/s (0: as fast as the server takes them) for `seconds`, with event
    times continuing the month; measures, for one flip a second, the time from the ack to the
    flip being visible in `/devices/{d}/state`. Prints its figures as JSON."""
    devices = read_csv(args.devices)
    rnd = random.Random(args.seed)
    base = iso_us(LIVE_BASE)
    clusters = sorted({d[1] for d in devices})
    sources = {c: f"bench-live-{c.lower()}-{args.seed}" for c in clusters}
    seqs = {s: 0 for s in sources.values()}
    state = {}  # device → in service?
    open_calls = []
    conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=120)
    probe = http.client.HTTPConnection("127.0.0.1", args.port, timeout=120)
    t0 = time.perf_counter()
    call_n = 0

    q = json.dumps  # device, node and pool names quoted once, not per event
    quoted = {d[0]: tuple(q(x) for x in d) for d in devices}
    qsrc = {c: q(s) for c, s in sources.items()}
    qcl = {c: q(c) for c in clusters}

    def ev(cluster, ts, kind, rest=""):
        """One NDJSON line: `ts` an RFC 3339 time, `rest` the kind's fields (`,"k":v...`)."""
        src = sources[cluster]
        seqs[src] += 1
        return (f'{{"source":{qsrc[cluster]},"seq":{seqs[src]},"time":"{ts}",'
                f'"cluster":{qcl[cluster]},"kind":"{kind}"{rest}}}')

    def flip(d, ts):
        dev, cluster, node, pool, dtype = d
        qd, _, qn, qp, qt = quoted[dev]
        up = not state.get(dev, True)
        state[dev] = up
        if up:
            return ev(cluster, ts, "device_in_service",
                      f',"device":{qd},"device_type":{qt if dtype else q("phone")},'
                      f'"node":{qn},"device_pool":{qp}'), up
        return ev(cluster, ts, "device_out_of_service",
                  f',"device":{qd},"cause":"unregistered","node":{qn}'), up

    # the writer's bridges were up for the 10 minutes before (heartbeats every 30 s), so that
    # its late events fall inside their activity, as a running bridge's do
    warm = [ev(c, us_to_rfc3339(base - k * 30_000_000), "collector_heartbeat")
            for k in range(20, 0, -1) for c in clusters]
    post_path = "/api/v1/events" + ("?wait=durable" if args.wait == "durable" else "")
    conn.request("POST", "/api/v1/events", ("\n".join(warm) + "\n").encode(),
                 {"Content-Type": "application/x-ndjson"})
    conn.getresponse().read()
    sent = accepted = posts = 0
    fresh_ms, post_ms, not_visible = [], [], []
    tick = 0.1 if args.rate else 0.0
    per_tick = int(args.rate * tick) if args.rate else args.batch
    next_tick = time.perf_counter()
    last_probe = 0.0
    while True:
        now = time.perf_counter()
        elapsed = now - t0
        if elapsed >= args.seconds:
            break
        if tick:
            if now < next_tick:
                time.sleep(next_tick - now)
            next_tick += tick
        t_us = base + int((time.perf_counter() - t0) * 1e6)
        ts, late_ts = us_to_rfc3339(t_us), us_to_rfc3339(t_us - 300_000_000)
        lines = [ev(c, ts, "collector_heartbeat") for c in clusters]
        marker = None
        flipped = set()  # one flip per device and batch, so that the marker's state holds
        while len(lines) < per_tick:
            r = rnd.random()
            d = devices[rnd.randrange(len(devices))]
            if r < 0.21 and d[0] in flipped:
                continue
            if r < 0.21:
                flipped.add(d[0])
            if r < 0.2:
                line, up = flip(d, ts)
                lines.append(line)
                if marker is None:
                    marker = (d[0], t_us, "in_service" if up else "out_of_service")
            elif r < 0.21:
                # a late event: a flip 5 minutes back
                line, _ = flip(d, late_ts)
                lines.append(line)
            elif r < 0.6 or not open_calls:
                call_n += 1
                cid = f"live-{args.seed}-{call_n}"
                open_calls.append((cid, d))
                lines.append(ev(d[1], ts, "call_started",
                                f',"call_id":"{cid}","device":{quoted[d[0]][0]}'))
            else:
                cid, cd = open_calls.pop(rnd.randrange(len(open_calls)))
                lines.append(ev(cd[1], ts, "call_ended",
                                f',"call_id":"{cid}","device":{quoted[cd[0]][0]},'
                                f'"cause":"normal"'))
        body = ("\n".join(lines) + "\n").encode()
        t = time.perf_counter()
        conn.request("POST", post_path, body, {"Content-Type": "application/x-ndjson"})
        r = conn.getresponse()
        answer = r.read()
        acked = time.perf_counter()
        post_ms.append((acked - t) * 1e3)
        posts += 1
        sent += len(lines)
        if r.status != 200:
            log(f"writer: POST answered {r.status} {answer[:200]!r}")
            continue
        accepted += json.loads(answer)["accepted"]
        # freshness: once a second, the ack → visible time of this batch's first flip
        if marker and acked - last_probe >= 1.0:
            last_probe = acked
            dev, at, want = marker
            q = urllib.parse.urlencode({"at": us_to_rfc3339(at)})
            while True:
                probe.request("GET", f"/api/v1/devices/{urllib.parse.quote(dev)}/state?{q}")
                pr = probe.getresponse()
                got = json.loads(pr.read())
                if got.get("state") == want:
                    fresh_ms.append((time.perf_counter() - acked) * 1e3)
                    break
                if time.perf_counter() - acked > 5:
                    not_visible.append(f"{dev} at {us_to_rfc3339(at)}: {got}")
                    break
                time.sleep(0.001)
    secs = time.perf_counter() - t0
    print(json.dumps({
        "rate_asked": args.rate, "seconds": secs, "sent": sent, "accepted": accepted,
        "posts": posts, "rate": sent / secs,
        "post_p50_ms": pct(post_ms, 0.5) if post_ms else None,
        "post_p99_ms": pct(post_ms, 0.99) if post_ms else None,
        "fresh_p50_ms": pct(fresh_ms, 0.5) if fresh_ms else None,
        "fresh_p99_ms": pct(fresh_ms, 0.99) if fresh_ms else None,
        "fresh_samples": len(fresh_ms),
        "not_visible_after_5s": not_visible[:5], "not_visible": len(not_visible),
    }))


def vm_rss(pid):
    return proc_status_bytes(pid, "VmRSS")


LIVE_QUESTIONS = ["state", "state_known_at", "fleet", "sla_7d_pool", "incidents_30d"]
# the heavy questions, asked one at a time by a single client in the "solo" phases
SOLO_QUESTIONS = ["fleet", "sla_7d_pool", "incidents_30d"]
SOLO_SECONDS = 20


def readers(port, pairs, at, known_at, seconds, questions=LIVE_QUESTIONS):
    """One reader process per question (processes, not threads: a thread waiting for
    Python's GIL would add up to its 5 ms switch interval to the latency measured), each
    asking its question again and again for `seconds`; returns the latencies (ms) per
    question and the errors."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=reader_process,
                         args=(q, k, port, pairs, at, known_at, seconds, out))
             for k, q in enumerate(questions)]
    for p in procs:
        p.start()
    lat, errors = {}, []
    for _ in procs:
        q, ms, errs = out.get()
        lat[q] = ms
        errors.extend(errs)
    for p in procs:
        p.join()
    return lat, errors


def reader_process(q, k, port, pairs, at, known_at, seconds, out):
    """(in a reader process) asks question `q` until `seconds` are over; puts
    `(q, latencies in ms, errors)` on `out`."""
    rnd = random.Random(k)
    end = time.perf_counter() + seconds
    live_end = us_to_rfc3339(iso_us(LIVE_BASE) + 86400 * 1_000_000)
    week = us_to_rfc3339(iso_us(LIVE_BASE) - 7 * 86400 * 1_000_000)

    def path():
        if q in ("state", "state_known_at"):
            d, t = pairs[rnd.randrange(len(pairs))]
            p = {"at": t}
            if q == "state_known_at":
                p["known_at"] = known_at
            return f"/api/v1/devices/{urllib.parse.quote(d)}/state?" + urllib.parse.urlencode(p)
        if q == "fleet":
            return "/api/v1/state?" + urllib.parse.urlencode({"at": at})
        if q == "sla_7d_pool":
            return "/api/v1/sla?" + urllib.parse.urlencode(
                {"from": week, "to": live_end, "group_by": "device_pool"})
        return "/api/v1/incidents?" + urllib.parse.urlencode({"from": START, "to": live_end})

    ms, errors = [], []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    while time.perf_counter() < end:
        u = path()
        t = time.perf_counter()
        try:
            conn.request("GET", u)
            r = conn.getresponse()
            r.read()
        except OSError as e:
            errors.append(f"{q}: {e}")
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
            continue
        if r.status != 200:
            errors.append(f"{q}: {r.status}")
            time.sleep(0.05)
            continue
        ms.append((time.perf_counter() - t) * 1e3)
    out.put((q, ms, errors))


def summarize(lat):
    return {q: {"n": len(v), "p50_ms": pct(v, 0.5) if v else None,
                "p99_ms": pct(v, 0.99) if v else None} for q, v in lat.items()}


def live_side(binary, d, data, pairs, at, seconds, rates, quiet_seconds, max_seconds, seed):
    live_log = d / "live-log"
    shutil.rmtree(live_log, ignore_errors=True)
    shutil.copytree(data, live_log)
    devices_csv = d / "live-devices.csv"
    live_devices(data, devices_csv)
    lo, hi = ingest_range(data)
    known_at = us_to_rfc3339((lo + hi) // 2)
    port = free_port()
    t0 = time.perf_counter()
    p = subprocess.Popen(
        [binary, "serve", "--data", str(live_log), "--listen", f"127.0.0.1:{port}",
         "--max-concurrent-per-client", "16", "--max-concurrent-queries", "16"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    res = {"known_at": known_at, "phases": {}}
    try:
        wait_ready(port, p)
        res["ready_s"] = time.perf_counter() - t0
        res["rss_start_bytes"] = vm_rss(p.pid)
        log(f"[live] quiet, {quiet_seconds} s")
        lat, errors = readers(port, pairs, at, known_at, quiet_seconds)
        res["phases"]["quiet"] = {"readers": summarize(lat), "errors": errors[:10],
                                  "rss_bytes": vm_rss(p.pid)}
        for rate in rates:
            label = f"{rate:,}/s" if rate else "as fast as taken (wait=durable)"
            secs = seconds if rate else max_seconds
            log(f"[live] writer at {label}, {secs} s, with readers")
            w = subprocess.Popen(
                [sys.executable, __file__, "writer", "--port", str(port), "--rate", str(rate),
                 "--seconds", str(secs), "--devices", str(devices_csv), "--seed",
                 str(seed + rate)] + ([] if rate else ["--wait", "durable"]),
                stdout=subprocess.PIPE)
            lat, errors = readers(port, pairs, at, known_at, secs)
            out = w.stdout.read().decode()
            if w.wait() != 0:
                raise SystemExit("the live writer failed")
            res["phases"][label] = {"writer": json.loads(out), "readers": summarize(lat),
                                    "errors": errors[:10], "rss_bytes": vm_rss(p.pid)}
            log(json.dumps(res["phases"][label]))
        # one heavy question at a time, by one client: what events arriving cost, apart
        # from five readers sharing two cores
        res["solo"] = {}
        for rate in (0, 10_000):
            label = f"{rate:,}/s" if rate else "quiet"
            log(f"[live] one heavy question at a time, {label}")
            w = rate and subprocess.Popen(
                [sys.executable, __file__, "writer", "--port", str(port), "--rate", str(rate),
                 "--seconds", str(SOLO_SECONDS * len(SOLO_QUESTIONS)), "--devices",
                 str(devices_csv), "--seed", str(seed + rate + 1)], stdout=subprocess.PIPE)
            lat = {}
            for q in SOLO_QUESTIONS:
                one, errors = readers(port, pairs, at, known_at, SOLO_SECONDS, [q])
                lat.update(one)
            if w:
                out = w.stdout.read().decode()
                if w.wait() != 0:
                    raise SystemExit("the live writer failed")
            res["solo"][label] = {"readers": summarize(lat),
                                  "writer": json.loads(out) if w else None}
        res["rss_end_bytes"] = vm_rss(p.pid)
        res["rss_peak_bytes"] = vm_hwm(p.pid)
        return res
    finally:
        p.terminate()
        p.wait()


def latency_row(label, summaries):
    """A table row: `label`, then p50 / p99 (samples) of each summary."""
    cells = ["-" if r["p50_ms"] is None else
             f"{r['p50_ms']:,.2f} / {r['p99_ms']:,.2f} ms ({r['n']:,})" for r in summaries]
    return f"| {label} | " + " | ".join(cells) + " |"


def live_report(name, live):
    phases = live["phases"]
    names = list(phases)
    q = phases["quiet"]["readers"]
    lines = [
        f"## Live: {name} while events arrive",
        "",
        "`callstate serve` over a copy of the dataset's log. Readers (one process per question,"
        " each asking again as soon as answered, over HTTP keep-alive: five closed-loop"
        " clients, so the two cores are always busy) run alone (quiet), then"
        " next to a writer process that posts NDJSON batches every 100 ms to"
        " `POST /api/v1/events` (heartbeats, device flips, call starts and ends, 1% flips 5"
        " minutes late; event times continue the month from 2026-10-31), then next to the"
        " writer posting 5,000-event batches as fast as they are taken, answered at durability"
        " (`?wait=durable`, as a bulk loader would; the other phases' POSTs are answered once"
        " their events are visible). All on the same 2"
        " cores. State of a device at T: the benchmark's random device/instant pairs; known_at:"
        f" {live['known_at']} (half-way through the ingest); fleet at T: all devices;"
        " SLA: 7 days by pool; incidents: 30 days.",
        "",
        "| question, p50 / p99 | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    labels = {"state": "state of a device at T", "state_known_at": "state at T, known_at",
              "fleet": "fleet snapshot at T", "sla_7d_pool": "7-day SLA by pool",
              "incidents_30d": "incidents, 30 days"}
    for k, label in labels.items():
        lines.append(latency_row(label, [phases[n]["readers"][k] for n in names]))
    lines.append("")
    lines.append("| writer | achieved rate | events accepted | POST p50 / p99 | ack → visible p50 / p99 (samples) | server RSS after |")
    lines.append("|---|---|---|---|---|---|")
    for n in names[1:]:
        w = phases[n]["writer"]
        lines.append(
            f"| {n} | {w['rate']:,.0f} events/s | {w['accepted']:,} | "
            f"{w['post_p50_ms']:,.1f} / {w['post_p99_ms']:,.1f} ms | "
            f"{w['fresh_p50_ms'] or 0:,.2f} / {w['fresh_p99_ms'] or 0:,.2f} ms ({w['fresh_samples']}"
            f"{', ' + str(w['not_visible']) + ' not visible after 5 s' if w['not_visible'] else ''}) | "
            f"{mb(phases[n]['rss_bytes'])} |")
    solo = live.get("solo")
    if solo:
        lines += [
            "",
            f"One heavy question at a time ({SOLO_SECONDS} s each, one client, nothing else"
            " reading), quiet and next to the writer at 10,000 events/s: what events arriving"
            " cost apart from the readers above sharing two cores.",
            "",
            "| question, one client, p50 / p99 | " + " | ".join(solo) + " |",
            "|---|" + "---|" * len(solo),
        ]
        for k in SOLO_QUESTIONS:
            lines.append(latency_row(labels[k], [solo[n]["readers"][k] for n in solo]))
        for n in solo:
            w = solo[n]["writer"]
            if w:
                lines.append(f"\nWriter in the {n} row: {w['rate']:,.0f} events/s achieved; ack →"
                             f" visible p50 {w['fresh_p50_ms'] or 0:,.2f} ms, p99"
                             f" {w['fresh_p99_ms'] or 0:,.2f} ms.")
    errs = {n: phases[n]["errors"] for n in names if phases[n]["errors"]}
    lines += [
        "",
        f"Server: ready {ms(live['ready_s'])} after start; RSS {mb(live['rss_start_bytes'])} at"
        f" start, {mb(phases['quiet']['rss_bytes'])} after the quiet readers,"
        f" {mb(live['rss_end_bytes'])} at the end (peak {mb(live['rss_peak_bytes'])}).",
        f"Reader errors: {json.dumps(errs) if errs else 'none'}.",
        "",
    ]
    return lines


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------


def machine():
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem = int(line.split()[1]) * 1024
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem / 2**30, 1),
        "kernel": platform.release(),
        "rustc": rustc,
        "python": platform.python_version(),
    }


def dataset(name, devices_per_cluster, scale, work, binary, seed, ingest_runs):
    d = work / name
    d.mkdir(parents=True, exist_ok=True)
    events = d / "events.ndjson"
    scenario = d / "scenario.toml"
    text = SCENARIO_FILE.read_text().replace("scale = 0.027", f"scale = {scale}")
    if not events.exists() or not scenario.exists() or scenario.read_text() != text:
        log(f"[{name}] simulating 30 days, {2 * devices_per_cluster} devices")
        scenario.write_text(text)
        tmp = d / "events.ndjson.tmp"
        run([binary, "simulate", "--scenario", str(scenario),
             "--devices", str(devices_per_cluster), "--seed", str(seed),
             "--out", str(tmp)], stdout=subprocess.DEVNULL)
        tmp.rename(events)
    lines = sum(1 for _ in open(events, "rb"))
    data = d / "log"
    # Ingest is timed several times into a fresh log (this machine's timings vary from run
    # to run); the median run is reported, with the range. The log of the last run is kept.
    runs = []
    if ingest_runs == 0 and not (data / "MANIFEST").exists() and not (data / "segments").exists():
        ingest_runs = 1
    for n in range(ingest_runs):
        shutil.rmtree(data, ignore_errors=True)
        subprocess.run(["sync"], check=False)
        log(f"[{name}] ingesting {lines} events (run {n + 1} of {ingest_runs})")
        secs, rss, _, cpu = run_cpu([binary, "ingest", "file", str(events), "--data", str(data)],
                                    stdout=subprocess.DEVNULL)
        runs.append({"s": secs, "rss": rss, "cpu_s": cpu})
    # What the ingest left unrolled (less than one segment) becomes a segment now.
    roll_s, _, _ = run([binary, "log", "roll", "--data", str(data)], stdout=subprocess.DEVNULL)
    stats = json.loads(run([binary, "log", "stats", "--data", str(data)])[2])
    runs.sort(key=lambda r: r["s"])
    ingest = {"runs": runs, "median": runs[len(runs) // 2] if runs else None, "roll_s": roll_s}
    return d, data, lines, stats, ingest


def make_pairs(d, data, n, seed):
    import duckdb

    devices = [r[0] for r in duckdb.sql(
        f"""SELECT DISTINCT device FROM read_parquet('{data}/segments/seg-????????.parquet')
            WHERE {SERVICE} ORDER BY device""").fetchall()]
    rnd = random.Random(seed)
    from_us = iso_us(START)
    to_us = iso_us(END)
    # Half the instants anywhere in the 30 days, half within an hour after a fault of the
    # scenario, where devices are out of service, failed over or unknown.
    faults = [from_us + duration_us(f["at"]) for f in SCENARIO.get("faults", [])]
    pairs = []
    for k in range(n):
        if k % 2 == 0 or not faults:
            t = rnd.randrange(from_us, to_us)
        else:
            t = rnd.choice(faults) + rnd.randrange(0, 3600 * 1_000_000)
        pairs.append((rnd.choice(devices), t))
    path = d / "pairs.csv"
    write_csv(path, ["device", "at"], [(dv, us_to_rfc3339(t)) for dv, t in pairs])
    return path, pairs, devices


def duration_us(text):
    """`2d10h30m`-style durations of the scenario file, in µs."""
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    total, num = 0, ""
    for ch in text:
        if ch.isdigit():
            num += ch
        else:
            total += int(num) * units[ch]
            num = ""
    return total * 1_000_000


def iso_us(text):
    import datetime

    t = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(t.timestamp()) * 1_000_000 + t.microsecond


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd")
    dk = sub.add_parser("duckdb", help="(internal) the DuckDB side of one dataset")
    for a in ("--data", "--pairs", "--out"):
        dk.add_argument(a, required=True)
    for a in ("--from-us", "--to-us", "--at-us"):
        dk.add_argument(a, type=int, required=True)
    dk.add_argument("--windows", help="from:to,... (µs): SLA by pool per window only")
    wr = sub.add_parser("writer", help="(internal) the live phase's writer")
    wr.add_argument("--port", type=int, required=True)
    wr.add_argument("--rate", type=int, required=True)
    wr.add_argument("--seconds", type=float, required=True)
    wr.add_argument("--devices", required=True)
    wr.add_argument("--seed", type=int, default=1)
    wr.add_argument("--wait", choices=["visible", "durable"], default="visible",
                    help="when the server answers a POST: events visible (default) or durable")
    wr.add_argument("--batch", type=int, default=5000,
                    help="events per POST when posting as fast as taken (--rate 0)")
    ap.add_argument("--datasets", default="1m,10m",
                    help="comma-separated: 1m (5k devices), 10m (50k devices) over 30 days; "
                         "30d, 90d, year: cost against history length (bench/history.py); "
                         "pieces-30d, pieces-90d, pieces-year: checkpoints of the legs written "
                         "weekly, in pieces (bench/pieces.py)")
    ap.add_argument("--work", default=str(ROOT / "target/bench"),
                    help="datasets and logs (kept between runs; events are simulated once)")
    ap.add_argument("--bin-dir", default=str(ROOT / "target/release"))
    ap.add_argument("--pairs", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ingest-runs", type=int, default=3,
                    help="times each ingest is run (the median is reported)")
    ap.add_argument("--results", default=str(ROOT / "bench/RESULTS.md"))
    ap.add_argument("--phases", default="static,live",
                    help="static (ingest, in-process, HTTP, DuckDB; checks agreement) and/or "
                         "live (quiet vs live over HTTP, on the last dataset)")
    ap.add_argument("--live-seconds", type=float, default=120,
                    help="seconds of each writer rate in the live phase")
    ap.add_argument("--live-rates", default="1000,10000,0",
                    help="writer rates of the live phase, events/s (0: as fast as taken)")
    ap.add_argument("--quiet-seconds", type=float, default=30)
    ap.add_argument("--max-seconds", type=float, default=30,
                    help="seconds of the as-fast-as-taken writer")
    args = ap.parse_args()
    if args.cmd == "duckdb":
        duckdb_side(args)
        return
    if args.cmd == "writer":
        writer_main(args)
        return
    phases = set(args.phases.split(","))

    import duckdb

    binary = str(Path(args.bin_dir) / "callstate")
    inproc = str(Path(args.bin_dir) / "callstate-bench")
    work = Path(args.work)
    at = "2026-10-12T09:20:00Z"  # inside the site outage: devices out of service, failed over
    results = {"machine": machine(), "duckdb": duckdb.__version__, "datasets": {}}
    failed = False
    names = args.datasets.split(",")
    import history
    import pieces
    chains = [n for n in names
              if n.startswith("pieces-") and n.removeprefix("pieces-") in history.HISTORY]
    if chains:
        pieces.main(chains, binary, work, args.seed, ROOT / "bench/RESULTS-pieces.md")
        names = [n for n in names if n not in chains]
        if not names:
            return
    long = [n for n in names if n in history.HISTORY]
    if long:
        history.main(long, binary, work, args.seed, ROOT / "bench/RESULTS-history.md")
        names = [n for n in names if n not in history.HISTORY]
        if not names:
            return
    for name in names:
        runs = args.ingest_runs if "static" in phases else 0
        d, data, lines, stats, ingest = dataset(
            name, *DATASETS[name], work, binary, args.seed, runs)
        pairs_path, pairs, devices = make_pairs(d, data, args.pairs, args.seed)
        if "live" in phases and name == names[-1]:
            rates = [int(x) for x in args.live_rates.split(",")]
            results.setdefault("live", {})[name] = live_side(
                binary, d, data, [(dv, us_to_rfc3339(t)) for dv, t in pairs], at,
                args.live_seconds, rates, args.quiet_seconds, args.max_seconds, args.seed)
        if "static" not in phases:
            continue
        ours, theirs = d / "answers-callstate", d / "answers-duckdb"
        log(f"[{name}] in-process")
        secs, rss, out = run([inproc, "--data", str(data), "--pairs", str(pairs_path),
                              "--at", at, "--from", START, "--to", END, "--out", str(ours)])
        inp = json.loads(out)
        inp["process_s"], inp["process_rss_bytes"] = secs, rss
        log(f"[{name}] HTTP")
        http = http_side(binary, data, [(dv, us_to_rfc3339(t)) for dv, t in pairs],
                         at, START, END, ours)
        log(f"[{name}] DuckDB")
        write_csv(d / "pairs_us.csv", ["device", "at"], pairs)
        secs, rss, out = run([sys.executable, __file__, "duckdb", "--data", str(data),
                              "--pairs", str(d / "pairs_us.csv"), "--out", str(theirs),
                              "--from-us", str(iso_us(START)), "--to-us", str(iso_us(END)),
                              "--at-us", str(iso_us(at))])
        duck = json.loads(out)
        duck["process_s"], duck["process_rss_bytes"] = secs, rss
        problems = compare(ours, theirs) + http.pop("problems")
        failed |= bool(problems)
        for p in problems:
            log(f"[{name}] DISAGREE {p}")
        results["datasets"][name] = {
            "events": lines, "distinct_events": stats.get("events"),
            "devices": len(devices), "ingest": ingest,
            "ingest_events_per_s": lines / ingest["median"]["s"],
            "ingest_with_roll_events_per_s": lines / (ingest["median"]["s"] + ingest["roll_s"]),
            "in_process": inp, "http": http, "duckdb": duck, "agree": not problems,
            "problems": problems,
        }
        log(json.dumps(results["datasets"][name], indent=1))
    Path(args.results).write_text(report(results))
    log(f"wrote {args.results}")
    if failed:
        raise SystemExit("answers disagree (see above)")


def mb(b):
    return f"{b / 2**20:,.0f} MB"


def ms(s):
    return f"{s * 1e3:,.1f} ms" if s < 1 else f"{s:,.2f} s"


def report(r):
    m = r["machine"]
    lines = [
        "# Benchmark results",
        "",
        "Written by `bench/run` (bench/harness.py); do not edit by hand. Release build;",
        f"DuckDB {r['duckdb']} (Python) answers the same questions with hand-written SQL over the",
        "Parquet segments the log wrote, in the same invocation; the harness checks that the",
        "answers agree before printing a figure. Ratio = callstate / DuckDB (below 1: callstate",
        "is faster).",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']};",
        f"{m['rustc']}; Python {m['python']}.",
        "",
        "Data: `bench/scenarios/month.toml`, 30 days (2026-10-01 to 2026-10-31), two clusters,",
        "node crashes, a CTIManager failover, a site outage, a rolling upgrade in maintenance",
        "windows, device flaps, a silent collector, late/reordered/duplicated delivery.",
        "Cost against history length (30 days, 90 days, a year): `bench/run --datasets",
        "30d,90d,year`, written to [RESULTS-history.md](RESULTS-history.md).",
        "Questions: state of one device at T (1,000 random device/instant pairs), fleet at T,",
        "30-day availability by device and by device pool, incidents over the 30 days.",
        "",
    ]
    for name, d in r["datasets"].items():
        i, h, k, g = d["in_process"], d["http"], d["duckdb"], d["ingest"]
        lines += [
            f"## {name}: {d['events']:,} events ({d['distinct_events']:,} distinct), "
            f"{d['devices']:,} devices",
            "",
            f"Answers agree: {'yes' if d['agree'] else 'NO: ' + '; '.join(d['problems'])}.",
            "",
            f"Ingest (`callstate ingest file`, NDJSON → validated, deduplicated, durable in the "
            f"WAL, with the Parquet segments and digests that came due written): median of "
            f"{len(g['runs'])} runs {ms(g['median']['s'])} "
            f"(range {ms(g['runs'][0]['s'])} to {ms(g['runs'][-1]['s'])}), "
            f"**{d['ingest_events_per_s']:,.0f} events/s**, {g['median']['cpu_s']:.2f} CPU seconds "
            f"({g['median']['cpu_s'] / g['median']['s']:.2f} cores busy), peak RSS "
            f"{mb(g['median']['rss'])}. With the final roll of the unrolled remainder "
            f"(`callstate log roll`, {ms(g['roll_s'])}): "
            f"{d['ingest_with_roll_events_per_s']:,.0f} events/s.",
            "",
            "| question | callstate in-process | callstate HTTP | DuckDB | ratio (in-process) |",
            "|---|---|---|---|---|",
            f"| cold 30-day SLA by pool (files → answer) | {ms(i['sla_pool_cold_s'])} | "
            f"{ms(h['ready_s'] + h['first_sla_pool_s'])} (start + first request) | "
            f"{ms(k['sla_pool_cold_s'])} | {i['sla_pool_cold_s'] / k['sla_pool_cold_s']:.2f} |",
            f"| state of a device at T, p50 | {i['state_p50_ms']:.3f} ms | "
            f"{h['state_p50_ms']:.3f} ms | {k['state_p50_ms']:.3f} ms | "
            f"{i['state_p50_ms'] / k['state_p50_ms']:.4f} |",
            f"| state of a device at T, p99 | {i['state_p99_ms']:.3f} ms | "
            f"{h['state_p99_ms']:.3f} ms | {k['state_p99_ms']:.3f} ms | "
            f"{i['state_p99_ms'] / k['state_p99_ms']:.4f} |",
            f"| fleet snapshot at T | {ms(i['fleet_s'])} | {ms(h['fleet_s'])} | "
            f"{ms(k['fleet_s'])} | {i['fleet_s'] / k['fleet_s']:.3f} |",
            f"| 30-day availability by device | {ms(i['availability_device_s'])} | "
            f"{ms(h['availability_device_s'])} | {ms(k['availability_device_s'])} | "
            f"{i['availability_device_s'] / k['availability_device_s']:.3f} |",
            f"| 30-day availability by pool | {ms(i['availability_pool_s'])} | "
            f"{ms(h['availability_pool_s'])} | {ms(k['availability_pool_s'])} | "
            f"{i['availability_pool_s'] / k['availability_pool_s']:.3f} |",
            f"| incidents, 30 days (DuckDB: detection only; callstate: full reports) | {ms(i['incidents_s'])} | {ms(h['incidents_s'])} | "
            f"{ms(k['incidents_s'])} | {i['incidents_s'] / k['incidents_s']:.3f} |",
            "",
            f"callstate in-process: open {ms(i['open_s'])}, derive intervals from digests "
            f"{ms(i['derive_s'])}, pair call legs {ms(i['call_legs_s'])} "
            f"({i['call_legs']:,} legs); peak RSS {mb(i['rss_after_derive_bytes'])} after "
            f"deriving, {mb(i['rss_peak_bytes'])} with call legs. HTTP server: ready "
            f"{ms(h['ready_s'])} after start, first question {ms(h['first_question_s'])} "
            f"(derives and caches), SLA by pool when cached {ms(h['sla_pool_s'])}; peak RSS "
            f"{mb(h['rss_peak_bytes'])}. DuckDB: load the Parquet files into a table "
            f"{ms(k['load_s'])}, intervals {ms(k['intervals_s'])}; peak RSS "
            f"{mb(k['process_rss_bytes'])}. Warm rows: callstate from its derived state in "
            "memory; DuckDB from its loaded table (intervals included, as it has no derived "
            "state).",
            "",
        ]
    lines += [
        "Goals (issue 8): ingest ≥ 1M events/s on 2 cores; state at T p99 < 10 ms; 30-day SLA",
        "over 50k devices/10M events < 1 s and at most half of DuckDB's time.",
        "",
    ]
    for name, d in r["datasets"].items():
        i, h, k = d["in_process"], d["http"], d["duckdb"]
        yes = lambda ok: "met" if ok else "**not met**"  # noqa: E731
        sla_ok = i["sla_pool_cold_s"] < 1 and i["sla_pool_cold_s"] <= k["sla_pool_cold_s"] / 2
        lines.append(
            f"- {name}: ingest {d['ingest_events_per_s']:,.0f}/s {yes(d['ingest_events_per_s'] >= 1e6)} "
            f"({d['ingest_with_roll_events_per_s']:,.0f}/s with the final roll); "
            f"state p99 {i['state_p99_ms']:.3f} ms in-process, {h['state_p99_ms']:.3f} ms over HTTP "
            f"{yes(max(i['state_p99_ms'], h['state_p99_ms']) < 10)}; cold 30-day SLA "
            f"{ms(i['sla_pool_cold_s'])} = {i['sla_pool_cold_s'] / k['sla_pool_cold_s']:.2f} of DuckDB "
            f"{yes(sla_ok)}."
        )
    lines.append("")
    for name, live in r.get("live", {}).items():
        lines += live_report(name, live)
    return "\n".join(lines)


if __name__ == "__main__":
    main()
