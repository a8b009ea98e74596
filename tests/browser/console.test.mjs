// The operator console in headless Chromium against two real server
// instances of one deployment: sign in, swap and shadow policies, see the
// divergences of orders placed through the API, replay, watch the live
// numbers, roll back, and the wrong-token, invalid-component and
// restart-mid-session messages. Saves a screenshot of each page under
// docs/console/.
//
//   node console.test.mjs          (scripts/console-test.sh installs and runs it)
//
// Environment: COMMERCE_BIN (default target/release/commerce), CHROMIUM
// (default /usr/bin/chromium), PG_SERVER (default postgres://postgres@127.0.0.1:5432),
// CONSOLE_TEST_PORT (default 18411; the second instance takes the next port).

import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = process.env.COMMERCE_BIN || path.join(ROOT, 'target/release/commerce');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const PG = process.env.PG_SERVER || 'postgres://postgres@127.0.0.1:5432';
const DB = 'commerce_console_test';
const TOKEN = 'console-test-admin-token';
const BASE_PORT = Number(process.env.CONSOLE_TEST_PORT || 18411);
const SHOTS = path.join(ROOT, 'docs/console');
const PLUGINS = path.join(ROOT, 'target/plugins');
const WAIT = 20000;

const work = mkdtempSync(path.join(tmpdir(), 'console-test-'));
const servers = {};
let context = null;
let failed = false;

// ------------------------------------------------------------------ servers

const url = (name) => `http://127.0.0.1:${servers[name].port}`;

function psql(sql) {
  const run = spawnSync('psql', [`${PG}/postgres`, '-qc', sql], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`psql: ${run.stderr}`);
}

