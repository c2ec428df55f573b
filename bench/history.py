"""Cost against history length (issue 16): the benchmark scenario (two clusters, 50,000
devices, its faults repeated every 30 days) simulated for 30 days, 90 days or a year straight
into `callstate ingest file -` (no NDJSON file), then `callstate serve` over it, asked the
reporting questions over HTTP; DuckDB answers the monthly SLA from the same Parquet.

Run by `bench/run --datasets 30d,90d,year`; writes bench/RESULTS-history.md."""

import hashlib
import http.client
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import harness as h

HISTORY = {"30d": 30, "90d": 90, "year": 365}
DEVICES_PER_CLUSTER, SCALE = 25000, 0.031
# Every history ends in the past: the log refuses events more than 24 h ahead of the clock.
START = "2025-11-01T00:00:00Z"
START_US = h.iso_us(START)
DAY_US = 86_400_000_000
# Goals of issue 16 (2 cores, 365 days).
GOALS = {
    "rss_gb": 1.5, "sla_cold_s": 2.0, "sla_warm_ms": 200, "snapshot_ms": 300,
    "state_p99_ms": 5, "startup_s": 5, "bytes_per_event": 25, "derived_ratio": 0.5,
    "rss_ratio_30d": 1.2,
}


def fmt_duration(us):
    s = us // 1_000_000
    d, s = divmod(s, 86400)
    hh, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return f"{d}d{hh}h{m}m{s}s"


