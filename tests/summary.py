#!/usr/bin/env python3
"""Totals of tests/run.sh's meson passes, from their testlog.json files.

    summary.py PASS=BUILD/meson-logs/testlog.json ...

Prints every skip with its reason (tests/README.md: a test or check that does not apply on
this host says "skip: <what>: <reason>"; node's spec reporter marks a skipped test with
"﹣ name (t) # reason"; a meson SKIP without such a line is listed with its first output
line), then a loud warning when a security-relevant suite skipped more than half of its
checks, and ends with "totals P F S" for run.sh (P, F: meson tests; S: skips listed).
A skip is never a pass: a test whose checks were all skipped exits 77 (meson SKIP) and is
not counted as passed.
"""
import json
import re
import sys

# Suites whose skips are loud: what they skip is what keeps tool calls in the sandbox.
SECURITY_SUITES = ("sandbox", "sandbox-vm")
NODE_SKIP = re.compile(r"^\s*\ufe63 (.*?) \([0-9.]+m?s\) # (.*)$")
CHECK_TOTALS = re.compile(r"^# (\d+) passed, (\d+) failed, (\d+) skipped$")


def suite_of(name):
    # "airlock:sandbox / sandbox-escapes"
    head = name.split(" / ", 1)[0]
    return head.split(":", 1)[-1]


def test_of(name):
    return name.split(" / ", 1)[-1]


def skips_in(out):
    found = []
    for line in out.splitlines():
        if line.startswith("skip: "):
            found.append(line[len("skip: "):])
            continue
        m = NODE_SKIP.match(line)
        if m:
            found.append("%s: %s" % (m.group(1), m.group(2)))
    return found


def summarize(passes):
    """passes: [(label, [testlog records])] -> (lines, passed, failed, skipped)."""
    lines = []
    passed = failed = 0
    skips = []
    loud = []
    for label, records in passes:
        sec = {"checks": 0, "skipped": 0, "tests": 0, "tests_skipped": 0}
        for r in records:
            result = r.get("result")
            name = r.get("name", "?")
            out = r.get("stdout") or ""
            if result in ("OK", "EXPECTEDFAIL"):
                passed += 1
            elif result != "SKIP":
                failed += 1
            found = skips_in(out)
            if result == "SKIP" and not found:
                first = next((l for l in out.splitlines() if l.strip()), "no reason given")
                found = ["%s (exit 77)" % first.lstrip("# ")]
            for s in found:
                skips.append("[%s] %s: %s" % (label, test_of(name), s))
            if suite_of(name) in SECURITY_SUITES:
                sec["tests"] += 1
                sec["tests_skipped"] += result == "SKIP"
                totals = [CHECK_TOTALS.match(l) for l in out.splitlines()]
                totals = [m for m in totals if m]
                if totals:
                    p, f, s = (int(x) for x in totals[-1].groups())
                    sec["checks"] += p + f + s
                    sec["skipped"] += s
                else:  # skipped before its first check, or no per-check totals
                    sec["checks"] += 1
                    sec["skipped"] += 1 if result == "SKIP" else 0
        if sec["tests"] and (sec["skipped"] * 2 > sec["checks"] or
                             sec["tests_skipped"] * 2 > sec["tests"]):
            loud.append("[%s] sandbox suites skipped %d of %d checks (%d of %d tests)" %
                        (label, sec["skipped"], sec["checks"], sec["tests_skipped"],
                         sec["tests"]))
    if skips:
        lines.append("skipped on this host (not counted as passed):")
        lines.extend("  skip: " + s for s in skips)
    for l in loud:
        lines.append("!" * 78)
        lines.append("!!! WARNING: the SANDBOX (security) suite mostly did not run on this host:")
        lines.append("!!! " + l)
        lines.append("!!! a pass here says little about sandbox escapes; see the skips above")
        lines.append("!" * 78)
    return lines, passed, failed, len(skips)


def load(path):
    records = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                records.append(json.loads(line))
    return records


def main(argv):
    passes = []
    missing = 0
    for arg in argv[1:]:
        label, _, path = arg.partition("=")
        try:
            passes.append((label, load(path)))
        except (OSError, ValueError) as e:
            print("no test log for the %s pass (%s)" % (label, e))
            missing += 1
    lines, p, f, s = summarize(passes)
    for l in lines:
        print(l)
    print("totals %d %d %d" % (p, f + missing, s))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
