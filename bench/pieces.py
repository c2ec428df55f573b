"""The checkpoint of the call legs and the service file in pieces (issue 16): the benchmark
scenario of bench/history.py ingested a week at a time, with `callstate log checkpoint` after
each week (a server writes one about every million call events, about weekly for this fleet);
per checkpoint: the bytes it wrote, the bytes it holds, its pieces and the time it took (the
service file's bytes and pieces beside the legs'); against what writing every leg, and every
device's service history, at every checkpoint writes. Then `callstate serve` over the log with
its chain of pieces and over the same log with one checkpoint written whole: start-up,
memory, the round of questions of bench/history.py, and whether the answers are the same.
Run by `bench/run --datasets pieces-90d` (or pieces-30d, pieces-year); writes
bench/RESULTS-pieces.md."""
import json
import shutil
import subprocess
import time

import harness as h
import history

WEEK_US = 7 * history.DAY_US


def weekly(name, days, binary, work, seed):
    """The scenario simulated into a log a week at a time, a checkpoint after each week."""
    d = work / name
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    scenario = d / "scenario.toml"
    scenario.write_text(history.scenario_text(days))
    data = d / "log"
    h.log(f"[{name}] simulating {days} days into ingest a week at a time")
    sim = subprocess.Popen([binary, "simulate", "--scenario", str(scenario), "--devices",
                            str(history.DEVICES_PER_CLUSTER), "--seed", str(seed), "--out", "-"],
                           stdout=subprocess.PIPE)
    rows = []

    def ingest():
        return subprocess.Popen([binary, "ingest", "file", "-", "--data", str(data)],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)

    def checkpoint(ing, lines):
        ing.stdin.close()
        if ing.wait():
            raise SystemExit(f"[{name}] ingest failed")
        secs, _, out = h.run([binary, "log", "checkpoint", "--data", str(data)])
        c = json.loads(out)
        c |= {"seconds": secs, "lines": lines}
        rows.append(c)
        h.log(f"[{name}] week {len(rows)}: {lines:,} events, wrote {c['written_bytes']:,} of "
              f"{c['bytes']:,} bytes in {c['pieces']} pieces, {c['write_s']:.2f} s; service "
              f"file {c['service_written_bytes']:,} of {c['service_file_bytes']:,} bytes in "
              f"{c['service_pieces']} pieces")

    # the times are compared as text: every event's is `YYYY-MM-DDTHH:MM:SS…Z`
    end = history.START_US + WEEK_US
    edge = h.us_to_rfc3339(end)[:19].encode()
    ing, lines = ingest(), 0
    for line in sim.stdout:
        i = line.find(b'"time":"') + 8
        if line[i:i + 19] >= edge:
            checkpoint(ing, lines)
            ing, lines = ingest(), 0
            end += WEEK_US
            edge = h.us_to_rfc3339(end)[:19].encode()
        ing.stdin.write(line)
        lines += 1
    checkpoint(ing, lines)
    if sim.wait():
        raise SystemExit(f"[{name}] simulate failed")
    return d, data, rows


def whole(d, data, binary):
    """The same log with one checkpoint written whole (from the log alone)."""
    copy = d / "whole"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(data, copy)
    shutil.rmtree(copy / "derived", ignore_errors=True)
    secs, peak, out = h.run([binary, "log", "checkpoint", "--data", str(copy)])
    return copy, json.loads(out) | {"seconds": secs}


def main(names, binary, work, seed, results_path):
    sections = []
    for name in names:
        days = history.HISTORY[name.removeprefix("pieces-")]
        d, data, rows = weekly(name, days, binary, work, seed)
        copy, one = whole(d, data, binary)
        chain = history.serve_round(name, days, binary, d, data, seed)
        single = history.serve_round(name, days, binary, d, copy, seed)
        sections.append(report(name, days, rows, one, chain, single))
    text = ("# The derived files in pieces\n\n" + __doc__.split("\n\n")[0]
            .replace("\n", " ") + "\n\n" + "\n\n".join(sections) + "\n")
    results_path.write_text(text)
    h.log(f"wrote {results_path}")


