import type { RunEvent } from '@shared/run-events';

function clock(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return `${h > 0 ? `${h}:${String(m).padStart(2, '0')}` : m}:${String(sec).padStart(2, '0')}`;
}

/** Renders run events for people: a progress bar on one line (on a terminal), other events as lines. */
export function humanRenderer(stream: NodeJS.WriteStream = process.stderr): (event: RunEvent) => void {
  const tty = stream.isTTY === true;
  let latest: Record<string, number> = {};
  let lastLine = 0;
  const line = (text: string): void => {
    stream.write(tty ? `\r\x1b[2K${text}` : `${text}\n`);
  };
  return (event) => {
    switch (event.type) {
      case 'started':
        stream.write(
          `${event.resumedFrom ? `Resuming from ${event.resumedFrom}` : 'Starting'} on ${event.backend}: ` +
            `${event.totalSteps} steps (${event.stepsPerEpoch} per epoch), output in ${event.outDir}\n`,
        );
        break;
      case 'metrics':
        latest = { ...latest, ...event.values };
        break;
      case 'progress': {
        const now = Date.now();
        if (!tty && now - lastLine < 5000 && event.step !== event.totalSteps) break;
        lastLine = now;
        const width = 24;
        const filled = Math.round((event.step / event.totalSteps) * width);
        const stats = ['loss', 'mi']
          .filter((key) => latest[key] !== undefined)
          .map((key) => `${key} ${(latest[key] ?? 0).toPrecision(4)}`)
          .join(' ');
        line(
          `epoch ${event.epoch}/${event.epochs} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ` +
            `${event.step}/${event.totalSteps} ${event.imagesPerSecond.toFixed(1)} img/s ETA ${clock(event.etaSeconds)} ${stats}`,
        );
        break;
      }
      case 'checkpoint':
        if (tty) stream.write('\n');
        stream.write(`checkpoint: ${event.path}\n`);
        break;
      case 'log':
        if (tty) stream.write('\n');
        stream.write(`${event.level === 'info' ? '' : `${event.level}: `}${event.message}\n`);
        break;
      case 'done':
        if (tty) stream.write('\n');
        stream.write(`done in ${clock(event.seconds)}: ${event.output?.path ?? 'no checkpoint written'}\n`);
        break;
      case 'failed':
        if (tty) stream.write('\n');
        break; // the command prints the message as its error
      case 'preview':
        break;
    }
  };
}
