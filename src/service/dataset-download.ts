import path from 'node:path';
import type { DownloadStatus } from '@shared/api';
import { errorMessage } from '@shared/unknown-value';
import { CIFAR10_URL_ENV, cifar10Origin, defaultDatasetsDir, downloadCifar10 } from '@engine/data/download';

/**
 * The CIFAR-10 download the dataset browser starts: one at a time, from the official address (or
 * MIMIR_CIFAR10_URL), resumable and MD5-verified by the engine's downloadFile; the renderer polls
 * its status. Failures (offline, a wrong checksum) keep their message and the partial file, so
 * pressing Download again resumes.
 */
export function createCifar10Download() {
  let status: DownloadStatus = { state: 'idle', receivedBytes: 0, totalBytes: null, dir: null, url: null, error: null };

  function start(root: string | undefined): DownloadStatus {
    if (status.state === 'running') return status;
    const dir = root ?? path.join(defaultDatasetsDir(), 'cifar10');
    const { url, md5 } = cifar10Origin();
    status = { state: 'running', receivedBytes: 0, totalBytes: null, dir, url, error: null };
    downloadCifar10(dir, {
      url,
      md5,
      // Every chunk: the status is only read when polled, and a stalled transfer must show what arrived.
      progressIntervalMs: 0,
      onProgress: ({ receivedBytes, totalBytes }) => {
        status = { ...status, receivedBytes, totalBytes };
      },
    }).then(
      (result) => {
        status = { ...status, state: 'done', receivedBytes: result.bytes, totalBytes: result.bytes };
      },
      (error: unknown) => {
        status = {
          ...status,
          state: 'failed',
          error: `${errorMessage(error)} Check the connection (or set ${CIFAR10_URL_ENV} to a mirror) and press Download again: it resumes.`,
        };
      },
    );
    return status;
  }

  return { start, status: () => status };
}
