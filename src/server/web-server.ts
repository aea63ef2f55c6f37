import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { WebSocketServer } from 'ws';
import { RENDERER_CSP } from '../shared/csp';
import type { AppService } from '../service/app-service';

/**
 * Web mode: the renderer and the app API over HTTP on 127.0.0.1, for a GPU box reached over SSH
 * (forward the port) and for browser-driven tests. Every request needs the token: in the URL the
 * server prints (?token=...), which sets a same-site cookie for the page's later requests, or as
 * `Authorization: Bearer <token>`. Requests from another origin or for another host are refused.
 * Pushes (run events, run updates) go to every client connected to the WebSocket at /api/push.
 */
export interface WebServerOptions {
  service: AppService;
  /** The built renderer (out/renderer). */
  rendererDir: string;
  /** 0 picks a free port. */
  port: number;
  token?: string;
}

export interface WebServer {
  url: string;
  port: number;
  token: string;
  close(): Promise<void>;
}

const COOKIE = 'mimir_token';
/** The WebSocket the server pushes run events and run updates on. */
export const PUSH_PATH = '/api/push';
const MAX_BODY_BYTES = 1 << 20;
const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
};

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function cookieToken(request: IncomingMessage): string | null {
  for (const part of (request.headers.cookie ?? '').split(';')) {
    const [name, ...rest] = part.trim().split('=');
    if (name === COOKIE) return rest.join('=');
  }
  return null;
}

function send(response: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
  response.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store' });
  response.end(body);
}

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new Error(`Request body over ${MAX_BODY_BYTES} bytes.`));
        request.destroy();
        return;
      }
      chunks.push(chunk);
    });
    request.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    request.on('error', reject);
  });
}

export async function startWebServer({
  service,
  rendererDir,
  port,
  token: given,
}: WebServerOptions): Promise<WebServer> {
  if (!existsSync(path.join(rendererDir, 'index.html'))) {
    throw new Error(`The renderer is not built (no ${path.join(rendererDir, 'index.html')}); run \`npm run build\`.`);
  }
  const token = given ?? randomBytes(24).toString('base64url');
  const root = path.resolve(rendererDir);
  let origins: string[] = [];
  let hosts: string[] = [];

  const server = createServer((request, response) => {
    void route(request, response).catch((error: unknown) => {
      if (!response.headersSent) send(response, 500, error instanceof Error ? error.message : String(error));
    });
  });

  /** Why a request may not be served (status and text), or null when it may. */
  function refusal(request: IncomingMessage, url: URL): [number, string] | null {
    if (!hosts.includes(request.headers.host ?? '')) return [403, 'Unknown host.'];
    const origin = request.headers.origin;
    if (origin !== undefined && !origins.includes(origin)) return [403, 'Cross-origin request refused.'];
    const bearer = /^Bearer (.+)$/.exec(request.headers.authorization ?? '')?.[1] ?? null;
    const presented = url.searchParams.get('token') ?? bearer ?? cookieToken(request);
    if (presented === null || !sameSecret(presented, token)) {
      return [401, 'Missing or wrong token: open the URL that `mimir serve` printed.'];
    }
    return null;
  }

  async function route(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', `http://${request.headers.host ?? 'unknown'}`);
    const refused = refusal(request, url);
    if (refused) return send(response, ...refused);

    if (url.pathname === '/api/call') {
      if (request.method !== 'POST') return send(response, 405, 'Use POST.');
      let body: unknown;
      try {
        body = JSON.parse(await readBody(request));
      } catch (error) {
        return send(
          response,
          400,
          `Request body is not JSON: ${error instanceof Error ? error.message : String(error)}`,
        );
      }
      return send(response, 200, JSON.stringify(await service.handle(body)), 'application/json');
    }

    if (request.method !== 'GET' && request.method !== 'HEAD') return send(response, 405, 'Use GET.');
    const relative = url.pathname === '/' ? 'index.html' : decodeURIComponent(url.pathname.slice(1));
    const file = path.resolve(root, relative);
    if (!file.startsWith(root + path.sep) || !existsSync(file) || !statSync(file).isFile()) {
      return send(response, 404, 'Not found.');
    }
    const headers: Record<string, string> = {
      'Content-Type': CONTENT_TYPES[path.extname(file)] ?? 'application/octet-stream',
      'Content-Security-Policy': RENDERER_CSP,
      'X-Content-Type-Options': 'nosniff',
      'Cache-Control': 'no-store',
    };
    if (url.searchParams.has('token')) {
      headers['Set-Cookie'] = `${COOKIE}=${token}; HttpOnly; SameSite=Strict; Path=/`;
    }
    response.writeHead(200, headers);
    createReadStream(file).pipe(response);
  }

  const sockets = new WebSocketServer({ noServer: true });
  server.on('upgrade', (request, socket, head) => {
    const url = new URL(request.url ?? '/', `http://${request.headers.host ?? 'unknown'}`);
    const refused = url.pathname === PUSH_PATH ? refusal(request, url) : [404, 'Not found.'];
    if (refused) {
      socket.end(`HTTP/1.1 ${refused[0]} Refused\r\nConnection: close\r\n\r\n${refused[1]}`);
      return;
    }
    sockets.handleUpgrade(request, socket, head, (client) => sockets.emit('connection', client, request));
  });
  const stopPushing = service.onPush((message) => {
    const text = JSON.stringify(message);
    for (const client of sockets.clients) if (client.readyState === client.OPEN) client.send(text);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'EADDRINUSE'
          ? new Error(
              `Port ${port} on 127.0.0.1 is in use (another workbench?); pass --port with another number, or 0 for any free one.`,
            )
          : error,
      ),
    );
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const actualPort = (server.address() as AddressInfo).port;
  hosts = [`127.0.0.1:${actualPort}`, `localhost:${actualPort}`];
  origins = hosts.map((host) => `http://${host}`);

  return {
    url: `http://127.0.0.1:${actualPort}/?token=${token}`,
    port: actualPort,
    token,
    close: () =>
      new Promise<void>((resolve) => {
        stopPushing();
        for (const client of sockets.clients) client.terminate();
        sockets.close();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
