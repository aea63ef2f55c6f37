import { describe, expect, it } from 'vitest';
import { selectExamples } from '../../src/engine/evaluate/evaluate';
import { ExampleSelection } from '../../src/shared/evaluation';

const messages = (value: unknown) => {
  const parsed = ExampleSelection.safeParse(value);
  return parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
};

describe('evaluation on a list of example ids', () => {
  it('takes exactly the listed ids, in their order', () => {
    expect(messages({ count: 3, pick: 'ids', ids: [7, 2, 40] })).toEqual([]);
    expect(selectExamples(50, 3, 'ids', 0, [7, 2, 40])).toEqual([7, 2, 40]);
  });

  it('says what is wrong with a list', () => {
    expect(messages({ count: 2, pick: 'ids', ids: [1, 2, 3] })).toEqual([
      'count: count is 2 but ids lists 3 examples: give count 3',
    ]);
    expect(messages({ count: 2, pick: 'ids', ids: [1, 1] })).toEqual(['ids: an example id is listed twice']);
    expect(messages({ count: 2, pick: 'ids' })).toEqual(["ids: pick 'ids' needs the list of example ids in ids"]);
    expect(messages({ count: 2, ids: [1, 2] })).toEqual(["pick: ids is given: set pick to 'ids' to evaluate them"]);
    expect(() => selectExamples(10, 2, 'ids', 0, [3, 10])).toThrow(
      'examples.ids: 10 is past the end of the split (10 examples, ids 0 to 9).',
    );
  });
});
