import { describe, expect, it } from 'vitest';
import { effectiveFinetune, FinetuneConfig } from '../../src/shared/finetune-config';
import { RUN_PRESETS } from '../../src/shared/presets';

/** A fine-tuning preset holds settings that make a valid run over any chosen checkpoint. */
describe('fine-tuning presets', () => {
  const finetunePresets = RUN_PRESETS.filter((preset) => preset.kind === 'finetune');

  it('include the quick PGD-AT preset, valid over a checkpoint, at eps 4/255', () => {
    expect(finetunePresets.map((preset) => preset.id)).toContain('quick-finetune');
    for (const preset of finetunePresets) {
      const parsed = FinetuneConfig.safeParse({ ...preset.config, source: { kind: 'pretrained', checkpoint: '/c' } });
      expect(parsed.success, `${preset.id}: ${parsed.error?.message ?? ''}`).toBe(true);
      if (!parsed.success) continue;
      expect(parsed.data.source).toEqual({ kind: 'pretrained', checkpoint: '/c' });
      const effective = effectiveFinetune(parsed.data);
      expect([effective.eps255, effective.adversarial, effective.lr]).toEqual([4, true, (5e-3 * 64) / 256]);
    }
  });
});
