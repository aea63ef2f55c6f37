import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CIFAR10_ARCHIVE } from './cifar10';
import { DatasetError } from './dataset';
import { syncDirectory } from '../io/atomic-file';
import { errorMessage } from '@shared/unknown-value';

export const CIFAR10_URL = 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz';
export const CIFAR10_MD5 = 'c32a1d4ab5d03f1284b67883e8d87530';
/** A mirror of the archive (or a test's local server) in place of the official address, and its MD5. */
export const CIFAR10_URL_ENV = 'MIMIR_CIFAR10_URL';
export const CIFAR10_MD5_ENV = 'MIMIR_CIFAR10_MD5';

/** Where datasets go unless told: $MIMIR_DATA, or ~/.mimir/datasets. */
export function defaultDatasetsDir(): string {
  return process.env.MIMIR_DATA ?? path.join(os.homedir(), '.mimir', 'datasets');
}

/** The CIFAR-10 archive's address and MD5: the official ones unless MIMIR_CIFAR10_URL / _MD5 say otherwise. */
export function cifar10Origin(): { url: string; md5: string } {
  return {
    url: process.env[CIFAR10_URL_ENV] || CIFAR10_URL,
    md5: process.env[CIFAR10_MD5_ENV] || CIFAR10_MD5,
  };
}

export interface DownloadProgress {
  receivedBytes: number;
  /** From Content-Length / Content-Range; null when the server does not say. */
  totalBytes: number | null;
  /** Bytes that were already on disk from an earlier, interrupted transfer. */
  resumedFrom: number;
}

export interface DownloadOptions {
  url: string;
  /** The final file; the transfer goes to `<dest>.part` until it is complete and verified. */
  dest: string;
  /** Expected MD5 (hex); the file is only moved into place when it matches. */
  md5?: string;
  onProgress?: (progress: DownloadProgress) => void;
  /** Least time between two progress calls (default 100 ms); the last one always comes. */
  progressIntervalMs?: number;
  signal?: AbortSignal;
  /** Automatic resumes after a broken connection before giving up (default 3). */
  retries?: number;
  retryDelayMs?: number;
}

export interface DownloadResult {
  path: string;
  bytes: number;
  md5: string;
  /** Bytes reused from an earlier partial file. */
  resumedFrom: number;
  /** The file was already there and verified; nothing was fetched. */
  alreadyPresent: boolean;
}

async function sizeOf(file: string): Promise<number | null> {
  try {
    return (await stat(file)).size;
  } catch {
    return null;
  }
}

async function hashFile(file: string, hash: Hash = createHash('md5')): Promise<Hash> {
  for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) hash.update(chunk);
  return hash;
}

// Content-Range "bytes 100-199/1000" or "bytes (star)/1000" -> { start, total }
function parseContentRange(header: string | null): { start: number | null; total: number | null } {
  const match = header ? /bytes\s+(?:(\d+)-\d+|\*)\/(\d+|\*)/i.exec(header) : null;
  if (!match) return { start: null, total: null };
  return {
    start: match[1] === undefined ? null : Number(match[1]),
    total: match[2] === '*' || match[2] === undefined ? null : Number(match[2]),
  };
}

class Interrupted extends Error {}

/**
 * Downloads `url` to `dest` with progress, resuming a partial `<dest>.part` through an HTTP Range
 * request (also after a broken connection, up to `retries` times), and verifies the MD5 before the
 * file is moved into place. A checksum mismatch deletes the partial file and throws.
 */
