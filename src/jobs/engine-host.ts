import { EngineMessage, type ParentMessage } from '@shared/engine-protocol';
import type { ForcedBackend, SystemReport } from '@shared/system';
import { builtFile } from './build-output';
import type { ProcessLauncher } from './channel';

/**
 * Start an engine process, let it choose its backend, and return its report. The process exits
 * afterwards; training and evaluation jobs start processes of their own.
 */
export function probeEngineProcess(
  launch: ProcessLauncher,
  forced: ForcedBackend | null,
  timeoutMs = 60_000,
): Promise<SystemReport> {
  const channel = launch(builtFile('main/engine-process.js'), []);
  let stderr = '';
  channel.onStderr((text) => {
    stderr = (stderr + text).slice(-4000);
  });
  return new Promise<SystemReport>((resolve, reject) => {
    let settled = false;
    const finish = (outcome: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      channel.kill();
      outcome();
    };
    const timer = setTimeout(
      () => finish(() => reject(new Error(`The engine process did not report within ${timeoutMs / 1000} s.`))),
      timeoutMs,
    );
    channel.onMessage((raw) => {
      const parsed = EngineMessage.safeParse(raw);
      if (!parsed.success) {
        finish(() => reject(new Error(`The engine process sent a malformed message: ${parsed.error.message}`)));
        return;
      }
      const message = parsed.data;
      if (message.type === 'ready') finish(() => resolve(message.report));
      else if (message.type === 'failed')
        finish(() => reject(new Error(`The engine process failed: ${message.message}`)));
      else finish(() => reject(new Error(`The engine process answered a probe with "${message.type}".`)));
    });
    channel.onExit((code) =>
      finish(() =>
        reject(
          new Error(
            `The engine process exited (code ${code ?? 'signal'}) before reporting.${stderr ? `\n${stderr}` : ''}`,
          ),
        ),
      ),
    );
    channel.send({ type: 'probe', forced } satisfies ParentMessage);
  });
}
