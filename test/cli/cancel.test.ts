import { afterEach, describe, expect, it, vi } from 'vitest';
import { ctrlCSignal, exitInterrupted } from '../../src/cli/cancel';

describe('Ctrl-C in the CLI', () => {
  afterEach(() => vi.restoreAllMocks());

  it('aborts the signal on SIGINT, once', () => {
    const before = process.listenerCount('SIGINT');
    const signal = ctrlCSignal();
    expect(signal.aborted).toBe(false);
    expect(process.listenerCount('SIGINT')).toBe(before + 1);
    process.emit('SIGINT');
    expect(signal.aborted).toBe(true);
    expect(process.listenerCount('SIGINT')).toBe(before);
  });

  it('ends an interrupted command with status 130 and says why on stderr', () => {
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const exit = vi.spyOn(process, 'exit').mockImplementation((code) => {
      throw new Error(`exit ${code}`);
    });
    expect(() => exitInterrupted('evaluation cancelled')).toThrow('exit 130');
    expect(stderr).toHaveBeenCalledWith('mimir: evaluation cancelled\n');
    expect(exit).toHaveBeenCalledWith(130);
  });
});
