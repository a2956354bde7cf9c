#!/usr/bin/env bash
# The docs stand alone (issue 17, item 9): no Markdown page cites the specification files
# or the style guide, which are not in this repository (work-protocol.md, "api.md §5",
# "spec §3", shared/spec/..., style.md): a page says what airlock does and names the public source in
# docs/references.md. And every relative link between pages resolves.
# Usage: tools/checkdocs.sh [repo root]; exit 1 listing what is wrong.
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root" || exit 2
fails=0
pages=$(git ls-files 'README.md' 'docs/*.md' 'docs/**/*.md' 2>/dev/null || find README.md docs -name '*.md')
for f in $pages; do
	# a spec file by name (with or without a section), the spec tree, or "spec §N"
	while IFS= read -r hit; do
		echo "$f:$hit: cites a specification file that is not in this repository (see docs/references.md)"
		fails=$((fails + 1))
	done < <(grep -nE 'work-protocol|shared/spec|style\.md|(^|[^/A-Za-z_-])(api|tools|tunnels|egress|sandbox)\.md`? ?§|\bspec (§|(api|tools|tunnels|egress|sandbox)\.md)|\bthe spec\b' "$f" |
		cut -d: -f1)
	# relative links [text](path) must name a file or directory that exists
	dir=$(dirname "$f")
	while IFS= read -r link; do
		target=${link%%#*}
		[ -z "$target" ] && continue
		case $target in http:* | https:* | mailto:*) continue ;; esac
		if [ ! -e "$dir/$target" ]; then
			echo "$f: link to $target: no such file"
			fails=$((fails + 1))
		fi
	done < <(grep -oE '\]\([^)[:space:]]+\)' "$f" | sed -E 's/^\]\((.*)\)$/\1/')
done
if [ "$fails" -gt 0 ]; then
	echo "checkdocs: $fails problem(s)"
	exit 1
fi
echo "checkdocs: docs cite no file outside the repository; every relative link resolves"
