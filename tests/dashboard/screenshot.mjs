// A screenshot of one page in headless Chromium (Debian's, never a downloaded browser), for the
// docs: `node tests/dashboard/screenshot.mjs URL OUT.png [CLICK_TEXT [SHOW_TEXT]]` clicks the
// last element with CLICK_TEXT and scrolls SHOW_TEXT into view first. docs/traces.png is
// Zipkin's page of a trace from `deployer up --tracing`, service-a's span selected to show
// meshtally's tags (docs/guide/seeing.md says how it was made).
import { chromium } from "playwright-core";

const [url, out, click, show] = process.argv.slice(2);
if (!url || !out) {
  console.error("usage: node screenshot.mjs URL OUT.png [CLICK_TEXT [SHOW_TEXT]]");
  process.exit(2);
}
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  // As root (CI), Chromium's sandbox cannot start.
  args: ["--no-sandbox", "--disable-gpu"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 760 } });
  await page.goto(url, { waitUntil: "networkidle" });
  if (click) {
    const target = page.getByText(click).last();
    await target.waitFor({ timeout: 15000 });
    await target.click();
  }
  if (show) await page.getByText(show).first().scrollIntoViewIfNeeded({ timeout: 15000 });
  await page.screenshot({ path: out });
} finally {
  await browser.close();
}