def scenario_text(days):
    """The month scenario stretched to `days`, its faults repeated every 30 days."""
    text = h.SCENARIO_FILE.read_text().replace("scale = 0.027", f"scale = {SCALE}")
    text = re.sub(r'(?m)^duration = ".*"$', f'duration = "{days}d"', text)
    text = re.sub(r'(?m)^start = ".*"$', f'start = "{START}"', text)
    extra = []
    for m in range(1, (days + 29) // 30):
        for f in h.SCENARIO.get("faults", []):
            at = h.duration_us(f["at"]) + m * 30 * DAY_US
            if at >= days * DAY_US:
                continue
            lines = ["[[faults]]"]
            for k, v in f.items():
                if k == "at":
                    v = fmt_duration(at)
                lines.append(f"{k} = {json.dumps(v)}")
            extra.append("\n".join(lines))
    return text + "\n\n" + "\n\n".join(extra) + "\n"


def generate(name, days, binary, work, seed):
    d = work / name
    d.mkdir(parents=True, exist_ok=True)
    scenario = d / "scenario.toml"
    text = scenario_text(days)
    data = d / "log"
    done = d / "ingest.json"
    if done.exists() and scenario.exists() and scenario.read_text() == text:
        return d, data, json.loads(done.read_text())
    scenario.write_text(text)
    shutil.rmtree(data, ignore_errors=True)
    h.log(f"[{name}] simulating {days} days of {2 * DEVICES_PER_CLUSTER} devices into ingest")
    t = time.perf_counter()
    sim = subprocess.Popen([binary, "simulate", "--scenario", str(scenario), "--devices",
                            str(DEVICES_PER_CLUSTER), "--seed", str(seed), "--out", "-"],
                           stdout=subprocess.PIPE)
    ing = subprocess.Popen([binary, "ingest", "file", "-", "--data", str(data)],
                           stdin=sim.stdout, stdout=subprocess.DEVNULL)
    sim.stdout.close()
    _, st_i, ru_i = os.wait4(ing.pid, 0)
    _, st_s, ru_s = os.wait4(sim.pid, 0)
    secs = time.perf_counter() - t
    if os.waitstatus_to_exitcode(st_i) or os.waitstatus_to_exitcode(st_s):
        raise SystemExit(f"[{name}] simulate | ingest failed")
    h.run([binary, "log", "roll", "--data", str(data)], stdout=subprocess.DEVNULL)
    stats = json.loads(h.run([binary, "log", "stats", "--data", str(data)])[2])
    info = {"seconds": secs, "events": stats["events"], "ingest_rss": ru_i.ru_maxrss * 1024,
            "ingest_cpu_s": ru_i.ru_utime + ru_i.ru_stime,
            "sim_cpu_s": ru_s.ru_utime + ru_s.ru_stime, "stats": stats}
    done.write_text(json.dumps(info))
    return d, data, info


def disk(data):
    seg = data / "segments"
    raw = sum(p.stat().st_size for p in seg.glob("seg-????????.parquet"))
    digests = sum(p.stat().st_size for p in seg.glob("*.digest.parquet"))
    wal = sum(p.stat().st_size for p in (data / "wal").glob("*"))
    return raw + wal, digests


class Client:
    def __init__(self, port):
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

    def get(self, path, status=200):
        t = time.perf_counter()
        self.c.request("GET", path)
        r = self.c.getresponse()
        body = r.read()
        secs = time.perf_counter() - t
        if r.status != status:
            raise SystemExit(f"GET {path}: {r.status} {body[:300]!r}")
        return secs, body


def months(days):
    """Calendar months (UTC) inside the history, from START."""
    out, y, m = [], int(START[:4]), int(START[5:7])
    import datetime as dt
    end = START_US + days * DAY_US
    while True:
        a = int(dt.datetime(y, m, 1, tzinfo=dt.timezone.utc).timestamp()) * 1_000_000
        y2, m2 = (y + 1, 1) if m == 12 else (y, m + 1)
        b = int(dt.datetime(y2, m2, 1, tzinfo=dt.timezone.utc).timestamp()) * 1_000_000
        if a >= end:
            break
        out.append((a, min(b, end)))
        y, m = y2, m2
    return out


def rss_parts(pid):
    """(anonymous, file-backed) resident bytes: the process's own memory, and the pages of
    mapped files (the legs checkpoint) it has touched, which the kernel may drop again."""
    return h.proc_status_bytes(pid, "RssAnon"), h.proc_status_bytes(pid, "RssFile")


def live_bytes(metrics_text):
    """`callstate_live_state_bytes{part}` of a `/metrics` answer, by part."""
    found = {}
    for line in metrics_text.splitlines():
        m = re.match(r'callstate_live_state_bytes\{part="([a-z_]+)"\} (\d+)', line)
        if m:
            found[m.group(1)] = int(m.group(2))
    return found


# Seconds the server is left idle before its RSS is read, after start and after the round.
IDLE_S = 3


def cold_startup(binary, data):
    """Seconds a server over `data` takes to answer /readyz from a cold page cache (the
    kernel's caches dropped first, as after a reboot), or None where they cannot be dropped
    (not root)."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return None
    port = h.free_port()
    t = time.perf_counter()
    p = subprocess.Popen([binary, "serve", "--data", str(data), "--listen", f"127.0.0.1:{port}",
                          "--compact-every-s", "0"], stdout=subprocess.DEVNULL)
    try:
        h.wait_ready(port, p)
        return time.perf_counter() - t
    finally:
        p.terminate()
        p.wait()


def serve_round(name, days, binary, d, data, seed, kept_from=None):
    """A server over a copy of `data`: start-up, memory, then the round of questions. With
    `kept_from` (retention of intervals), the state questions are asked from it on, the SLA
    over every month as before (the months before it from the hourly rollups kept), and one
    with an edge inside an hour before it must be refused."""
    port = h.free_port()
    copy = d / "serve-copy"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(data, copy)
    # the copy written out first: the kernel flushing it would compete with the server
    os.sync()
    t = time.perf_counter()
    p = subprocess.Popen([binary, "serve", "--data", str(copy), "--listen", f"127.0.0.1:{port}",
                          "--read-timeout-s", "600", "--compact-every-s", "0"],
                         stdout=subprocess.DEVNULL)
    try:
        h.wait_ready(port, p)
        startup = time.perf_counter() - t
        # the idle server's memory: what the allocator purges a second after it is freed
        # (src/main.rs) is gone by then
        time.sleep(IDLE_S)
        out = {"startup_s": startup, "rss_after_start": h.vm_rss(p.pid),
               "rss_parts_after_start": rss_parts(p.pid)}
        c = Client(port)
        end = START_US + days * DAY_US
        first = kept_from or START_US
        whole = [a for a, _ in months(days)]
        frm, to = h.us_to_rfc3339(whole[0]), h.us_to_rfc3339(end)
        if kept_from:
            mid_hour = h.us_to_rfc3339(START_US + 1_800_000_000)
            c.get(f"/api/v1/sla?from={mid_hour}&to={to}&group_by=device_pool", status=422)
            out["refused_before_horizon"] = True
        sla = f"/api/v1/sla?from={frm}&to={to}&group_by=device_pool&period=month&tz=UTC"
        cold, body = c.get(sla)
        rows = json.loads(body)
        out["sla_sha"] = hashlib.sha256(body).hexdigest()
        warm = sorted(c.get(sla)[0] for _ in range(5))
        out |= {"sla_cold_s": cold, "sla_warm_s": warm[2], "sla_rows": len(rows),
                "months": len(whole)}
        # fleet snapshot at random instants
        rnd = random.Random(seed)
        snaps = []
        for _ in range(5):
            at = h.us_to_rfc3339(rnd.randrange(first, end))
            snaps.append(c.get(f"/api/v1/state?at={at}")[0])
        _, body = c.get(f"/api/v1/state?at={h.us_to_rfc3339(end - DAY_US)}")
        devices = sorted(r["device"] for r in json.loads(body)["devices"])
        out |= {"snapshot_median_s": sorted(snaps)[2], "snapshot_max_s": max(snaps)}
        # single-device state at random instants of the whole history
        lat = []
        for _ in range(1000):
            dv = rnd.choice(devices)
            at = h.us_to_rfc3339(rnd.randrange(first, end))
            lat.append(c.get(f"/api/v1/devices/{dv}/state?at={at}")[0] * 1e3)
        out |= {"state_p50_ms": h.pct(lat, 0.5), "state_p99_ms": h.pct(lat, 0.99)}
        # incidents over the last calendar month
        a, b = months(days)[-1]
        inc = f"/api/v1/incidents?from={h.us_to_rfc3339(a)}&to={h.us_to_rfc3339(b)}"
        inc_cold, body = c.get(inc)
        inc_warm = sorted(c.get(inc)[0] for _ in range(3))[1]
        out |= {"incidents_cold_s": inc_cold, "incidents_warm_s": inc_warm,
                "incidents": len(json.loads(body))}
        time.sleep(IDLE_S)
        out |= {"rss_after_round": h.vm_rss(p.pid), "rss_peak": h.vm_hwm(p.pid),
                "rss_parts_after_round": rss_parts(p.pid)}
        # what the live state holds on the heap, by part (after the RSS: the scrape itself
        # computes the SLI counters)
        _, text = c.get("/metrics")
        out["live_bytes"] = live_bytes(text.decode())
        p.terminate()
        p.wait()
        # last: dropping the page cache before would slow the questions above
        out["cold_startup_s"] = cold_startup(binary, copy)
        # the service file as the server left it (written again when the start found it
        # did not hold the log's history)
        out["service_bytes_served"] = derived_bytes(copy, "service")
    finally:
        p.terminate()
        p.wait()
        shutil.rmtree(copy, ignore_errors=True)
    return out


def checkpoint(binary, data, raw):
    """`callstate log checkpoint` on a log without one: the live state derived from the log
    alone (what a start without a checkpoint does), then its call legs written."""
    shutil.rmtree(data / "derived", ignore_errors=True)
    secs, peak, out = h.run([binary, "log", "checkpoint", "--data", str(data)])
    c = json.loads(out)
    return {"derive_s": c["derive_s"], "checkpoint_write_s": c["write_s"],
            "checkpoint_bytes": c["bytes"], "checkpoint_legs": c["legs"] + c["loose_legs"],
            "checkpoint_ratio": c["bytes"] / raw, "derive_rss_peak": peak} | service_file(data, raw)


def service_file(data, raw):
    """The service file a checkpoint writes beside the legs' (every device's service events
    and intervals, read in place): its size over every piece (`service.bin`, the head, and
    the `service.<id>.bin` it lists; a checkpoint that changed no device writes a head of a
    few bytes and keeps the last file as a piece)."""
    size = derived_bytes(data, "service")
    return {"service_bytes": size, "service_ratio": size / raw}


def derived_bytes(data, name):
    """Bytes of the derived file `name` over every piece: `name.bin` and `name.<id>.bin`."""
    return sum(p.stat().st_size for p in (data / "derived").glob(f"{name}*.bin"))


def legs_kept(binary, d, data, raw, days, keep_days):
    """Retention of call legs on a copy of the log: `log retire --legs-before` the UTC
    midnight `keep_days` before the history's end (a new checkpoint without the older legs),
    timed; its size; the questions again over it (those about calls before the horizon then
    answer that the legs were removed)."""
    copy = d / f"legs{keep_days}"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(data, copy)
    horizon = h.us_to_rfc3339(START_US + (days - keep_days) * DAY_US)
    secs, peak, out = h.run([binary, "log", "retire", "--legs-before", horizon,
                             "--data", str(copy)])
    v = json.loads(out)
    size = derived_bytes(copy, "legs")
    r = {"retire_legs_s": secs, "retire_legs_peak": peak, "checkpoint_bytes": size,
         "checkpoint_ratio": size / raw, "checkpoint_write_s": secs,
         "legs_removed": v["legs_retention"]["removed"], "legs_kept_from": horizon}
    return r | service_file(copy, raw), copy


def intervals_kept(binary, d, data, raw, days, keep_days):
    """Retention of intervals on a copy of the log: `log retire --intervals-before` the UTC
    midnight `keep_days` before the history's end (the digests before it folded into the
    log's base), timed; the derived data on disk after it (the service file is written again
    by the first start after it, which the round's start-up includes)."""
    copy = d / f"intervals{keep_days}"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(data, copy)
    kept_from = START_US + (days - keep_days) * DAY_US
    secs, peak, out = h.run([binary, "log", "retire", "--intervals-before",
                             h.us_to_rfc3339(kept_from), "--data", str(copy)])
    v = json.loads(out)
    seg = copy / "segments"
    digests = sum(p.stat().st_size for p in seg.glob("*.digest.parquet"))
    base = sum(p.stat().st_size for p in seg.glob("base-*.parquet"))
    rollups = sum(p.stat().st_size for p in seg.glob("rollups-*.bin"))
    r = {"fold_s": secs, "fold_peak": peak, "kept_from": kept_from,
         "folded_segments": v["stats"]["folded_segments"],
         "folded_events": v["stats"]["folded_events"], "base_bytes": base,
         "rollups_bytes": rollups, "derived_ratio": (digests + base + rollups) / raw}
    return r, copy


