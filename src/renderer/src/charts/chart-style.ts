import type { EChartsType } from './echarts';

/** What every chart shares: axis styling, tick and tooltip formatting, run colours, saving as PNG. */

export const AXIS_GREY = '#66707d';
export const GRID_LINE = '#eceff3';

/** One colour per run in a comparison (colour-blind-safe order: Okabe-Ito, then a few more). */
export const RUN_COLORS = ['#0072b2', '#d55e00', '#009e73', '#cc79a7', '#e69f00', '#56b4e9', '#000000', '#8c564b'];

export function runColor(index: number): string {
  return RUN_COLORS[index % RUN_COLORS.length] ?? '#2f6fdf';
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function compactTick(value: number): string {
  if (value === 0) return '0';
  const magnitude = Math.abs(value);
  if (magnitude >= 1e4 || magnitude < 1e-3) return value.toExponential(1).replace('e+', 'e');
  return String(Number(value.toPrecision(4)));
}

export function percentTick(value: number): string {
  return `${Number((value * 100).toPrecision(3))}%`;
}

export function axisName(name: string) {
  return {
    name,
    nameTextStyle: { color: AXIS_GREY, fontSize: 10 },
  };
}

export function swatch(color: string): string {
  return `<span style="display:inline-block;width:8px;height:8px;border-radius:50%;background:${color};margin-right:6px"></span>`;
}

/** A file-name-safe version of a chart title. */
export function fileStem(title: string): string {
  return (
    title
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '') || 'chart'
  );
}

/** Download the chart as a PNG (twice the screen resolution, on white). */
export function saveChartPng(chart: EChartsType | null, title: string): void {
  if (!chart) return;
  const url = chart.getDataURL({ type: 'png', pixelRatio: 2, backgroundColor: '#ffffff' });
  const link = document.createElement('a');
  link.href = url;
  link.download = `${fileStem(title)}.png`;
  document.body.appendChild(link);
  link.click();
  link.remove();
}