export async function downloadFile(options: DownloadOptions): Promise<DownloadResult> {
  const { url, dest, signal } = options;
  const expectedMd5 = options.md5?.toLowerCase();
  const retries = options.retries ?? 3;
  const interval = options.progressIntervalMs ?? 100;
  const part = `${dest}.part`;
  await mkdir(path.dirname(dest), { recursive: true });

  if ((await sizeOf(dest)) !== null) {
    const md5 = (await hashFile(dest)).digest('hex');
    if (expectedMd5 && md5 !== expectedMd5) {
      throw new DatasetError(
        'checksum',
        `${dest} exists but its MD5 is ${md5}, not the expected ${expectedMd5}: it is corrupt or another file. Delete it to download again.`,
        dest,
      );
    }
    return { path: dest, bytes: (await sizeOf(dest)) ?? 0, md5, resumedFrom: 0, alreadyPresent: true };
  }

  let offset = (await sizeOf(part)) ?? 0;
  const resumedFrom = offset;
  let hash = offset > 0 ? await hashFile(part) : createHash('md5');
  let total: number | null = null;
  let lastReport = 0;
  const report = (force: boolean) => {
    const now = Date.now();
    if (!options.onProgress || (!force && now - lastReport < interval)) return;
    lastReport = now;
    options.onProgress({ receivedBytes: offset, totalBytes: total, resumedFrom });
  };

  for (let attempt = 0; ; attempt++) {
    try {
      await fetchInto();
      break;
    } catch (error) {
      if (signal?.aborted || !(error instanceof Interrupted) || attempt >= retries) {
        if (error instanceof DatasetError) throw error;
        const saved =
          offset > 0
            ? `; ${offset.toLocaleString('en-US')} bytes are kept in ${part} and the next try resumes from there`
            : '';
        throw new DatasetError('download', `Download of ${url} failed: ${errorMessage(error)}${saved}.`, url, {
          cause: error,
        });
      }
      await new Promise((resolve) => setTimeout(resolve, options.retryDelayMs ?? 1000 * (attempt + 1)));
    }
  }

  report(true);
  const md5 = hash.digest('hex');
  if (expectedMd5 && md5 !== expectedMd5) {
    await rm(part, { force: true });
    throw new DatasetError(
      'checksum',
      `Checksum mismatch for ${url}: MD5 ${md5}, expected ${expectedMd5}. The download is corrupt; the partial file was removed, so a retry starts afresh.`,
      url,
    );
  }
  await rename(part, dest);
  await syncDirectory(path.dirname(dest));
  return { path: dest, bytes: offset, md5, resumedFrom, alreadyPresent: false };

  async function fetchInto(): Promise<void> {
    const headers: Record<string, string> = offset > 0 ? { Range: `bytes=${offset}-` } : {};
    let response: Response;
    try {
      response = await fetch(url, { headers, signal });
    } catch (error) {
      throw new Interrupted(
        `cannot connect: ${errorMessage(error)}${error instanceof Error && error.cause ? ` (${errorMessage(error.cause)})` : ''}`,
      );
    }
    let append = offset > 0;
    if (response.status === 416 && offset > 0) {
      // Nothing past our offset: the partial file is complete if its size is the resource's size.
      await response.body?.cancel();
      const range = parseContentRange(response.headers.get('content-range'));
      if (range.total === offset) {
        total = offset;
        return;
      }
      append = false;
      response = await fetch(url, { signal });
    }
    if (response.status === 206) {
      const range = parseContentRange(response.headers.get('content-range'));
      if (range.start !== offset) {
        await response.body?.cancel();
        throw new DatasetError(
          'download',
          `${url} answered a resume from byte ${offset} with a range starting at ${range.start ?? 'an unknown byte'}.`,
          url,
        );
      }
      total = range.total;
    } else if (response.status === 200) {
      append = false; // the server ignored the Range header: start over
      const length = response.headers.get('content-length');
      total = length === null ? null : Number(length);
    } else {
      await response.body?.cancel();
      const message = `${url} answered HTTP ${response.status} ${response.statusText}`.trim();
      if (response.status >= 500) throw new Interrupted(message);
      throw new DatasetError('download', `Download failed: ${message}.`, url);
    }
    if (!append) {
      offset = 0;
      hash = createHash('md5');
    }

    const file = await open(part, append ? 'a' : 'w');
    try {
      if (!response.body) throw new Interrupted('the response has no body');
      report(true);
      try {
        for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
          await file.write(chunk);
          hash.update(chunk);
          offset += chunk.length;
          report(false);
        }
      } catch (error) {
        if (signal?.aborted) throw error;
        throw new Interrupted(
          `the connection broke after ${offset.toLocaleString('en-US')} bytes: ${errorMessage(error)}`,
        );
      }
      // The part file is the download's temporary file: flushed to disk before it is renamed into place.
      await file.sync();
    } finally {
      await file.close();
    }
    if (total !== null && offset !== total) {
      throw new Interrupted(
        `the transfer ended after ${offset.toLocaleString('en-US')} of ${total.toLocaleString('en-US')} bytes`,
      );
    }
  }
}

/** Downloads cifar-10-binary.tar.gz into `dir` (resuming, verified) and returns the archive's path. */
export async function downloadCifar10(
  dir: string,
  options: Omit<DownloadOptions, 'url' | 'dest' | 'md5'> & { url?: string; md5?: string } = {},
): Promise<DownloadResult> {
  return downloadFile({
    ...options,
    url: options.url ?? CIFAR10_URL,
    md5: options.md5 ?? CIFAR10_MD5,
    dest: path.join(dir, CIFAR10_ARCHIVE),
  });
}
