"""Medians over rounds, ratios paired per round, and the markdown tables.

`runs[scenario][target]` is a list with one dict per round ({"failed": why} for a run that
failed: the target died or the load generator failed or hung).
A ratio A ÷ B is computed in each round from that round's two runs, then the median of those
per-round ratios is reported (with their min–max), so drift across rounds cancels out.
"""

import statistics

METRICS = ("rps", "p50_us", "p99_us", "cpu_us_per_req", "backend_cpu_us_per_req", "rss_kib")


def _med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def _ok(run):
    return bool(run) and "failed" not in run


def _paired(a_runs, b_runs, key):
    out = []
    for a, b in zip(a_runs, b_runs):
        if _ok(a) and _ok(b) and a.get(key) and b.get(key):
            out.append(a[key] / b[key])
    return out


def summarise(runs, refs):
    """Per scenario and target: medians, error totals and paired ratios against refs."""
    summary = {}
    for sc, by_target in runs.items():
        summary[sc] = {}
        for name, rs in by_target.items():
            ok = [r for r in rs if _ok(r)]
            s = {m: _med([r.get(m) for r in ok]) for m in METRICS}
            s["rounds"] = len(ok)
            s["failed_rounds"] = len(rs) - len(ok)
            s["requests"] = sum(r["requests"] for r in ok)
            s["errors"] = sum(r["errors"] for r in ok)
            s["non2xx"] = sum(r["non2xx"] for r in ok)
            s["socket_errors"] = sum(r["socket_errors"] for r in ok)
            s["ratios"] = {}
            for ref in refs:
                if ref not in by_target:
                    continue
                s["ratios"][ref] = {}
                for key in ("rps", "cpu_us_per_req", "p99_us", "rss_kib"):
                    per_round = _paired(rs, by_target[ref], key)
                    s["ratios"][ref][key] = {
                        "median": _med(per_round),
                        "min": min(per_round) if per_round else None,
                        "max": max(per_round) if per_round else None,
                        "per_round": per_round,
                    }
            summary[sc][name] = s
    return summary


def _n(x, digits=2):
    return "–" if x is None else f"{x:.{digits}f}"


def _int(x):
    return "–" if x is None else f"{x:,.0f}"


def _lat(us):
    if us is None:
        return "–"
    return f"{us:.0f} µs" if us < 1000 else f"{us / 1000:.2f} ms"


def _mib(kib):
    return "–" if kib is None else f"{kib / 1024:.1f} MiB"


def _ratio(s, ref, key="rps"):
    r = s["ratios"].get(ref, {}).get(key)
    return "–" if not r or r["median"] is None else f"{r['median']:.2f}"


def results_table(summary, refs, scenarios_doc):
    refs = [r for r in refs if any(r in by for by in summary.values())]
    head = ["scenario", "target", "req/s"] + [f"÷ {r}" for r in refs] + [
        "p50", "p99", "CPU µs/req", "backend µs/req", "peak RSS", "errors"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for sc, by_target in summary.items():
        for name, s in by_target.items():
            err = str(s["errors"])
            if s["errors"]:
                err = f"{s['errors']} ({s['non2xx']} non-2xx, {s['socket_errors']} socket)"
            if s["failed_rounds"]:
                err += f"; FAILED in {s['failed_rounds']} round(s)"
            row = [sc, name, _int(s["rps"])] + [_ratio(s, r) for r in refs] + [
                _lat(s["p50_us"]), _lat(s["p99_us"]), _n(s["cpu_us_per_req"], 1),
                _n(s["backend_cpu_us_per_req"], 1), _mib(s["rss_kib"]), err]
            lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines += [f"- `{sc}`: {doc}" for sc, doc in scenarios_doc.items() if sc in summary]
    return "\n".join(lines)


def versus_table(summary, subject, peers):
    """subject ÷ each peer, paired per round: median (min–max over rounds)."""
    lines = [f"| scenario | {subject} ÷ | req/s | CPU/req | p99 | peak RSS |",
             "|---|---|---|---|---|---|"]
    found = False
    for sc, by_target in summary.items():
        s = by_target.get(subject)
        if not s:
            continue
        for peer in peers:
            rat = s["ratios"].get(peer)
            if not rat:
                continue
            found = True
            cells = []
            for key in ("rps", "cpu_us_per_req", "p99_us", "rss_kib"):
                r = rat[key]
                if r["median"] is None:
                    cells.append("–")
                else:
                    cells.append(f"{r['median']:.2f} ({r['min']:.2f}–{r['max']:.2f})")
            lines.append(f"| {sc} | {peer} | " + " | ".join(cells) + " |")
    return "\n".join(lines) if found else ""


def markdown(meta, summary, refs, scenarios_doc, subject=None, peers=(), extra=()):
    """The run's header, the results table (if any scenario besides reload ran), the versus
    table, then the `extra` sections (the reload table)."""
    out = [f"### {meta['title']}", "",
           f"{meta['date']} · commit `{meta['commit']}` · {meta['machine']} · "
           f"load average {meta['loadavg_start']} → {meta.get('loadavg_end', '?')}", "",
           f"`{meta['command']}`", "",
           f"{meta['setup']}", ""]
    if summary:
        out += [results_table(summary, refs, scenarios_doc), ""]
    if subject and summary:
        vs = versus_table(summary, subject, peers)
        if vs:
            out += [f"{subject} ÷ peer, paired per round: median (min–max over rounds); "
                    "lower is better for CPU/req, p99 and RSS.", "", vs, ""]
    out += list(extra)
    return "\n".join(out)
