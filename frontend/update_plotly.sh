#!/bin/sh
# Vendors the partial "cartesian" build of plotly.js that the pages load, with its licence.
#
# Why partial: the pages draw only scatter and heatmap traces (grep 'type: "' frontend/static/*.js);
# the cartesian build has those and the other 2-D traces (bar, box, histogram, histogram2d,
# contour, ...) in 1.5 MB instead of the full bundle's 4.8 MB, which is what a cold page
# load spends most of its time compiling. Why vendored: the pages must work offline, so
# plotly.js is served by the app, never by a CDN.
#
#   frontend/update_plotly.sh          # the version below
#   frontend/update_plotly.sh 4.2.0    # another one (keep the major version the code was written for)
#
# Needs npm (only here, never at run time). A new file gets a new content hash, hence a new URL.
set -eu
VERSION="${1:-4.1.1}"
HERE="$(cd "$(dirname "$0")" && pwd)"
DEST="$HERE/static/vendor"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && npm pack --silent "plotly.js-cartesian-dist-min@$VERSION" >/dev/null && tar xzf ./*.tgz)
for trace in scatter heatmap; do  # every trace type the pages use must be in the bundle
  grep -q "moduleType:\"trace\",name:\"$trace\"" "$WORK/package/plotly-cartesian.min.js" \
    || { echo "plotly.js-cartesian-dist-min@$VERSION lacks the $trace trace" >&2; exit 1; }
done
mkdir -p "$DEST"
cp "$WORK/package/plotly-cartesian.min.js" "$DEST/plotly-cartesian.min.js"
cp "$WORK/package/LICENSE" "$DEST/plotly-cartesian.LICENSE.txt"
echo "vendored plotly.js-cartesian-dist-min@$VERSION into $DEST"
