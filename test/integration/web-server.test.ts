import { spawnSync } from 'node:child_process';
import { mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forkLauncher } from '../../src/jobs/channel';
import { startWebServer, type WebServer } from '../../src/server/web-server';
import { createAppService } from '../../src/service/app-service';
import { ApiResponse } from '../../src/shared/api';
import { SystemReport } from '../../src/shared/system';
import { requireBuilt } from '../helpers/build';

let server: WebServer;
let base: string;

beforeAll(async () => {
  const service = createAppService({
    launch: forkLauncher,
    forced: null,
    dataDir: mkdtempSync(path.join(os.tmpdir(), 'mimir-data-')),
  });
  server = await startWebServer({ service, rendererDir: requireBuilt('renderer'), port: 0 });
  base = `http://127.0.0.1:${server.port}`;
});
afterAll(() => server.close());

const call = (body: unknown, headers: Record<string, string> = {}): Promise<Response> =>
  fetch(`${base}/api/call`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${server.token}`, ...headers },
    body: JSON.stringify(body),
  });

/** fetch() may not set Host (a forbidden header), so a DNS-rebinding request is made with node:http. */
function statusWithHost(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(
      {
        host: '127.0.0.1',
        port: server.port,
        path: '/',
        headers: { Host: host, Authorization: `Bearer ${server.token}` },
      },
      (response) => {
        response.resume();
        resolve(response.statusCode ?? 0);
      },
    );
    request.on('error', reject);
    request.end();
  });
}

describe('web mode server', () => {
  it('listens on 127.0.0.1 and prints a URL with the token', () => {
    expect(server.url).toBe(`http://127.0.0.1:${server.port}/?token=${server.token}`);
    expect(server.token.length).toBeGreaterThanOrEqual(32);
  });

  it('answers system.report from a separate engine process', async () => {
    const response = ApiResponse.parse(await (await call({ method: 'system.report', input: {} })).json());
    if (!response.ok) throw new Error(response.error.message);
    const report = SystemReport.parse(response.value);
    expect(report.processKind).toBe('engine-process');
    expect(report.pid).not.toBe(process.pid);
    expect(report.chosen).toBe(report.candidates.find((c) => c.available)?.backend);
  });

  it('refuses requests without the token or with a wrong one', async () => {
    expect((await fetch(`${base}/`)).status).toBe(401);
    expect((await fetch(`${base}/api/call`, { method: 'POST', body: '{}' })).status).toBe(401);
    expect((await call({ method: 'system.report', input: {} }, { Authorization: 'Bearer nope' })).status).toBe(401);
    expect((await fetch(`${base}/?token=nope`)).status).toBe(401);
  });

  it('refuses other origins and other host names', async () => {
    expect((await call({ method: 'system.report', input: {} }, { Origin: 'http://evil.example' })).status).toBe(403);
    expect(await statusWithHost(`attacker.test:${server.port}`)).toBe(403);
    expect(await statusWithHost(`localhost:${server.port}`)).toBe(200);
    expect((await call({ method: 'system.report', input: {} }, { Origin: base })).status).toBe(200);
  });

  it('turns the URL token into a cookie named for the port and takes it out of the address', async () => {
    const page = await fetch(server.url, { redirect: 'manual' });
    expect(page.status).toBe(303);
    expect(page.headers.get('location')).toBe('/');
    const cookie = page.headers.get('set-cookie') ?? '';
    expect(cookie).toMatch(new RegExp(`^mimir-token-${server.port}=${server.token};`));
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    const deep = await fetch(`${base}//evil.example/index.html?a=1&token=${server.token}&b=2`, { redirect: 'manual' });
    expect(deep.headers.get('location')).toBe('/evil.example/index.html?a=1&b=2');

    const withCookie = await fetch(`${base}/`, { headers: { Cookie: cookie.split(';')[0] ?? '' } });
    expect(withCookie.status).toBe(200);
    expect(withCookie.headers.get('content-security-policy')).toContain("script-src 'self'");
    // Another workbench's cookie (another port), or the old shared name, is not this one's.
    for (const other of [`mimir-token-${server.port + 1}=${server.token}`, `mimir_token=${server.token}`]) {
      expect((await fetch(`${base}/`, { headers: { Cookie: other } })).status).toBe(401);
    }
  });

  it('answers a malformed address with 400 and a body over the limit with 413', async () => {
    const auth = { Authorization: `Bearer ${server.token}` };
    const malformed = await fetch(`${base}/%E0%A4%A`, { headers: auth });
    expect(malformed.status).toBe(400);
    expect(await malformed.text()).toMatch(/Malformed address/);
    expect((await fetch(`${base}/assets/%zz.js`, { headers: auth })).status).toBe(400);
    const large = await fetch(`${base}/api/call`, { method: 'POST', headers: auth, body: 'x'.repeat((1 << 20) + 1) });
    expect(large.status).toBe(413);
    expect(await large.text()).toMatch(/over the 1048576-byte limit/);
    // The server still answers.
    expect((await call({ method: 'system.report', input: {} })).status).toBe(200);
  });

  it('serves no file through a symbolic link out of the renderer folder, nor a named pipe', async () => {
    const renderer = mkdtempSync(path.join(os.tmpdir(), 'mimir-renderer-'));
    const outside = mkdtempSync(path.join(os.tmpdir(), 'mimir-outside-'));
    writeFileSync(path.join(renderer, 'index.html'), '<!doctype html><title>app</title>');
    writeFileSync(path.join(outside, 'secret.txt'), 'not the renderer’s');
    symlinkSync(path.join(outside, 'secret.txt'), path.join(renderer, 'leak.js'));
    expect(spawnSync('mkfifo', [path.join(renderer, 'pipe.js')]).status).toBe(0);
    const otherService = createAppService({
      launch: forkLauncher,
      forced: null,
      dataDir: mkdtempSync(path.join(os.tmpdir(), 'mimir-data-')),
    });
    const other = await startWebServer({ service: otherService, rendererDir: renderer, port: 0 });
    try {
      const get = (file: string) =>
        fetch(`http://127.0.0.1:${other.port}/${file}`, { headers: { Authorization: `Bearer ${other.token}` } });
      expect((await get('index.html')).status).toBe(200);
      expect((await get('leak.js')).status).toBe(404);
      expect((await get('pipe.js')).status).toBe(404);
    } finally {
      await other.close();
      otherService.close();
    }
  });

  it('rejects malformed requests with a clear error, and paths outside the renderer', async () => {
    const unknown = ApiResponse.parse(await (await call({ method: 'nope', input: {} })).json());
    expect(unknown).toMatchObject({ ok: false, error: { code: 'invalid-input' } });
    const badInput = ApiResponse.parse(await (await call({ method: 'system.report', input: 5 })).json());
    expect(badInput).toMatchObject({ ok: false, error: { code: 'invalid-input' } });
    const notJson = await fetch(`${base}/api/call`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${server.token}` },
      body: '{',
    });
    expect(notJson.status).toBe(400);
    const traversal = await fetch(`${base}/..%2f..%2fpackage.json`, {
      headers: { Authorization: `Bearer ${server.token}` },
    });
    expect(traversal.status).toBe(404);
  });
});
