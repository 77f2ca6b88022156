// What the browser tests' drivers share (ui_browser.js, report_browser.js):
// Debian's chromium, headless, through playwright-core from ui/node_modules,
// in a profile directory of its own under OUT_DIR, and its page's console
// errors and page errors printed as "console TEXT" lines (the tests count
// them).
'use strict';
const path = require('path');
const fs = require('fs');

const oneLine = (s) => String(s).replace(/\s+/g, ' ');

function requirePlaywright() {
    const where = process.env.PPX_UI_NODE_MODULES;
    return require(where ? path.join(where, 'playwright-core') : 'playwright-core');
}

// A headless chromium's context and its first page, errors reported;
// close() ends it and removes its profile directory.
async function launch(outDir) {
    const { chromium } = requirePlaywright();
    const userDataDir = fs.mkdtempSync(path.join(outDir, 'chromium-'));
    const context = await chromium.launchPersistentContext(userDataDir, {
        executablePath: process.env.PPX_CHROMIUM || '/usr/bin/chromium',
        headless: true,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
            '--disable-background-networking', '--disable-component-update', '--disable-sync',
            '--use-gl=swiftshader', '--enable-unsafe-swiftshader'],
        viewport: { width: 1400, height: 900 },
    });
    const page = context.pages()[0] || await context.newPage();
    page.on('console', (m) => {
        if (m.type() === 'error')
            console.log(`console ${oneLine(m.text())}`);
    });
    page.on('pageerror', (e) => console.log(`console page error: ${oneLine(e)}`));
    const close = async () => {
        await context.close();
        fs.rmSync(userDataDir, { recursive: true, force: true });
    };
    return { context, page, close };
}

// Runs main, then exits 0, or 1 with an "error MESSAGE" line.
function run(main) {
    main().then(() => process.exit(0), (e) => {
        console.log(`error ${oneLine(e && e.message || e)}`);
        process.exit(1);
    });
}

module.exports = { oneLine, launch, run };