def duck(name, days, data):
    w = ",".join(f"{a}:{b}" for a, b in months(days))
    pairs = data.parent / "pairs_none.csv"
    pairs.write_text("device,at\n")
    secs, peak, out = h.run([sys.executable, str(Path(h.__file__)), "duckdb", "--data", str(data),
                             "--pairs", str(pairs), "--out", str(data.parent / "answers-duckdb"),
                             "--from-us", str(START_US), "--to-us",
                             str(START_US + days * DAY_US), "--at-us", str(START_US),
                             "--windows", w])
    r = json.loads(out)
    r["process_rss"] = peak
    return r


def main(names, binary, work, seed, results_path, with_duckdb=True):
    res = {}
    for name in names:
        days = HISTORY[name]
        d, data, ingest = generate(name, days, binary, work, seed)
        raw, digests = disk(data)
        r = {"days": days, "events": ingest["events"], "ingest_s": ingest["seconds"],
             "ingest_rate": ingest["events"] / ingest["seconds"],
             "bytes_per_event": raw / ingest["events"], "derived_ratio": digests / raw,
             "segments": ingest["stats"]["segments"]}
        h.log(f"[{name}] log checkpoint")
        r |= checkpoint(binary, data, raw)
        h.log(f"[{name}] serve")
        r |= serve_round(name, days, binary, d, data, seed)
        res[name] = r
        Path(results_path).write_text(report(res))
        if with_duckdb:
            h.log(f"[{name}] DuckDB")
            try:
                r["duckdb"] = duck(name, days, data)
            except SystemExit as e:
                r["duckdb_failed"] = str(e)[:200]
        h.log(json.dumps(r, indent=1))
        Path(results_path).write_text(report(res))
        if name == "year":
            keep = 90
            h.log(f"[{name}] call legs kept {keep} days")
            kept, copy = legs_kept(binary, d, data, raw, days, keep)
            k = dict(r) | kept
            k["label"] = f"{days} days, call legs kept {keep}"
            k["checkpoint_legs"] = r["checkpoint_legs"] - kept["legs_removed"]
            try:
                k |= serve_round(name, days, binary, d, copy, seed)
            finally:
                shutil.rmtree(copy, ignore_errors=True)
            res[f"{name}-legs{keep}"] = k
            h.log(json.dumps(k, indent=1))
            Path(results_path).write_text(report(res))
            h.log(f"[{name}] intervals kept {keep} days")
            folded, copy = intervals_kept(binary, d, data, raw, days, keep)
            k = {x: y for x, y in r.items() if x != "duckdb"} | folded
            k["label"] = f"{days} days, intervals kept {keep}"
            try:
                k |= serve_round(name, days, binary, d, copy, seed, folded["kept_from"])
                k["sla_same"] = k["sla_sha"] == r.get("sla_sha")
                k["service_bytes"] = k["service_bytes_served"]
                k["service_ratio"] = k["service_bytes"] / raw
            finally:
                shutil.rmtree(copy, ignore_errors=True)
            res[f"{name}-intervals{keep}"] = k
            h.log(json.dumps(k, indent=1))
            Path(results_path).write_text(report(res))
    return res


