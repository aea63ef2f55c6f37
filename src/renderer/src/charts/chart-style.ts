/** What every chart shares: axis names, tick and tooltip formatting and placement, run colours. */

/**
 * One colour per run in a comparison (colour-blind-safe order: Okabe-Ito, then a few more), with a mid
 * grey in place of Okabe-Ito's black so every line reads on the light and the dark background.
 */
export const RUN_COLORS = ['#0072b2', '#d55e00', '#009e73', '#cc79a7', '#e69f00', '#56b4e9', '#8a8f98', '#8c564b'];

export function runColor(index: number): string {
  return RUN_COLORS[index % RUN_COLORS.length] ?? '#2f6fdf';
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * An axis tick in at most 4 significant digits, as short as it reads: 0.25, 1.5e-5, 9.75e-4. Ticks
 * close together (a constant series' narrow axis) keep the digits that tell them apart.
 */
export function compactTick(value: number): string {
  if (value === 0) return '0';
  const short = Number(value.toPrecision(4));
  const magnitude = Math.abs(value);
  if (magnitude >= 1e4 || magnitude < 1e-3) return short.toExponential().replace('e+', 'e');
  return String(short);
}

export function percentTick(value: number): string {
  return `${Number((value * 100).toPrecision(3))}%`;
}

export function axisName(name: string) {
  return { name, nameTextStyle: { fontSize: 10 } };
}

/**
 * Where a tooltip goes: beside the pointer, never above `top` px (the legend's row) and never past
 * the chart's edges, so it does not cover the legend it explains.
 */
export function tooltipBelow(top: number) {
  return (
    point: number[],
    _params: unknown,
    _dom: unknown,
    _rect: unknown,
    size: { contentSize: number[]; viewSize: number[] },
  ): [number, number] => {
    const [x = 0, y = 0] = point;
    const [width = 0, height = 0] = size.contentSize;
    const [viewWidth = 0, viewHeight = 0] = size.viewSize;
    const left = x + 14 + width <= viewWidth ? x + 14 : Math.max(0, x - 14 - width);
    const below = Math.min(y + 14, Math.max(top, viewHeight - height));
    return [left, Math.max(top, below)];
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

/** `text` broken at spaces into lines no wider than `width` as `measure` counts it. */
export function wrapText(text: string, width: number, measure: (s: string) => number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    const next = line ? `${line} ${word}` : word;
    if (line && measure(next) > width) {
      lines.push(line);
      line = word;
    } else line = next;
  }
  if (line) lines.push(line);
  return lines;
}
