# What the browser tests (ui_browser.sh, report_browser.sh) need, or they
# skip: Debian's chromium and node (scripts/deps --test), and ui/'s
# playwright-core and speedscope (npm ci). Sets modules (ui/node_modules)
# and chromium.
modules="$top_srcdir/ui/node_modules"
chromium=${PPX_CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] || skip "no $chromium (scripts/deps --test installs Debian's chromium)"
require_cmd node nodejs
for m in playwright-core speedscope; do
    [ -f "$modules/$m/package.json" ] || skip "no $modules/$m (scripts/deps --test runs npm ci in ui/)"
done
