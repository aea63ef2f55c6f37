import { describe, expect, it } from 'vitest';
import { errorMessage, isRecord } from '../../src/shared/unknown-value';

describe('errorMessage', () => {
  it("says an Error's message, without its name or stack", () => {
    expect(errorMessage(new TypeError('bad input'))).toBe('bad input');
  });

  it('says anything else thrown as a string', () => {
    expect(errorMessage('plain text')).toBe('plain text');
    expect(errorMessage(42)).toBe('42');
    expect(errorMessage(undefined)).toBe('undefined');
  });
});

describe('isRecord', () => {
  it('accepts plain objects, parsed JSON objects included', () => {
    expect(isRecord({})).toBe(true);
    expect(isRecord(JSON.parse('{"a": 1}'))).toBe(true);
  });

  it('refuses null, arrays and primitives', () => {
    for (const value of [null, undefined, [], [1], 'x', 3, true]) expect(isRecord(value)).toBe(false);
  });
});
