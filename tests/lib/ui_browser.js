// Drives ppx collect's web UI in Debian's chromium (headless) with
// playwright-core, for tests/e2e/ui_browser.sh.
//
// node ui_browser.js UI_URL PID PROFILE SAMPLE_TYPE OUT_DIR
//   Opens UI_URL (the /ui/ page), checks that process PID has a row, clicks
//   its PROFILE link of SAMPLE_TYPE, waits for the viewer (speedscope) to
//   load the profile, and prints what it shows, a line each:
//     title TITLE                    the viewer's document title
//     frame NAME TOTAL SELF          each row of its Sandwich view (function
//                                    names and their figures, as shown)
//     console TEXT                   each console error or page error
//   Screenshots (flame graph and sandwich) go to OUT_DIR. Exit status 0
//   once the frames were read, 1 with a message otherwise.
'use strict';
const path = require('path');
const browser = require('./browser.js');


async function main() {
    const [uiURL, pid, profile, sampleType, outDir] = process.argv.slice(2);
    const { page, close } = await browser.launch(outDir);
    page.on('response', (r) => {
        if (r.status() >= 400)
            console.log(`console HTTP ${r.status()} ${new URL(r.url()).pathname}`);
    });
    try {
        await page.goto(uiURL);
        await page.screenshot({ path: path.join(outDir, 'ui.png'), fullPage: true });
        const link = page.locator(
            `tr[data-pid="${pid}"] a[data-profile="${profile}"][data-sample-type="${sampleType}"]`);
        if (await link.count() !== 1)
            throw new Error(`no ${profile} ${sampleType} link for pid ${pid} on ${uiURL}`);
        await link.click();
        // speedscope shows its flame graph on a canvas once the profile is
        // imported; its title then names the profile.
        await page.waitForFunction(() => document.title !== 'speedscope' &&
            !/Loading|Error/i.test(document.title), null, { timeout: 30000 });
        await page.locator('canvas').first().waitFor({ timeout: 30000 });
        console.log(`title ${await page.title()}`);
        await page.keyboard.press('2'); // Left Heavy: the flame graph, biggest first
        await page.waitForTimeout(500);
        await page.screenshot({ path: path.join(outDir, 'flamegraph.png') });
        await page.keyboard.press('3'); // Sandwich: a table of the functions
        const rows = page.locator('tr:has(td)');
        await rows.first().waitFor({ timeout: 30000 });
        await page.screenshot({ path: path.join(outDir, 'sandwich.png') });
        for (const cells of await rows.evaluateAll((trs) =>
            trs.map((tr) => Array.from(tr.querySelectorAll('td'), (td) => td.innerText.trim()))))
            if (cells.length >= 3)
                console.log(`frame ${cells[2]}\t${cells[0]}\t${cells[1]}`);
    } finally {
        await close();
    }
}

browser.run(main);
