import { mkdtempSync } from 'node:fs';
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

  it('serves the page with the token, sets a same-site cookie and a CSP', async () => {
    const page = await fetch(server.url);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    const cookie = page.headers.get('set-cookie') ?? '';
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    const withCookie = await fetch(`${base}/`, { headers: { Cookie: cookie.split(';')[0] ?? '' } });
    expect(withCookie.status).toBe(200);
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
