// Opens a page of `ppx report` in Debian's chromium (headless) with
// playwright-core, from file:// with every other request refused (no
// network), for tests/e2e/report_browser.sh.
//
// node report_browser.js PAGE OUT_DIR PROFILE[:SAMPLE_TYPE]...
//   For each PROFILE (its flame graph button, e.g. heap, allocs), shows its
//   flame graph (of SAMPLE_TYPE, chosen in the page's list, else the
//   default) and prints what the viewer (speedscope, inlined) shows, a
//   line each (VIEW: PROFILE or PROFILE:SAMPLE_TYPE as given):
//     title VIEW TITLE              the viewer's document title
//     frame VIEW NAME TOTAL SELF    each row of its Sandwich view
//   and of the page itself:
//     cell PROFILE FUNCTION FLAT CUM each row of the top tables, as shown
//     text ID FIRST_LINE            the first line of the audit and threads texts
//     request URL                   each request not to a file: (refused)
//     console TEXT                  each console error or page error
//   Screenshots go to OUT_DIR. Exit status 0 once everything was read, 1
//   with a message otherwise.
'use strict';
const path = require('path');
const browser = require('./browser.js');
const url = require('url');


const { oneLine } = browser;

async function showProfile(page, view, outDir) {
    let [profile, sampleType] = view.split(':');
    await page.locator(`button[data-flamegraph="${profile}"]`).click();
    if (sampleType)
        await page.locator('#sample-type').selectOption(sampleType);
    const type = await page.locator('#sample-type').inputValue();
    const iframe = `#viewer iframe[data-profile="${profile}"][data-sample-type="${type}"]`;
    const frame = page.frameLocator(iframe);
    const handle = await page.locator(iframe).elementHandle({ timeout: 30000 });
    const viewer = await handle.contentFrame();
    profile = view;
    // speedscope names the profile in its title once it is imported.
    await viewer.waitForFunction(() => / - speedscope$/.test(document.title), null,
        { timeout: 60000 });
    console.log(`title ${profile} ${await viewer.evaluate(() => document.title)}`);
    await frame.locator('canvas').first().waitFor({ timeout: 30000 });
    await page.waitForTimeout(300);
    await page.screenshot({ path: path.join(outDir, `${profile.replace(':', '.')}.flamegraph.png`) });
    await frame.getByText('Sandwich', { exact: false }).first().click();
    const rows = frame.locator('tr:has(td)');
    await rows.first().waitFor({ timeout: 30000 });
    await page.screenshot({ path: path.join(outDir, `${profile.replace(':', '.')}.sandwich.png`) });
    for (const cells of await rows.evaluateAll((trs) =>
        trs.map((tr) => Array.from(tr.querySelectorAll('td'), (td) => td.innerText.trim()))))
        if (cells.length >= 3)
            console.log(`frame ${profile} ${cells[2]}\t${cells[0]}\t${cells[1]}`);
}

async function main() {
    const [pagePath, outDir, ...profiles] = process.argv.slice(2);
    const { context, page, close } = await browser.launch(outDir);
    // No network: only the page's own file.
    await context.route('**/*', (route) => {
        const u = route.request().url();
        if (u.startsWith('file:'))
            return route.continue();
        console.log(`request ${u.slice(0, 200)}`);
        return route.abort();
    });
    page.on('requestfailed', (r) => {
        if (r.url().startsWith('file:'))
            console.log(`console failed request ${r.url().slice(0, 200)}`);
    });
    try {
        await page.goto(url.pathToFileURL(path.resolve(pagePath)).href);
        for (const cells of await page.locator('table.top tbody tr').evaluateAll((trs) =>
            trs.map((tr) => [tr.closest('section').dataset.profile,
                ...Array.from(tr.querySelectorAll('td'), (td) => td.innerText.trim())])))
            console.log(`cell ${cells[0]} ${cells[6]}\t${cells[1]}\t${cells[4]}`);
        for (const id of ['audit', 'threads'])
            console.log(`text ${id} ${oneLine(
                (await page.locator(`#${id} pre`).innerText()).split('\n')[0])}`);
        await page.screenshot({ path: path.join(outDir, 'page.png'), fullPage: true });
        for (const profile of profiles)
            await showProfile(page, profile, outDir);
    } finally {
        await close();
    }
}

browser.run(main);
