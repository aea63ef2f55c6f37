import { fileStem, wrapText } from './chart-style';
import type { EChartsType } from './echarts';

/**
 * A chart saved as PNG carries its title and the names of the runs it shows, drawn into the image
 * above the plot (a figure pasted into notes or a paper must say what it is without its file name).
 */
export interface PngLabel {
  title: string;
  /** The runs (or groups) the chart shows; empty for a chart of one unnamed thing. */
  names: string[];
}

/** The colours of the header: the chart theme's background, text and muted text. */
export interface PngColors {
  background: string;
  text: string;
  axis: string;
}

const PIXEL_RATIO = 2;
const PAD = 12 * PIXEL_RATIO;
const TITLE_FONT = `600 ${15 * PIXEL_RATIO}px system-ui, 'DejaVu Sans', sans-serif`;
const NAMES_FONT = `${11 * PIXEL_RATIO}px system-ui, 'DejaVu Sans', sans-serif`;
const TITLE_LINE = 20 * PIXEL_RATIO;
const NAMES_LINE = 15 * PIXEL_RATIO;

function loadImage(url: string): Promise<HTMLImageElement> {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error('the chart image could not be drawn'));
    image.src = url;
  });
}

/** The chart as a PNG data URL at twice the screen resolution, with the title and run names on top. */
export async function labelledChartPng(chart: EChartsType, label: PngLabel, palette: PngColors): Promise<string> {
  const plot = await loadImage(
    chart.getDataURL({ type: 'png', pixelRatio: PIXEL_RATIO, backgroundColor: palette.background }),
  );
  const canvas = document.createElement('canvas');
  const context = canvas.getContext('2d');
  if (!context) throw new Error('this browser cannot draw on a canvas');
  const width = plot.width;
  context.font = NAMES_FONT;
  const names = label.names.length
    ? wrapText(label.names.join('  ·  '), width - 2 * PAD, (s) => context.measureText(s).width)
    : [];
  context.font = TITLE_FONT;
  const titleLines = wrapText(label.title, width - 2 * PAD, (s) => context.measureText(s).width);
  const header = PAD + titleLines.length * TITLE_LINE + names.length * NAMES_LINE + PAD / 2;
  canvas.width = width;
  canvas.height = header + plot.height;
  context.fillStyle = palette.background;
  context.fillRect(0, 0, canvas.width, canvas.height);
  context.textBaseline = 'top';
  context.fillStyle = palette.text;
  context.font = TITLE_FONT;
  let y = PAD;
  for (const line of titleLines) {
    context.fillText(line, PAD, y);
    y += TITLE_LINE;
  }
  context.fillStyle = palette.axis;
  context.font = NAMES_FONT;
  for (const line of names) {
    context.fillText(line, PAD, y);
    y += NAMES_LINE;
  }
  context.drawImage(plot, 0, header);
  return canvas.toDataURL('image/png');
}

/** Offer a data URL as a download named after the title. */
export function downloadDataUrl(url: string, title: string): void {
  const link = document.createElement('a');
  link.href = url;
  link.download = `${fileStem(title)}.png`;
  document.body.appendChild(link);
  link.click();
  link.remove();
}
