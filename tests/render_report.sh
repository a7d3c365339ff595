#!/bin/sh
# Renders an HTML report with headless Chromium, to look at it as a reader would.
# Not run by `cargo test`; needs `chromium` (Debian: apt-get install -y chromium).
#
#   tests/render_report.sh [REPORT.html] [OUT.png] [gpt2-edu arguments...]
#
# Without arguments: writes the report of tiny-gpt2 continuing "The quick brown fox"
# to /tmp/r.html and its screenshot (1280 x 2000 pixels) to /tmp/r.png.
set -eu
report=${1:-/tmp/r.html}
png=${2:-/tmp/r.png}
if [ "$#" -le 2 ]; then
    cargo run --release --quiet -- --model tests/fixtures/tiny-gpt2 "The quick brown fox" \
        -n 8 --html "$report" > /dev/null
else
    shift 2
    cargo run --release --quiet -- "$@" --html "$report" > /dev/null
fi
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --screenshot="$png" --window-size=1280,2000 "file://$(realpath "$report")"
echo "screenshot of $report in $png"
