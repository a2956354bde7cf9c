#!/usr/bin/env python3
"""Reads a Prometheus text exposition on stdin with the official Python client's parser
(Debian python3-prometheus-client) and prints its families as JSON: [{name, type,
samples: [{name, labels, value}]}]. Exit 3 with the parser's message when it refuses
the text; exit 77 when the client is not installed (the caller reports a skip)."""
import json
import math
import sys

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    print("python3-prometheus-client is not installed", file=sys.stderr)
    sys.exit(77)

try:
    out = []
    for fam in text_string_to_metric_families(sys.stdin.read()):
        out.append({
            "name": fam.name,
            "type": fam.type,
            "samples": [{"name": s.name, "labels": s.labels,
                         "value": "+Inf" if math.isinf(s.value) else s.value}
                        for s in fam.samples],
        })
except Exception as e:  # the parser raises ValueError and friends on bad text
    print(f"refused: {e}", file=sys.stderr)
    sys.exit(3)
json.dump(out, sys.stdout)
