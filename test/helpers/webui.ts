// The Temporal Web UI in headless Chromium: shared by the dev server's UI test and the team
// stack's UI server test, so both read the page the same way.
import { existsSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM))
    throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (scripts/install.sh does)`);
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** The columns an operator would pick in "Configure columns", where the UI keeps them. */
export function withUpgradeColumns(namespace: string): string {
  const columns = ['Status', 'Workflow ID', 'UpgradeStatus', 'UpgradePhase', 'UpgradeStep', 'Type', 'Start'].map(
    (label) => ({ label }),
  );
  return `localStorage.setItem('namespace-workflow-table-columns', ${JSON.stringify(JSON.stringify({ [namespace]: columns }))});`;
}

/** The UI renders summaries and details as markdown in sandboxed iframes: read every frame. */
export async function pageText(page: Page): Promise<string> {
  const parts = await Promise.all(page.frames().map((f) => f.innerText('body', { timeout: 2_000 }).catch(() => '')));
  return parts.join('\n');
}

/** The UI loads lazily and polls; a slow first paint on two cores is retried, not failed. */
export async function openUntil(
  page: Page,
  url: string,
  pred: (text: string) => boolean,
  what: string,
  tab?: string,
): Promise<string> {
  const deadline = Date.now() + 45_000;
  let text = '';
  while (Date.now() < deadline) {
    await page.goto(url, { waitUntil: 'domcontentloaded', timeout: 20_000 }).catch(() => undefined);
    if (tab)
      await page
        .getByRole('tab', { name: tab })
        .or(page.getByText(tab, { exact: true }))
        .first()
        .click({ timeout: 15_000 })
        .catch(() => undefined);
    for (let i = 0; i < 10 && Date.now() < deadline; i++) {
      await sleep(700);
      text = await pageText(page);
      if (pred(text)) return text;
    }
  }
  throw new Error(`the Web UI did not show ${what} at ${url}; the page read:\n${text.slice(0, 3000)}`);
}
