import { describe, expect, it } from 'vitest';
import { formatMetric } from '../../src/renderer/src/format';

describe('chart tooltips', () => {
  it('show 4 significant digits (exponent form below 1e-3 and from 1e6)', () => {
    expect(formatMetric(1.7435612678527832)).toBe('1.744');
    expect(formatMetric(0.1234567)).toBe('0.1235');
    expect(formatMetric(9.603125e-7)).toBe('9.603e-7');
    expect(formatMetric(123456.7)).toBe('123500');
    expect(formatMetric(0)).toBe('0');
  });
});
