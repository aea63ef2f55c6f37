import { describe, expect, it } from 'vitest';
import { compactTick, percentTick } from '../../src/renderer/src/charts/chart-style';
import { metricAxis, stepTooltip, type TooltipPoint } from '../../src/renderer/src/charts/metric-option';

/** The parts shared by the run page's metric charts and the comparison's overlays. */
describe('metric chart option parts', () => {
  it('the tooltip heads its lines with the hovered step, passes each series to the caller and drops null lines', () => {
    const seen: [TooltipPoint, unknown][] = [];
    const tooltip = stepTooltip(24, (item, step) => {
      seen.push([item, step]);
      return item.seriesName === 'hidden' ? null : `${item.seriesName}=${String(item.point[1])}`;
    });
    const html = tooltip.formatter([
      { seriesName: '<b>a</b>', value: [7, 0.5, 0.25], color: '#123456' },
      { seriesName: 'hidden', value: [7, 1] },
      { value: 'not a point' },
    ]);
    expect(html).toBe('<strong>step 7</strong><br/><b>a</b>=0.5<br/>=undefined');
    expect(seen).toEqual([
      [{ seriesName: '<b>a</b>', point: [7, 0.5, 0.25], color: '#123456' }, 7],
      [{ seriesName: 'hidden', point: [7, 1], color: undefined }, 7],
      [{ seriesName: '', point: [], color: undefined }, 7],
    ]);
    // One series (a non-array parameter) and an HTML-looking step are escaped in the heading.
    expect(stepTooltip(0, () => null).formatter({ value: ['<i>', 1] })).toBe('<strong>step &#60;i&#62;</strong>');
    expect(tooltip.trigger).toBe('axis');
    expect(tooltip.position([10, 0], null, null, null, { contentSize: [50, 20], viewSize: [300, 200] })).toEqual([
      24, 24,
    ]);
  });

  it("the metric axis: percent ticks for an accuracy, the unit's name, log on request, a constant series' bounds", () => {
    const accuracy = metricAxis('clean_acc', false, null);
    expect(accuracy.type).toBe('value');
    expect(accuracy.axisLabel.formatter).toBe(percentTick);
    expect(accuracy.axisLabel.showMinLabel).toBe(true);
    expect(accuracy).not.toHaveProperty('min');
    const loss = metricAxis('loss', true, { min: 0.9, max: 1.1 });
    expect(loss.type).toBe('log');
    expect(loss.axisLabel.formatter).toBe(compactTick);
    expect(loss).toMatchObject({ min: 0.9, max: 1.1 });
    expect(loss.axisLabel.showMinLabel).toBe(false);
    expect(loss.axisLabel.showMaxLabel).toBe(false);
  });
});
