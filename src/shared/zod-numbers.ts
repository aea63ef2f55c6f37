import { z } from 'zod';

// Numbers of the attack, evaluation and landscape requests, with messages that name the field.

/** A whole number of at least 1 (iterations, restarts, targets, batch sizes). */
export const count = (what: string) =>
  z
    .number({ error: `${what} must be a number` })
    .int(`${what} must be a whole number`)
    .min(1, `${what} must be at least 1`);

/** A finite number above 0 (radii, step sizes). */
export const positive = (what: string) =>
  z
    .number({ error: `${what} must be a number` })
    .positive(`${what} must be positive`)
    .finite(`${what} must be finite`);
