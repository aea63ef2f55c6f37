import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { TIMM_VERSION, timmPython } from '../helpers/timm-python';

/** The timm venv of test/helpers/timm-python.ts: made (or reused) and able to build timm's models. */
describe('timm for tests', () => {
  it(`gives a python whose timm ${TIMM_VERSION} builds convnext_tiny over Debian's torch`, () => {
    const python = timmPython();
    const run = spawnSync(
      python,
      [
        '-c',
        'import timm, torch; m = timm.create_model("convnext_tiny"); print(torch.__version__, sum(p.numel() for p in m.parameters()))',
      ],
      { encoding: 'utf8', timeout: 300_000 },
    );
    expect(run.stderr).not.toMatch(/Traceback/);
    expect(run.status).toBe(0);
    // timm's convnext_tiny has 28,589,128 parameters (its model card says 28.6 M).
    expect(run.stdout.trim().split(' ')[1]).toBe('28589128');
  }, 900_000);
});