def live_row(parts):
    if not parts:
        return "not measured"
    mb = lambda b: f"{b / 1e6:,.0f}"
    legs = parts.get("call_legs_packed", 0) + parts.get("call_legs_loose", 0)
    return (f"{mb(sum(parts.values()))} MB = {mb(parts.get('service_events', 0))} + "
            f"{mb(parts.get('intervals', 0))} + {mb(parts.get('rollups', 0))} + "
            f"{mb(parts.get('devices', 0))} + {mb(legs)}")


def ratio_to(res, base, r, key):
    """`r[key]` ÷ the `base` dataset's, if it was measured."""
    b = res.get(base, {}).get(key)
    return f"{r[key] / b:.2f}" if b else "not measured"


def report(res):
    gb = lambda b: f"{b / 2**30:.2f} GiB"
    parts = lambda p: f"{p[0] / 2**30:.2f} + {p[1] / 2**30:.2f}"
    ms = lambda s: f"{s * 1e3:,.0f} ms"
    rows = [
        ("events", lambda r: f"{r['events']:,}", ""),
        ("simulate → ingest file - (events/s)", lambda r: f"{r['ingest_rate']:,.0f}", ""),
        ("disk, raw (segments + WAL), bytes per event", lambda r: f"{r['bytes_per_event']:.1f}",
         f"≤ {GOALS['bytes_per_event']}"),
        ("derived on disk (digests) / raw", lambda r: f"{r['derived_ratio']:.0%}",
         f"≤ {GOALS['derived_ratio']:.0%}"),
        ("call legs", lambda r: f"{r['checkpoint_legs']:,}", ""),
        ("start without a checkpoint: live state derived from the log (`log checkpoint`)",
         lambda r: f"{r['derive_s']:.1f} s, peak RSS {gb(r['derive_rss_peak'])}", ""),
        ("checkpoint of the legs: written in / size / size ÷ raw (with retention of call "
         "legs: `log retire --legs-before`, start included)",
         lambda r: f"{r['checkpoint_write_s']:.1f} s / {gb(r['checkpoint_bytes'])} / "
                   f"{r['checkpoint_ratio']:.0%}", ""),
        ("service file (service events and intervals, read in place): size / size ÷ raw",
         lambda r: f"{gb(r['service_bytes'])} / {r['service_ratio']:.0%}", ""),
        ("derived on disk (digests + legs checkpoint + service file) / raw",
         lambda r: f"{r['derived_ratio'] + r['checkpoint_ratio'] + r['service_ratio']:.0%}",
         f"≤ {GOALS['derived_ratio']:.0%}"),
        ("server start-up from the checkpoint (to /readyz)", lambda r: f"{r['startup_s']:.1f} s",
         f"< {GOALS['startup_s']} s"),
        ("the same from a cold page cache (the kernel's caches dropped first, as after a reboot)",
         lambda r: ("not measured (not root)" if r.get("cold_startup_s") is None
                    else f"{r['cold_startup_s']:.1f} s"),
         f"< {GOALS['startup_s']} s"),
        ("RSS 3 s after start (anonymous + mapped file pages)",
         lambda r: f"{gb(r['rss_after_start'])} ({parts(r['rss_parts_after_start'])})", ""),
        ("RSS 3 s after the round (anonymous + mapped file pages)",
         lambda r: f"{gb(r['rss_after_round'])} ({parts(r['rss_parts_after_round'])})",
         f"≤ {GOALS['rss_gb']} GB ({GOALS['rss_gb'] * 1e9 / 2**30:.2f} GiB)"),
        ("the same ÷ the 30-day figure", lambda r: ratio_to(res, "30d", r, "rss_after_round"),
         f"≤ {GOALS['rss_ratio_30d']}"),
        ("RSS peak (VmHWM: the most resident at once, mapped pages included)", lambda r: gb(r["rss_peak"]), ""),
        ("live state on the heap after the round (`callstate_live_state_bytes`): total = "
         "service events + intervals + rollups + devices + call legs",
         lambda r: live_row(r.get("live_bytes")), ""),
        ("SLA by pool per calendar month (months asked), cold",
         lambda r: f"{ms(r['sla_cold_s'])} ({r['months']})",
         f"< {GOALS['sla_cold_s']} s"),
        ("same, warm", lambda r: ms(r["sla_warm_s"]), f"< {GOALS['sla_warm_ms']} ms"),
        ("fleet snapshot at a random instant (median / max)",
         lambda r: f"{ms(r['snapshot_median_s'])} / {ms(r['snapshot_max_s'])}",
         f"< {GOALS['snapshot_ms']} ms"),
        ("device state p50 / p99 over HTTP",
         lambda r: f"{r['state_p50_ms']:.2f} / {r['state_p99_ms']:.2f} ms",
         f"p99 < {GOALS['state_p99_ms']} ms"),
        ("incidents over the last month, cold / warm",
         lambda r: f"{ms(r['incidents_cold_s'])} / {ms(r['incidents_warm_s'])}", ""),
        ("retention of intervals (`log retire --intervals-before`, start included): time, "
         "peak / segments folded / base + hourly rollups kept", lambda r: (
             f"{r['fold_s']:.1f} s, {gb(r['fold_peak'])} / {r['folded_segments']:,} / "
             f"{r['base_bytes'] / 1e6:.1f} + {r.get('rollups_bytes', 0) / 1e6:.1f} MB"
             if "fold_s" in r else ""), ""),
        ("SLA by pool per month: the body byte for byte the whole year's", lambda r: (
            ("yes" if r["sla_same"] else "NO") if "sla_same" in r else ""), ""),
        ("DuckDB: SLA by pool per month, files → answer",
         lambda r: f"{r['duckdb']['sla_months_cold_s']:.1f} s" if "duckdb" in r else (
             "failed (see below)" if "duckdb_failed" in r else "not run"), ""),
        ("callstate cold (first question after start) / DuckDB", lambda r: (
            f"{r['sla_cold_s'] / r['duckdb']['sla_months_cold_s']:.3f}"
            if "duckdb" in r else "not run"), "≤ 0.10"),
        ("callstate start-up + first question / DuckDB", lambda r: (
            f"{(r['startup_s'] + r['sla_cold_s']) / r['duckdb']['sla_months_cold_s']:.2f}"
            if "duckdb" in r else "not run"), ""),
    ]
    names = list(res)
    out = ["# Cost against history length", "",
           "`bench/run --datasets " + ",".join(names) + "` (release build, 2 cores). The "
           "benchmark scenario at 50,000 devices, its faults repeated every 30 days, simulated "
           "straight into `callstate ingest file -`; `callstate log checkpoint` (the live state "
           "derived from the log alone, then its call legs written); `callstate serve` over a "
           "copy of the log and its checkpoint (background compaction off), questions over one "
           "HTTP keep-alive connection. "
           "Goals: issue 16, for 365 days. The column after the year is the year again after "
           "`callstate log retire --legs-before` the midnight 90 days before its end (call "
           "legs that started and ended before it removed from the checkpoint; raw events, "
           "intervals and SLA kept): the incidents asked about are after the horizon, the "
           "fleet snapshots' instants mostly before it (their calls answer null there). "
           "The column after it is the year after `callstate log retire --intervals-before` "
           "the same midnight (the service history before it folded into the log's base, "
           "each device's hourly rollups before it kept beside it; call legs all kept): the SLA "
           "over every month is asked as in the other columns (the months before the horizon "
           "answered from the rollups; an SLA from the middle of an hour before it is refused, "
           "422, as it must be), the snapshots' and device states' instants are after the "
           "horizon, its digests row counts the base and the rollups, its start-up is the first after the fold (which writes the service file "
           "again), its cold start the next.", "",
           "| | " + " | ".join(res[n].get("label", f"{res[n]['days']} days") for n in names)
           + " | goal |",
           "|---|" + "---|" * len(names) + "---|"]
    for label, f, goal in rows:
        out.append(f"| {label} | " + " | ".join(f(res[n]) for n in names) + f" | {goal} |")
    out.append("")
    return "\n".join(out)
