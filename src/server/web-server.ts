import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { WebSocketServer } from 'ws';
import { DOWNLOAD_PATH } from '@shared/api';
import { RENDERER_CSP } from '@shared/csp';
import type { AppService } from '@service/app-service';
import { errorMessage } from '@shared/unknown-value';

/**
 * Web mode: the renderer and the app API over HTTP on 127.0.0.1, for a GPU box reached over SSH
 * (forward the port) and for browser-driven tests. Every request needs the token: in the URL the
 * server prints (?token=...), which sets a same-site cookie named for the port (two workbenches in
 * one browser keep their own) and redirects to the address without the token, so it stays out of
 * the address bar and history; or as `Authorization: Bearer <token>`. Requests from another origin
 * or for another host are refused.
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

/** The token's cookie: one per port, as Jupyter names its cookies, since cookies do not tell ports apart. */
export const tokenCookieName = (port: number): string => `mimir-token-${port}`;
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

function cookieToken(request: IncomingMessage, cookie: string): string | null {
  for (const part of (request.headers.cookie ?? '').split(';')) {
    const [name, ...rest] = part.trim().split('=');
    if (name === cookie) return rest.join('=');
  }
  return null;
}

/** A request the server answers with a status of its own (400 Bad Request, 413 Payload Too Large). */
class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function send(response: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
  response.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store' });
  response.end(body);
}

/** The body, up to MAX_BODY_BYTES; past that the rest is read and dropped, so the client gets the 413. */
function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    request.on('end', () =>
      size > MAX_BODY_BYTES
        ? reject(new HttpError(413, `Request body of ${size} bytes is over the ${MAX_BODY_BYTES}-byte limit.`))
        : resolve(Buffer.concat(chunks).toString('utf8')),
    );
    request.on('error', reject);
  });
}

/** The request's address; a malformed one (a bad percent escape, say) is the client's error. */
function requestUrl(request: IncomingMessage): URL {
  try {
    const target = request.url ?? '/';
    if (!target.startsWith('/')) throw new Error('not a path');
    // Joined, not resolved: "//host/x" stays a path instead of naming another host.
    const url = new URL(`http://${request.headers.host ?? 'unknown'}${target}`);
    decodeURIComponent(url.pathname);
    return url;
  } catch {
    throw new HttpError(400, `Malformed address: ${request.url ?? ''}`);
  }
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
  // Real paths on both sides: a symbolic link inside the renderer folder must not reach out of it.
  const root = await realpath(path.resolve(rendererDir));
  let origins: string[] = [];
  let hosts: string[] = [];
  let cookie = '';

  const server = createServer((request, response) => {
    void route(request, response).catch((error: unknown) => {
      if (response.headersSent) return;
      if (error instanceof HttpError) send(response, error.status, error.message);
      else send(response, 500, errorMessage(error));
    });
  });

  /** Why a request may not be served (status and text), or null when it may. */
  function refusal(request: IncomingMessage, url: URL): [number, string] | null {
    if (!hosts.includes(request.headers.host ?? '')) return [403, 'Unknown host.'];
    const origin = request.headers.origin;
    if (origin !== undefined && !origins.includes(origin)) return [403, 'Cross-origin request refused.'];
    const bearer = /^Bearer (.+)$/.exec(request.headers.authorization ?? '')?.[1] ?? null;
    const presented = url.searchParams.get('token') ?? bearer ?? cookieToken(request, cookie);
    if (presented === null || !sameSecret(presented, token)) {
      return [401, 'Missing or wrong token: open the URL that `mimir serve` printed.'];
    }
    return null;
  }

  async function route(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = requestUrl(request);
    const refused = refusal(request, url);
    if (refused) return send(response, ...refused);

    if (url.pathname === '/api/call') {
      if (request.method !== 'POST') return send(response, 405, 'Use POST.');
      const text = await readBody(request);
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch (error) {
        return send(response, 400, `Request body is not JSON: ${errorMessage(error)}`);
      }
      return send(response, 200, JSON.stringify(await service.handle(body)), 'application/json');
    }

    if (request.method !== 'GET' && request.method !== 'HEAD') return send(response, 405, 'Use GET.');
    if (url.pathname === DOWNLOAD_PATH) return download(url.searchParams.get('file') ?? '', response);
    if (url.searchParams.has('token')) {
      // The token becomes the cookie; the address loses it (a 303 to itself without ?token=).
      url.searchParams.delete('token');
      response.writeHead(303, {
        // One leading slash: "//host/..." would send the browser to another host.
        Location: `/${url.pathname.replace(/^\/+/, '')}${url.search}`,
        'Set-Cookie': `${cookie}=${token}; HttpOnly; SameSite=Strict; Path=/`,
        'Cache-Control': 'no-store',
      });
      response.end();
      return;
    }
    const relative = url.pathname === '/' ? 'index.html' : decodeURIComponent(url.pathname.slice(1));
    const file = path.resolve(root, relative);
    const real = file.startsWith(root + path.sep) ? await realpath(file).catch(() => null) : null;
    if (!real?.startsWith(root + path.sep) || !(await stat(real)).isFile()) return send(response, 404, 'Not found.');
    const headers: Record<string, string> = {
      'Content-Type': CONTENT_TYPES[path.extname(file)] ?? 'application/octet-stream',
      'Content-Security-Policy': RENDERER_CSP,
      'X-Content-Type-Options': 'nosniff',
      'Cache-Control': 'no-store',
    };
    response.writeHead(200, headers);
    createReadStream(real).pipe(response);
  }

  /** An exported file to the browser as a download (the browser may run on another machine than the files). */
  async function download(file: string, response: ServerResponse): Promise<void> {
    if (!service.exported(file)) {
      return send(response, 404, `${file || 'No file'} is not a file this workbench exported; export it first.`);
    }
    const size = await stat(file).then(
      (found) => (found.isFile() ? found.size : null),
      () => null,
    );
    if (size === null) return send(response, 404, `${file} is gone: export it again.`);
    response.writeHead(200, {
      'Content-Type': 'application/octet-stream',
      'Content-Length': String(size),
      'Content-Disposition': `attachment; filename*=UTF-8''${encodeURIComponent(path.basename(file))}`,
      'Cache-Control': 'no-store',
    });
    createReadStream(file).pipe(response);
  }

  const sockets = new WebSocketServer({ noServer: true });
  server.on('upgrade', (request, socket, head) => {
    let url: URL;
    try {
      url = requestUrl(request);
    } catch {
      socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\nMalformed address.');
      return;
    }
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
  cookie = tokenCookieName(actualPort);
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
