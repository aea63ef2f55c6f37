import type { AxisBounds } from './axis-range';
import { axisName, compactTick, escapeHtml, percentTick, swatch, tooltipBelow } from './chart-style';
import { isAccuracy, metricUnit } from './metric-names';

/**
 * What a chart of one metric over training steps is made of, shared by the run page's charts
 * (MetricChart) and the comparison's overlays (OverlayChart): the step axis, the metric's axis, zooming
 * along the steps, and an axis tooltip headed by the step.
 */

/** Steps along x: whole numbers from the first point to the last. */
export function stepAxis() {
  return {
    type: 'value' as const,
    ...axisName('step'),
    nameGap: 4,
    min: 'dataMin' as const,
    max: 'dataMax' as const,
    minInterval: 1,
    axisLabel: { fontSize: 10, formatter: compactTick, hideOverlap: true },
    splitLine: { show: false },
  };
}

/**
 * The metric along y, log or linear, named by its unit, in percent for an accuracy. `bounds`: the range
 * of a constant series (axis-range.ts), whose ends are not round numbers, so only the round ticks
 * between them are labelled.
 */
export function metricAxis(metricKey: string, logScale: boolean, bounds: AxisBounds | null) {
  return {
    type: logScale ? ('log' as const) : ('value' as const),
    ...axisName(metricUnit(metricKey)),
    nameLocation: 'end' as const,
    nameGap: 8,
    scale: true,
    ...(bounds ?? {}),
    axisLabel: {
      fontSize: 10,
      formatter: isAccuracy(metricKey) ? percentTick : compactTick,
      showMinLabel: !bounds,
      showMaxLabel: !bounds,
    },
  };
}

/** The mouse wheel zooms the step axis; the points outside the window stay so that lines reach its edges. */
export function stepZoom() {
  return [{ type: 'inside' as const, xAxisIndex: 0, filterMode: 'none' as const }];
}

/** One series at the hovered step, as the tooltip formatter receives it. */
export interface TooltipPoint {
  seriesName: string;
  /** The series' data item: [step, shown value, ...what the chart put after it]. */
  point: unknown[];
  color: string | undefined;
}

/** A tooltip line: the series' colour, its name and a value in bold. */
export function tooltipLine(color: string, name: string, value: string): string {
  return `${swatch(color)}${escapeHtml(name)}: <strong>${escapeHtml(value)}</strong>`;
}

/**
 * The axis tooltip: "step N", then a line per series from `line` (null leaves a series out), kept below
 * the top `top` px (a legend or a toolbar) and inside the chart.
 */
export function stepTooltip(top: number, line: (item: TooltipPoint, step: unknown) => string | null) {
  const formatter = (params: unknown): string => {
    const list = (Array.isArray(params) ? params : [params]) as {
      seriesName?: string;
      value?: unknown;
      color?: unknown;
    }[];
    const first = list[0];
    const step = Array.isArray(first?.value) ? first.value[0] : null;
    const lines = [`<strong>step ${escapeHtml(String(step ?? ''))}</strong>`];
    for (const item of list) {
      const text = line(
        {
          seriesName: item.seriesName ?? '',
          point: Array.isArray(item.value) ? item.value : [],
          color: typeof item.color === 'string' ? item.color : undefined,
        },
        step,
      );
      if (text !== null) lines.push(text);
    }
    return lines.join('<br/>');
  };
  return {
    trigger: 'axis' as const,
    formatter,
    axisPointer: { type: 'line' as const },
    confine: true,
    position: tooltipBelow(top),
  };
}
