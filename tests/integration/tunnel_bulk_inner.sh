#!/usr/bin/env bash
# tunnel_bulk.sh with inner TLS on: large bodies both ways, many streams at once, a slow
# client holding back the gateway through the inner session, a broken answer.
TUNNEL_INNER=1 exec bash "$(dirname "$0")/tunnel_bulk.sh"
