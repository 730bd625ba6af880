// The Web UI, in a real browser: a dev server with its UI, the lab, and a worker process (the
// current details are served through a query, so they show only while a worker runs). An
// upgrade waits at its first gate; headless Chromium must find it on the list page by its
// search attributes and, on its page, the summary, the pending approval and the exact command.
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { Client, Connection } from '@temporalio/client';
import { findFreePort, startDevServer, stopDevServer, type DevServerInfo } from '../client/devServer';
import { startUpgrade, staticSummary } from '../client/upgrades';
import { loadInventory } from '../inventory/load';
import { labDown, labUp, type LabInfo } from '../lab/lab';
import { progressQuery, type Progress } from '../common/messages';
import { stopWorkerProcess } from '../worker/process';
import { startSharedWorkerProcess } from './temporalEnv';
import { CHROMIUM, launchChromium, openUntil, withUpgradeColumns } from './helpers/webui';

const dir = mkdtempSync(join(tmpdir(), 'webui-'));
// The screenshots in docs/ change only when asked (or when missing), so a test run leaves the
// tree clean; every run still takes them, in its own directory.
const docs = join(__dirname, '..', 'docs');
const shot = (name: string) =>
  process.env.NOVA_UPGRADE_SCREENSHOTS === 'update' || !existsSync(join(docs, name))
    ? join(docs, name)
    : join(dir, name);
const SCREENSHOT = shot('webui-gate.png');
const LIST_SCREENSHOT = shot('webui-list.png');
const taskQueue = `webui-${randomUUID()}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let server: DevServerInfo;
let lab: LabInfo;
let client: Client;
let browser: Browser | undefined;

beforeAll(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (scripts/install.sh does)`);
  // Its own server: the shared one may run headless, and this one must serve the UI.
  const [s, l] = await Promise.all([
    (async () =>
      startDevServer({ stateDir: join(dir, 'temporal'), port: await findFreePort(), uiPort: await findFreePort() }))(),
    labUp({ stateDir: join(dir, 'lab'), subnet: '127.0.4' }),
  ]);
  server = s;
  lab = l;
  await startSharedWorkerProcess(dir, taskQueue, server);
  client = new Client({
    connection: await Connection.connect({ address: server.address }),
    namespace: server.namespace,
  });
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await stopWorkerProcess(dir);
  await client?.connection.close();
  await labDown(join(dir, 'lab'));
  await stopDevServer(join(dir, 'temporal'));
  rmSync(dir, { recursive: true, force: true });
});

describe('the Temporal Web UI', () => {
  it('tells where the upgrade stands: list columns, summary, pending approval and its command', async () => {
    const inv = loadInventory(lab.inventoryPath);
    const h = await startUpgrade(client, taskQueue, inv, { autoApprove: [] });
    const deadline = Date.now() + 30_000;
    let p: Progress | undefined;
    while (Date.now() < deadline && p?.status !== 'waiting-approval') {
      p = await h.query(progressQuery).catch(() => undefined);
      await sleep(200);
    }
    expect(p?.pendingApproval?.phase).toBe('before-upgrade');
    const approve = `nova-upgrade approve ${h.workflowId} --phase before-upgrade --comment "..."`;
    const runId = (await h.describe()).runId;

    browser = await launchChromium();
    const context = await browser.newContext({ viewport: { width: 1440, height: 1000 } });
    await context.addInitScript(withUpgradeColumns(server.namespace));
    const page = await context.newPage();
    const ns = server.namespace;

    // The list page, filtered the way an operator finds upgrades waiting for them.
    const query = encodeURIComponent('UpgradeStatus="waiting-approval" AND UpgradePhase="before-upgrade"');
    const list = await openUntil(
      page,
      `${server.uiUrl}/namespaces/${ns}/workflows?query=${query}`,
      (t) => t.includes(h.workflowId) && t.includes('waiting-approval'),
      'the upgrade on the list page',
    );
    expect(list).toContain('UpgradePhase');
    expect(list).toContain('UpgradeStatus');
    const row = page.locator('tr', { hasText: h.workflowId }).first();
    const cells = await row.innerText();
    expect(cells).toContain('waiting-approval');
    expect(cells).toContain('before-upgrade');
    mkdirSync(docs, { recursive: true });
    await page.screenshot({ path: LIST_SCREENSHOT });

    // The upgrade's own page: the static summary, then the current details from the worker.
    const detail = await openUntil(
      page,
      `${server.uiUrl}/namespaces/${ns}/workflows/${encodeURIComponent(h.workflowId)}/${runId}/history`,
      (t) => t.includes(staticSummary(inv)) && t.includes(approve),
      'the summary and the current details',
      'User Metadata',
    );
    expect(detail).toContain('Waiting for approval of');
    expect(detail).toMatch(/waiting-approval\s*(\*\*)?\s*— nova 30\.0\.0 → 31\.0\.0 on lab/);
    await page.screenshot({ path: SCREENSHOT });
    await h.terminate('web UI test done');
  }, 120_000);
});
