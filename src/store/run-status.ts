import type { RunStatus } from '@shared/store-types';

/**
 * The legal status changes. A queued run may also be cancelled or fail before it starts (its process
 * could not be started); a failed, cancelled or interrupted run goes back to the queue when resumed.
 */
export const RUN_TRANSITIONS: Readonly<Record<RunStatus, readonly RunStatus[]>> = {
  queued: ['running', 'cancelled', 'failed'],
  running: ['done', 'failed', 'cancelled', 'interrupted'],
  done: [],
  failed: ['queued'],
  cancelled: ['queued'],
  interrupted: ['queued'],
};

export function canTransition(from: RunStatus, to: RunStatus): boolean {
  return RUN_TRANSITIONS[from].includes(to);
}

export function isActive(status: RunStatus): boolean {
  return status === 'queued' || status === 'running';
}

/** Why `from` -> `to` is refused, in words a user can act on. */
export function transitionRefusal(runId: string, from: RunStatus, to: RunStatus): string {
  const allowed = RUN_TRANSITIONS[from];
  const options = allowed.length === 0 ? 'it is final' : `from ${from} it can only become ${allowed.join(' or ')}`;
  return `Run ${runId} is ${from} and cannot become ${to}: ${options}.`;
}
