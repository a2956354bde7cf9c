#!/usr/bin/env python3
"""Tests of tests/summary.py (what tests/run.sh prints at the end) on made-up test logs:
skips listed with their reasons and never counted as passes, the loud warning when the
sandbox suites skipped more than half of their checks, and the totals line."""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import summary  # noqa: E402

NO_I386 = "host has no i386 syscall entry (int 0x80 faults outside the sandbox too)"


def rec(name, result, stdout=""):
    return {"name": name, "result": result, "stdout": stdout}


def escapes(skipped):
    lines = ["ok 1 - status: BLOCKED CapInh"]
    if skipped:
        lines.append("skip: 32-bit abi i386: " + NO_I386)
    lines.append("# %d passed, 0 failed, %d skipped" % (129 if skipped else 130, skipped))
    return "\n".join(lines) + "\n"


def check(cond, what):
    if not cond:
        print("FAIL: " + what)
        sys.exit(1)
    print("ok - " + what)


def main():
    # a host without the i386 entry and without nft; one unit test fails
    release = [
        rec("airlock:sandbox / sandbox-escapes", "OK", escapes(1)),
        rec("airlock:sandbox / sandbox-limits", "OK", "# 40 passed, 0 failed, 0 skipped\n"),
        rec("airlock:integration / integration-tunnel_netns", "SKIP",
            "skip: needs root, ip and nft\n"),
        rec("airlock:interop / interop-worker_sandbox", "OK",
            "\ufe63 bash runs in the session sandbox (0.3ms) # needs root\n"
            "\u2714 other (1ms)\n"),
        rec("airlock:unit / unit-x", "FAIL", "boom\n"),
        rec("airlock:fuzz / fuzz-y", "SKIP", "\n1..0 # SKIP no corpus\n"),
    ]
    lines, p, f, s = summary.summarize([("release", release)])
    text = "\n".join(lines)
    check((p, f, s) == (3, 1, 4), "counts: 3 passed, 1 failed, 4 skips (got %s)" % ((p, f, s),))
    check("skip: [release] sandbox-escapes: 32-bit abi i386: " + NO_I386 in text,
          "the i386 skip is listed with its reason")
    check("skip: [release] integration-tunnel_netns: needs root, ip and nft" in text,
          "a whole-test skip is listed with its reason")
    check("skip: [release] interop-worker_sandbox: bash runs in the session sandbox: needs root"
          in text, "a node test skip is listed")
    check("skip: [release] fuzz-y: 1..0 # SKIP no corpus (exit 77)" in text,
          "a meson SKIP without a skip line is listed with its first line")
    check("WARNING" not in text, "no warning when the sandbox suites mostly ran")

    # the sandbox suite mostly skipped: loud, per pass
    mostly = [
        rec("airlock:sandbox / sandbox-escapes", "OK",
            "ok 1 - x\n" + "".join("skip: c%d: r\n" % i for i in range(3)) +
            "# 1 passed, 0 failed, 3 skipped\n"),
        rec("airlock:sandbox / sandbox-limits", "SKIP",
            "skip: sandbox-limits: no writable memory+pids cgroups: x\n"
            "# 0 passed, 0 failed, 1 skipped\n"),
    ]
    lines, p, f, s = summary.summarize([("release", release), ("asan", mostly)])
    text = "\n".join(lines)
    check("WARNING: the SANDBOX (security) suite mostly did not run" in text and
          "[asan] sandbox suites skipped 4 of 5 checks (1 of 2 tests)" in text,
          "loud warning for the pass whose sandbox suite skipped 4 of 5 checks")
    check("[release] sandbox suites skipped" not in text, "no warning for the other pass")
    check((p, f, s) == (4, 1, 8), "counts over both passes (got %s)" % ((p, f, s),))

    # exactly half is not "more than half"; the test level counts too
    half = [rec("airlock:sandbox / sandbox-a", "OK", "# 1 passed, 0 failed, 1 skipped\n")]
    check(not any("WARNING" in l for l in summary.summarize([("r", half)])[0]),
          "half the checks skipped: no warning")
    tests_skipped = [
        rec("airlock:sandbox-vm / sandbox-cgroup2-vm", "SKIP", "1..0 # SKIP no qemu\n"),
    ]
    check(any("WARNING" in l for l in summary.summarize([("r", tests_skipped)])[0]),
          "the only sandbox test skipped: warning")

    # the command line: a missing log is a failure, the last line is "totals P F S"
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "testlog.json")
        with open(path, "w") as fh:
            for r in release:
                fh.write(json.dumps(r) + "\n")
        out = subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__),
                                                           "summary.py"),
                              "release=" + path, "asan=" + os.path.join(d, "none.json")],
                             capture_output=True, text=True, check=True).stdout
        check(out.splitlines()[-1] == "totals 3 2 4", "totals line: %r" % out.splitlines()[-1])
        check("no test log for the asan pass" in out, "a missing log is reported")


if __name__ == "__main__":
    main()
