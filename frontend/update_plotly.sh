#!/bin/sh
# Builds and vendors the plotly.js bundle the pages load: plotly.js's core (scatter and the
# components) plus the heatmap trace, minified, with plotly.js's licence.
#
# Why a custom bundle: the pages draw only scatter and heatmap traces (grep 'type: "'
# frontend/static/*.js), and a cold page load spends most of its time compiling and running
# plotly.js. The partial "cartesian" build on npm (1.5 MB: eleven traces and the calendars
# component, all registered at load) gave a study page its first chart in 1053 and 949 ms
# (medians of 5 cold visits, two runs); this bundle (1.2 MB) in 581 and 722 ms, each run back
# to back with one of the other's (bench/RESULTS.md).
# Built the way plotly.js builds its own bundles (esbuild, its CSS and environment plugins,
# an IIFE that defines window.Plotly), as its CUSTOM_BUNDLE.md describes, without cloning the
# repository. Why vendored: the pages must work offline, so plotly.js is served by the app,
# never by a CDN.
#
#   frontend/update_plotly.sh          # the versions below
#   frontend/update_plotly.sh 4.2.0    # another plotly.js (keep the major version the code was written for)
#
# Needs npm (only here, never at run time). A new file gets a new content hash, hence a new URL.
set -eu
VERSION="${1:-4.1.1}"
HERE="$(cd "$(dirname "$0")" && pwd)"
DEST="$HERE/static/vendor"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
npm init -y >/dev/null
npm install --silent --no-audit --no-fund "plotly.js@$VERSION" esbuild@0.25.12 \
  esbuild-plugin-inline-css@0.0.1 esbuild-plugin-environment@0.5.0 >/dev/null
cat > entry.js <<'EOF'
'use strict';
var Plotly = require('plotly.js/lib/core');  // scatter and every component
Plotly.register([require('plotly.js/lib/heatmap')]);
module.exports = Plotly;
EOF
cat > build.js <<'EOF'
const { environmentPlugin } = require('esbuild-plugin-environment');
const InlineCSSPlugin = require('esbuild-plugin-inline-css');
require('esbuild').build({
  entryPoints: ['entry.js'], outfile: 'plotly-initlab.min.js', format: 'iife', globalName: 'Plotly',
  bundle: true, minify: true, legalComments: 'none', target: 'es2016', logLevel: 'warning',
  plugins: [InlineCSSPlugin(), environmentPlugin({ NODE_DEBUG: false })],
  define: { global: 'window', 'define.amd': 'false' },
}).catch(() => process.exit(1));
EOF
node build.js
for trace in scatter heatmap; do  # every trace type the pages use must be in the bundle
  grep -q "moduleType:\"trace\",name:\"$trace\"" plotly-initlab.min.js \
    || { echo "the bundle of plotly.js@$VERSION lacks the $trace trace" >&2; exit 1; }
done
mkdir -p "$DEST"
rm -f "$DEST"/plotly-*.min.js "$DEST"/plotly-*.LICENSE.txt
{ echo "/*! plotly.js v$VERSION (core + heatmap, built by frontend/update_plotly.sh) | MIT, see plotly-initlab.LICENSE.txt */"
  cat plotly-initlab.min.js; } > "$DEST/plotly-initlab.min.js"
cp node_modules/plotly.js/LICENSE "$DEST/plotly-initlab.LICENSE.txt"
echo "vendored plotly.js@$VERSION (core + heatmap) into $DEST"
