import { describe, expect, it } from 'vitest';
import { FORM_SPECS } from '../../src/renderer/src/forms/form-specs';

describe('the pre-training form hides what a mode does not use', () => {
  const hidden = (path: string[], mode: string) => FORM_SPECS.pretrain.hidden(path, { mode });

  it('MAE: no attack and no MI weight; adversarial MAE: no MI weight; MIMIR: everything', () => {
    expect([hidden(['attack'], 'mae'), hidden(['attack', 'eps'], 'mae'), hidden(['mi', 'lambda'], 'mae')]).toEqual([
      true,
      true,
      true,
    ]);
    expect([hidden(['attack'], 'adv-mae'), hidden(['mi', 'lambda'], 'adv-mae')]).toEqual([false, true]);
    expect([hidden(['attack'], 'mimir'), hidden(['mi', 'lambda'], 'mimir')]).toEqual([false, false]);
    // The MI estimate is recorded in every mode, so its settings stay.
    expect(hidden(['mi', 'estimator'], 'mae')).toBe(false);
  });
});
