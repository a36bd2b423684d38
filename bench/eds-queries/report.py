"""The markdown table of bench/run-eds-queries.sh: per size, step and caller, Updraft's and Parse Server's
requests/s and p50/p99 latency (medians over the rounds), the requests/s ratio, and the non-2xx answers and
timeouts summed over the rounds. Where a run saw few answers its latencies rest on those few, and the table says so:
a run stops with up to CONNECTIONS requests unanswered, and slow ones are neither timed nor counted as timeouts.

Usage: report.py RESULTS_TSV  (lines: objects step caller system round rps p50_ms p99_ms non2xx timeouts answers)
"""

import statistics
import sys
from collections import defaultdict

STEPS = {
    1: "equality `k`",
    2: "equality `k`, no match",
    3: "range `n` + sort `n`",
    4: "range `n` + sort `k`",
    5: "`k` $in 10 values",
    6: "ref `owner` + sort createdAt desc",
    7: "prefix $regex `title`",
    8: "count, range `n`",
    9: "sort `n`, offset 5000",
    10: "unindexed equality `note`",
    11: "count, whole collection",
}
# Fewer answers a run than this, and the table says its latencies rest on few.
FEW_ANSWERS = 100

runs = defaultdict(list)
for line in open(sys.argv[1]):
    objects, step, caller, system, _round, rps, p50, p99, non2xx, timeouts, answers = line.split()
    runs[(int(objects), int(step), caller, system)].append(
        (float(rps), float(p50), float(p99), int(non2xx), int(timeouts), int(answers))
    )


def figures(key):
    """(req/s, p50, p99, failures note) as table cells, or dashes when the system was not run."""
    if key not in runs:
        return ["–", "–", "–", ""], None
    rows = runs[key]
    rps = statistics.median(r[0] for r in rows)
    # Latencies of the rounds that had answers: one without has none to count.
    answered = [r for r in rows if r[5] > 0] or rows
    p50 = statistics.median(r[1] for r in answered)
    p99 = statistics.median(r[2] for r in answered)
    non2xx, timeouts = sum(r[3] for r in rows), sum(r[4] for r in rows)
    answers = statistics.median(r[5] for r in rows)
    notes = ([f"{non2xx} non-2xx"] if non2xx else []) + ([f"{timeouts} timeouts"] if timeouts else [])
    if answers < FEW_ANSWERS:
        notes.append(f"{answers:.0f} answers a run" if answers else "no answer within a run")
    if answers == 0:
        # Not one answer within the run: there is no latency to show, only that it was over SECONDS_EACH.
        return ["0", "–", "–", ", ".join(notes)], 0.0
    return [f"{rps:,.0f}" if rps >= 100 else f"{rps:.1f}", ms(p50), ms(p99), ", ".join(notes)], rps


def ms(value):
    return f"{value:.2f}" if value < 10 else f"{value:,.0f}"


print(
    "| objects | step | caller | Updraft req/s | p50 ms | p99 ms | Parse req/s | p50 ms | p99 ms | Updraft/Parse "
    "| non-2xx, timeouts, few answers |"
)
print("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
for objects, step, caller in sorted({key[:3] for key in runs}, key=lambda k: (k[0], k[1], k[2])):
    updraft, updraft_rps = figures((objects, step, caller, "updraft"))
    parse, parse_rps = figures((objects, step, caller, "parse"))
    ratio = "–"
    if updraft_rps is not None and parse_rps:
        share = updraft_rps / parse_rps
        ratio = "0×" if share == 0 else f"{share:.2f}×" if share >= 0.1 else f"{share:.4f}×"
    failures = "; ".join(f"{name}: {note}" for name, note in (("Updraft", updraft[3]), ("Parse", parse[3])) if note)
    print(
        f"| {objects:,} | {step}. {STEPS[step]} | {caller} | {' | '.join(updraft[:3])} | {' | '.join(parse[:3])} "
        f"| {ratio} | {failures} |"
    )
