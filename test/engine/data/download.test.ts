import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openCifar10 } from '../../../src/engine/data/cifar10';
import { DatasetError } from '../../../src/engine/data/dataset';
import { CIFAR10_MD5, downloadCifar10, downloadFile, type DownloadProgress } from '../../../src/engine/data/download';
import { Cifar10Source } from '../../../src/shared/dataset-config';
import { cifarArchive } from './helpers/cifar';

/** A local server on 127.0.0.1 with Range support and switchable faults. */
const archive = cifarArchive(8);
const archiveMd5 = createHash('md5').update(archive).digest('hex');
let server: http.Server;
let base: string;
let dir: string;
let requests: { url: string; range: string | undefined }[] = [];
let mode: { cutAfter: number | null; cutTimes: number; ignoreRange: boolean } = {
  cutAfter: null,
  cutTimes: 0,
  ignoreRange: false,
};

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'mimir-download-'));
  server = http.createServer((req, res) => {
    requests.push({ url: req.url ?? '', range: req.headers.range });
    if (req.url !== '/cifar-10-binary.tar.gz') {
      res.writeHead(404, 'Not Found').end();
      return;
    }
    const match = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (match && !mode.ignoreRange) {
      const start = Number(match[1]);
      if (start >= archive.length) {
        res.writeHead(416, { 'Content-Range': `bytes */${archive.length}` }).end();
        return;
      }
      res.writeHead(206, {
        'Content-Range': `bytes ${start}-${archive.length - 1}/${archive.length}`,
        'Content-Length': archive.length - start,
      });
      res.end(archive.subarray(start));
      return;
    }
    res.writeHead(200, { 'Content-Length': archive.length, 'Accept-Ranges': 'bytes' });
    if (mode.cutAfter !== null && mode.cutTimes > 0) {
      mode.cutTimes--;
      // Send part of the body, then drop the connection mid-transfer.
      res.write(archive.subarray(0, mode.cutAfter), () => setTimeout(() => res.socket?.destroy(), 20));
      return;
    }
    res.end(archive);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

beforeEach(() => {
  requests = [];
  mode = { cutAfter: null, cutTimes: 0, ignoreRange: false };
});

const url = () => `${base}/cifar-10-binary.tar.gz`;
const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

describe('downloadFile against a local server', () => {
  it('downloads with progress and a verified MD5, then the CIFAR-10 reader opens the file', async () => {
    const dest = path.join(dir, 'fresh', 'cifar-10-binary.tar.gz');
    const progress: DownloadProgress[] = [];
    const result = await downloadFile({
      url: url(),
      dest,
      md5: archiveMd5,
      onProgress: (p) => progress.push(p),
      progressIntervalMs: 0,
    });
    expect(result).toMatchObject({
      path: dest,
      bytes: archive.length,
      md5: archiveMd5,
      resumedFrom: 0,
      alreadyPresent: false,
    });
    expect((await readFile(dest)).equals(archive)).toBe(true);
    expect(await exists(`${dest}.part`)).toBe(false);
    expect(progress.length).toBeGreaterThanOrEqual(2);
    for (let i = 1; i < progress.length; i++)
      expect((progress[i] as DownloadProgress).receivedBytes).toBeGreaterThanOrEqual(
        (progress[i - 1] as DownloadProgress).receivedBytes,
      );
    expect(progress.at(-1)).toEqual({ receivedBytes: archive.length, totalBytes: archive.length, resumedFrom: 0 });

    const ds = await openCifar10(Cifar10Source.parse({ kind: 'cifar10', root: dest, split: 'test' }), {
      recordsPerFile: 8,
    });
    expect(ds.length).toBe(8);

    // Already there and verified: no request at all.
    requests = [];
    const again = await downloadFile({ url: url(), dest, md5: archiveMd5 });
    expect(again.alreadyPresent).toBe(true);
    expect(requests).toHaveLength(0);
  });

  it('keeps the partial file after an interrupted transfer and resumes it with a Range request', async () => {
    const dest = path.join(dir, 'resume', 'cifar-10-binary.tar.gz');
    const cut = Math.floor(archive.length / 3);
    mode = { cutAfter: cut, cutTimes: 1, ignoreRange: false };
    const error = await downloadFile({ url: url(), dest, md5: archiveMd5, retries: 0 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DatasetError);
    expect((error as DatasetError).code).toBe('download');
    expect((error as DatasetError).message).toContain(url());
    expect((error as DatasetError).message).toContain(`${dest}.part`);
    expect((await stat(`${dest}.part`)).size).toBe(cut);
    expect(await exists(dest)).toBe(false);

    requests = [];
    const progress: DownloadProgress[] = [];
    const result = await downloadFile({
      url: url(),
      dest,
      md5: archiveMd5,
      onProgress: (p) => progress.push(p),
      progressIntervalMs: 0,
    });
    expect(requests).toEqual([{ url: '/cifar-10-binary.tar.gz', range: `bytes=${cut}-` }]);
    expect(result.resumedFrom).toBe(cut);
    expect(result.md5).toBe(archiveMd5);
    expect(progress[0]?.receivedBytes).toBe(cut);
    expect((await readFile(dest)).equals(archive)).toBe(true);
  });

  it('resumes by itself after a dropped connection when retries are allowed', async () => {
    const dest = path.join(dir, 'retry', 'cifar-10-binary.tar.gz');
    const cut = Math.floor(archive.length / 2);
    mode = { cutAfter: cut, cutTimes: 1, ignoreRange: false };
    const result = await downloadFile({ url: url(), dest, md5: archiveMd5, retries: 2, retryDelayMs: 10 });
    expect(requests.map((r) => r.range)).toEqual([undefined, `bytes=${cut}-`]);
    expect(result.md5).toBe(archiveMd5);
    expect((await readFile(dest)).equals(archive)).toBe(true);
  });

  it('starts over when the server ignores the Range header', async () => {
    const dest = path.join(dir, 'norange', 'cifar-10-binary.tar.gz');
    await mkdir(path.dirname(dest), { recursive: true });
    await writeFile(`${dest}.part`, archive.subarray(0, 1000));
    mode.ignoreRange = true;
    const result = await downloadFile({ url: url(), dest, md5: archiveMd5 });
    expect(requests.map((r) => r.range)).toEqual(['bytes=1000-']);
    expect(result.md5).toBe(archiveMd5);
    expect((await readFile(dest)).equals(archive)).toBe(true);
  });

  it('treats a partial file that is already complete (416) as done and verifies it', async () => {
    const dest = path.join(dir, 'complete', 'cifar-10-binary.tar.gz');
    await mkdir(path.dirname(dest), { recursive: true });
    await writeFile(`${dest}.part`, archive);
    const result = await downloadFile({ url: url(), dest, md5: archiveMd5 });
    expect(requests.map((r) => r.range)).toEqual([`bytes=${archive.length}-`]);
    expect(result.resumedFrom).toBe(archive.length);
    expect((await readFile(dest)).equals(archive)).toBe(true);
  });

  it('rejects a checksum mismatch, removes the partial file and does not put the file in place', async () => {
    const dest = path.join(dir, 'badsum', 'cifar-10-binary.tar.gz');
    const error = await downloadCifar10(path.dirname(dest), { url: url() }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DatasetError);
    expect((error as DatasetError).code).toBe('checksum');
    expect((error as DatasetError).message).toContain(archiveMd5);
    expect((error as DatasetError).message).toContain(CIFAR10_MD5);
    expect(await exists(dest)).toBe(false);
    expect(await exists(`${dest}.part`)).toBe(false);

    const ok = await downloadCifar10(path.dirname(dest), { url: url(), md5: archiveMd5 });
    expect(ok.path).toBe(dest);
  });

  it('reports an HTTP error with its status and the URL', async () => {
    const missing = `${base}/nothing-here.tar.gz`;
    const error = await downloadFile({ url: missing, dest: path.join(dir, 'missing', 'x.tar.gz'), retries: 0 }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(DatasetError);
    expect((error as DatasetError).message).toContain('404');
    expect((error as DatasetError).message).toContain(missing);
  });
});
