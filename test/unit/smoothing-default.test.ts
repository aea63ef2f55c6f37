import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_SMOOTHING } from '../../src/renderer/src/charts/smoothing';

const RENDERER = path.join(__dirname, '../../src/renderer/src');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return sources(full);
    return /\.(vue|ts)$/.test(name) ? [full] : [];
  });
}

describe('the default smoothing', () => {
  const files = sources(RENDERER).map((file) => ({
    file: path.relative(RENDERER, file),
    text: readFileSync(file, 'utf8'),
  }));

  it('is one constant, a valid EMA weight', () => {
    expect(DEFAULT_SMOOTHING).toBeGreaterThanOrEqual(0);
    expect(DEFAULT_SMOOTHING).toBeLessThan(1);
  });

  it('is what every stored smoothing preference starts from (run page and Compare)', () => {
    const preferences = files.flatMap(({ file, text }) =>
      [...text.matchAll(/useStoredPreference\(\s*'([^']*smoothing[^']*)'\s*,\s*([^)]+)\)/gi)].map((m) => ({
        file,
        key: m[1],
        fallback: m[2]?.trim(),
      })),
    );
    expect(preferences.map((p) => p.file).sort()).toEqual(['components/run/MetricCharts.vue', 'views/CompareView.vue']);
    for (const preference of preferences) expect(preference.fallback, preference.file).toBe('DEFAULT_SMOOTHING');
  });

  it('has one slider, which shows the default and restores it', () => {
    const sliders = files.filter(({ text }) => /type="range"[^>]*\n?[^>]*/.test(text) && /[Ss]moothing/.test(text));
    expect(sliders.map((s) => s.file)).toEqual(['charts/SmoothingControl.vue']);
    const control = sliders[0]?.text ?? '';
    expect(control).toContain('default {{ DEFAULT_SMOOTHING }}');
    expect(control).toContain('@click="weight = DEFAULT_SMOOTHING"');
    // Both chart toolbars use it.
    for (const file of ['components/run/MetricCharts.vue', 'views/CompareView.vue'])
      expect(files.find((f) => f.file === file)?.text, file).toContain('<SmoothingControl v-model="smoothing" />');
  });
});
