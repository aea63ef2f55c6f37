import { describe, expect, it } from 'vitest';
import { LandscapePgd } from '../../src/shared/landscape';
import { count, positive } from '../../src/shared/zod-numbers';

function messageOf(result: { success: boolean; error?: { issues: { message: string }[] } }): string | null {
  return result.success ? null : (result.error?.issues[0]?.message ?? '(no message)');
}

describe('the request number schemas', () => {
  it('count takes whole numbers from 1 and names the field when it refuses', () => {
    expect(count('restarts').parse(3)).toBe(3);
    expect(messageOf(count('restarts').safeParse(0))).toBe('restarts must be at least 1');
    expect(messageOf(count('restarts').safeParse(1.5))).toBe('restarts must be a whole number');
    expect(messageOf(count('restarts').safeParse('3'))).toBe('restarts must be a number');
  });

  it('positive takes finite numbers above 0', () => {
    expect(positive('eps').parse(8 / 255)).toBeCloseTo(8 / 255, 12);
    expect(messageOf(positive('eps').safeParse(0))).toBe('eps must be positive');
    // zod 4 refuses Infinity as a number before .finite() sees it.
    expect(messageOf(positive('eps').safeParse(Infinity))).toBe('eps must be a number');
  });

  it("bounds the landscape's counts above as well", () => {
    expect(messageOf(LandscapePgd.safeParse({ steps: 0 }))).toBe('pgd.steps must be at least 1');
    expect(messageOf(LandscapePgd.safeParse({ steps: 1001 }))).toBe('pgd.steps must be at most 1000');
    expect(LandscapePgd.parse({ steps: 1000 }).steps).toBe(1000);
  });
});