def report(name, days, rows, one, chain, single):
    gib = lambda b: f"{b / 2**30:.2f} GiB"
    wrote = sum(r["written_bytes"] for r in rows)
    whole_each = sum(r["bytes"] for r in rows)
    mib = lambda b: f"{b / 2**20:,.1f} MiB"
    lines = [f"## {days} days, {len(rows)} weekly checkpoints", "",
             "| week | events | legs | pieces | written | held | written ÷ held | write "
             "| service file: pieces | written | held |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for k, r in enumerate(rows, 1):
        lines.append(f"| {k} | {r['lines']:,} | {r['legs'] + r['loose_legs']:,} | {r['pieces']} "
                     f"| {mib(r['written_bytes'])} | {mib(r['bytes'])} "
                     f"| {r['written_bytes'] / r['bytes']:.0%} | {r['write_s']:.2f} s "
                     f"| {r['service_pieces']} | {mib(r['service_written_bytes'])} "
                     f"| {mib(r['service_file_bytes'])} |")
    s_wrote = sum(r["service_written_bytes"] for r in rows)
    s_whole = sum(r["service_file_bytes"] for r in rows)
    last = rows[-1]
    lines += ["",
              f"Written over the {len(rows)} checkpoints: {gib(wrote)}; every leg at every "
              f"checkpoint (one file written whole each time) would have written "
              f"{gib(whole_each)} ({wrote / whole_each:.0%}). Written whole once at the end: "
              f"{gib(one['bytes'])} in {one['write_s']:.2f} s (the chain holds "
              f"{gib(last['bytes'])} in {last['pieces']} pieces; legs "
              f"{one['legs'] + one['loose_legs']:,} whole, "
              f"{last['legs'] + last['loose_legs']:,} in pieces). The service file: "
              f"{gib(s_wrote)} written over the {len(rows)} checkpoints, where writing every "
              f"device at every checkpoint would have written at most {gib(s_whole)} (what "
              f"the chain held at each, superseded entries included; {s_wrote / s_whole:.0%});"
              f" written whole once at the end "
              f"{gib(one['service_file_bytes'])} (the chain holds "
              f"{gib(last['service_file_bytes'])} in {last['service_pieces']} pieces).", "",
              "| `callstate serve` over the log | chain of pieces | one checkpoint |",
              "|---|---|---|"]
    rows_ = [
        ("start-up (to /readyz)", lambda s: f"{s['startup_s']:.2f} s"),
        ("the same from a cold page cache", lambda s: f"{s['cold_startup_s']:.2f} s"),
        ("RSS 3 s after start", lambda s: gib(s["rss_after_start"])),
        ("RSS 3 s after the round", lambda s: gib(s["rss_after_round"])),
        ("RSS peak", lambda s: gib(s["rss_peak"])),
        ("live state on the heap after the round",
         lambda s: f"{sum(s['live_bytes'].values()) / 1e6:.0f} MB"),
        ("SLA by pool per month, cold / warm",
         lambda s: f"{s['sla_cold_s'] * 1e3:.0f} / {s['sla_warm_s'] * 1e3:.0f} ms"),
        ("fleet snapshot median / max",
         lambda s: f"{s['snapshot_median_s'] * 1e3:.0f} / {s['snapshot_max_s'] * 1e3:.0f} ms"),
        ("device state p50 / p99",
         lambda s: f"{s['state_p50_ms']:.2f} / {s['state_p99_ms']:.2f} ms"),
        ("incidents over the last month, cold / warm",
         lambda s: f"{s['incidents_cold_s'] * 1e3:.0f} / {s['incidents_warm_s'] * 1e3:.0f} ms"),
    ]
    for label, f in rows_:
        lines.append(f"| {label} | {f(chain)} | {f(single)} |")
    same = chain["sla_sha"] == single["sla_sha"] and chain["incidents"] == single["incidents"]
    lines.append(f"| SLA body byte for byte, incidents as many | {'yes' if same else 'NO'} | |")
    return "\n".join(lines)