async function start(name, port, demo) {
  const log = path.join(work, `${name}.log`);
  const out = openSync(log, 'a');
  const child = spawn(BIN, ['serve', ...(demo ? ['--demo'] : [])], {
    cwd: ROOT,
    stdio: ['ignore', out, out],
    env: {
      ...process.env,
      DATABASE_URL: `${PG}/${DB}`,
      COMMERCE_LISTEN: `127.0.0.1:${port}`,
      ADMIN_TOKEN: TOKEN,
      COMMERCE_REDIS_PREFIX: 'console-test:',
      COMMERCE_ENV: 'dev',
      COMMERCE_WATCH_POLICIES: 'false',
      RUST_LOG: 'warn',
    },
  });
  servers[name] = { child, port, log };
  for (let i = 0; i < 300; i += 1) {
    if (child.exitCode !== null) throw new Error(`${name} exited: ${readFileSync(log, 'utf8')}`);
    try {
      const r = await fetch(`http://127.0.0.1:${port}/readyz`);
      if (r.ok) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error(`${name} did not become ready: ${readFileSync(log, 'utf8')}`);
}

async function stop(name) {
  const { child } = servers[name];
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

/** Calls the API of an instance as the admin. */
async function call(name, method, apiPath, body) {
  const r = await fetch(`${url(name)}${apiPath}`, {
    method,
    headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${apiPath}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

// ------------------------------------------------------------------ helpers

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function step(name, fn) {
  const started = Date.now();
  process.stdout.write(`- ${name} … `);
  await fn();
  console.log(`ok (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}

/** Waits until the element `selector` holds `text`. */
async function seeText(page, selector, text, timeout = WAIT) {
  try {
    await page.waitForFunction(
      ([sel, want]) => [...document.querySelectorAll(sel)].some((el) => el.textContent.includes(want)),
      [selector, text],
      { timeout, polling: 100 },
    );
  } catch (err) {
    const shown = await page.evaluate((sel) => [...document.querySelectorAll(sel)].map((el) => el.textContent).join(' | '), selector);
    throw new Error(`expected ${JSON.stringify(text)} in ${selector}, found: ${shown.slice(0, 800)}`, { cause: err });
  }
}

/** Waits until the element `selector` holds exactly `text`. */
async function seeExactly(page, selector, text, timeout = WAIT) {
  try {
    await page.waitForFunction(
      ([sel, want]) => document.querySelector(sel)?.textContent.trim() === want,
      [selector, text],
      { timeout, polling: 100 },
    );
  } catch (err) {
    const shown = await page.evaluate((sel) => document.querySelector(sel)?.textContent, selector);
    throw new Error(`expected ${JSON.stringify(text)} in ${selector}, found ${JSON.stringify(shown)}`, { cause: err });
  }
}

async function shoot(page, file, fullPage = true) {
  await page.screenshot({ path: path.join(SHOTS, file), fullPage });
}

/** Drops a file onto a drop zone, as a drag from the desktop would. */
async function dropFile(page, selector, file) {
  const bytes = readFileSync(file).toString('base64');
  await page.evaluate(([sel, name, data]) => {
    const buffer = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
    const transfer = new DataTransfer();
    transfer.items.add(new File([buffer], name, { type: 'application/wasm' }));
    const zone = document.querySelector(sel);
    zone.dispatchEvent(new DragEvent('dragover', { dataTransfer: transfer, bubbles: true, cancelable: true }));
    zone.dispatchEvent(new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true }));
  }, [selector, path.basename(file), bytes]);
}

async function signIn(page, name, token) {
  await page.goto(`${url(name)}/console`);
  await page.locator('#token').fill(token);
  await page.keyboard.press('Enter');
}

// -------------------------------------------------------------------- test

async function main() {
  mkdirSync(SHOTS, { recursive: true });
  psql(`drop database if exists ${DB} with (force)`);
  await step('two instances of one deployment', async () => {
    await start('a', BASE_PORT, true);
    await start('b', BASE_PORT + 1, false);
  });

  context = await chromium.launchPersistentContext(path.join(work, 'profile'), {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1360, height: 860 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const a = context.pages()[0] || (await context.newPage());
  const b = await context.newPage();
  const errors = [];
  for (const page of [a, b]) {
    page.on('dialog', (dialog) => dialog.accept());
    page.on('pageerror', (err) => errors.push(err.message));
  }

  await step('a wrong token is refused with a clear message', async () => {
    await signIn(a, 'a', 'not-the-token');
    await seeText(a, '#signin-message', 'Wrong token');
    await seeText(a, '#signin-message', '401 UNAUTHORIZED');
    if (await a.locator('#nav').isVisible()) throw new Error('the pages are offered before signing in');
    await shoot(a, 'sign-in-wrong-token.png', false);
  });

  await step('sign in with the admin token: the policies of the deployment', async () => {
    await a.locator('#token').fill(TOKEN);
    await a.getByRole('button', { name: 'Sign in' }).click();
    await seeText(a, '#slot-pricing .active-label', 'pricing-standard@');
    await seeText(a, '#slot-pricing table', 'manifest:dev.toml');
    await seeText(a, '#slot-coupon .active-label', 'coupon-standard@');
  });

  await step('a component of the wrong slot: INVALID_COMPONENT and the server\'s detail', async () => {
    await a.locator('#file-pricing').setInputFiles(path.join(PLUGINS, 'coupon-standard.wasm'));
    await a.locator('#slot-pricing').getByRole('button', { name: 'Make active' }).click();
    await seeText(a, '#slot-pricing .result', 'the server refused the component (400 INVALID_COMPONENT)');
    const detail = await a.locator('#slot-pricing .result pre.detail').textContent();
    if (!detail.trim()) throw new Error('the INVALID_COMPONENT detail is empty');
    await a.locator('#slot-pricing').scrollIntoViewIfNeeded();
    await shoot(a, 'invalid-component.png', false);
  });

  await step('drop pricing-bulk on pricing and make it active', async () => {
    await dropFile(a, '#slot-pricing .drop', path.join(PLUGINS, 'pricing-bulk.wasm'));
    await seeText(a, '#slot-pricing .drop', 'pricing-bulk.wasm');
    await a.locator('#slot-pricing').getByRole('button', { name: 'Make active' }).click();
    await seeText(a, '#slot-pricing .result', 'is now active in pricing');
    await seeText(a, '#slot-pricing .active-label', 'pricing-bulk@');
    await seeText(a, '#slot-pricing .previous', 'pricing-standard@');
  });

  await step('the other instance shows pricing-bulk active', async () => {
    await signIn(b, 'b', TOKEN);
    await seeText(b, '#slot-pricing .active-label', 'pricing-bulk@');
    await seeText(b, '#slot-pricing table', 'upload');
  });

  await step('start pricing-standard as the shadow of pricing', async () => {
    await a.locator('#file-pricing').setInputFiles(path.join(PLUGINS, 'pricing-standard.wasm'));
    await a.locator('#slot-pricing').getByRole('button', { name: 'Start as shadow' }).click();
    await seeText(a, '#slot-pricing .result', 'now shadows pricing');
    await seeText(a, '#slot-pricing .shadowing', 'pricing-standard@');
    await shoot(a, 'policies.png');
  });

  const buyer = await call('a', 'POST', '/api/v1/users', { name: 'console-buyer' });
  const product = await call('a', 'POST', '/api/v1/admin/products', { name: 'Console test pen', category: 'stationery', price: 1200, stock: 100000 });
  async function placeOrders(count) {
    for (let i = 0; i < count; i += 1) {
      const instance = i % 2 ? 'b' : 'a';
      // 10 units or more: pricing-bulk takes 10% off, pricing-standard does not.
      const order = await call(instance, 'POST', '/api/v1/orders', { user_id: buyer.id, items: [{ product_id: product.id, quantity: 10 + (i % 3) }] });
      if (i % 2 === 0) await call(instance, 'POST', '/api/v1/payments', { order_id: order.id, user_id: buyer.id });
    }
  }

  await step('orders placed through the API on both instances', async () => {
    await call('a', 'POST', `/api/v1/users/${buyer.id}/points/charge`, { amount: 1000000 });
    await placeOrders(8);
  });

  await step('the shadow page shows the divergences side by side', async () => {
    await a.keyboard.press('2'); // keyboard navigation
    await seeText(a, '#shadow-pricing', 'pricing-standard@');
    await seeExactly(a, '#shadow-pricing [data-tile="diverged"] .value', '8');
    await seeText(a, '#shadow-pricing table.diff', 'bulk 10% off');
    await a.locator('#shadow-pricing details summary').first().click();
    await seeText(a, '#shadow-pricing details pre', 'quantity');
    await shoot(a, 'shadow.png');
  });

  await step('replay the recorded orders through pricing-standard, with progress', async () => {
    await a.keyboard.press('3');
    await a.locator('#replay-slot').selectOption('pricing');
    await a.locator('#replay-since').fill('1h');
    await a.locator('#replay-file').setInputFiles(path.join(PLUGINS, 'pricing-standard.wasm'));
    await a.getByRole('button', { name: 'Replay', exact: true }).click();
    await seeText(a, '#replay-job', 'done');
    await seeExactly(a, '#replay-job [data-tile="differ"] .value', '8');
    await seeText(a, '#replay-job pre', 'replayed 8 orders placed since');
    await seeText(a, '#replay-job progress + span', '8 of 8 recorded orders read (100%)');
    await shoot(a, 'replay.png');
  });

  await step('live numbers: policy latency by version, orders and coupons per second', async () => {
    await a.keyboard.press('4');
    await seeText(a, 'main h1', 'Live numbers');
    // Some traffic while the page samples: orders and coupon issuances.
    const users = [];
    for (let i = 0; i < 3; i += 1) users.push(await call('a', 'POST', '/api/v1/users', { name: `console-coupon-${i}` }));
    const coupon = await call('a', 'POST', '/api/v1/admin/coupons', {
      name: 'console test coupon', discount: { kind: 'fixed', value: 500 }, total_quantity: 2,
      min_order_amount: 0, valid_from: new Date(Date.now() - 60000).toISOString(), valid_until: new Date(Date.now() + 86400000).toISOString(),
    });
    for (let round = 0; round < 3; round += 1) {
      await placeOrders(4);
      for (const user of users) {
        await fetch(`${url('a')}/api/v1/coupons/${coupon.id}/issue`, {
          method: 'POST', headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ user_id: user.id }),
        });
      }
      await sleep(2100);
    }
    await seeText(a, 'table.latency', 'pricing-bulk@');
    await seeText(a, '.legend', 'placed');
    await seeText(a, '.legend', 'sold_out');
    await shoot(a, 'live.png');
  });

  await step('roll pricing back; the other instance follows', async () => {
    await a.keyboard.press('1');
    await a.locator('#slot-pricing').getByRole('button', { name: /^Roll back to pricing-standard@/ }).click();
    await seeText(a, '#slot-pricing .result', 'rolled back');
    await seeText(a, '#slot-pricing .active-label', 'pricing-standard@');
    await seeText(a, '#slot-pricing table', 'rolled back');
    await seeText(b, '#slot-pricing .active-label', 'pricing-standard@');
  });

  await step('stop the shadow from the shadow page', async () => {
    await a.keyboard.press('2');
    await a.locator('#shadow-pricing').getByRole('button', { name: 'Stop shadow' }).click();
    await seeText(a, '#shadow-pricing', 'No shadow in pricing');
  });

  await step('a server restart mid-session: a clear message, then back', async () => {
    await a.keyboard.press('1');
    await seeText(a, '#slot-pricing .active-label', 'pricing-standard@');
    await stop('a');
    await seeText(a, '#banner', 'Connection lost');
    const shown = await a.locator('#slot-pricing .active-label').textContent();
    if (!shown.includes('pricing-standard@')) throw new Error('the page went blank while the server was down');
    await shoot(a, 'restart.png', false);
    await start('a', BASE_PORT, false);
    await seeText(a, '#banner', 'answering again');
    await seeText(a, '#slot-pricing .active-label', 'pricing-standard@');
  });

  if (errors.length) throw new Error(`script errors in the console: ${errors.join('; ')}`);
}

try {
  await main();
  console.log(`console browser test passed; screenshots in ${path.relative(process.cwd(), SHOTS) || SHOTS}`);
} catch (err) {
  failed = true;
  console.log('FAILED');
  console.error(err);
  for (const [name, server] of Object.entries(servers)) {
    console.error(`--- ${name} log (tail)`);
    console.error(readFileSync(server.log, 'utf8').split('\n').slice(-30).join('\n'));
  }
} finally {
  if (context) await context.close().catch(() => {});
  await Promise.all(Object.keys(servers).map((name) => stop(name).catch(() => {})));
  try {
    psql(`drop database if exists ${DB} with (force)`);
  } catch (err) {
    console.error(err.message);
  }
  rmSync(work, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
