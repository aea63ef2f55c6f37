import { ref, type Ref } from 'vue';
import { echarts } from './echarts';

/**
 * Light and dark chart themes matching the page's CSS variables (styles/base.css), and the colour
 * scheme the system asks for (prefers-color-scheme), followed live.
 */
export type ColorScheme = 'light' | 'dark';

export interface ChartPalette {
  background: string;
  text: string;
  axis: string;
  gridLine: string;
  axisLine: string;
  tooltipBackground: string;
  tooltipBorder: string;
  /** A single run's raw line, and its smoothed line drawn over it. */
  line: string;
  lineStrong: string;
}

export const PALETTES: Record<ColorScheme, ChartPalette> = {
  light: {
    background: '#ffffff',
    text: '#1d232b',
    axis: '#66707d',
    gridLine: '#eceff3',
    axisLine: '#b9c1cc',
    tooltipBackground: '#ffffff',
    tooltipBorder: '#dde1e7',
    line: '#2f6fdf',
    lineStrong: '#1d4fa8',
  },
  dark: {
    background: '#1b2129',
    text: '#e3e8ef',
    axis: '#9aa5b3',
    gridLine: '#2c3440',
    axisLine: '#4a5565',
    tooltipBackground: '#232b35',
    tooltipBorder: '#3a4452',
    line: '#6fa0ff',
    lineStrong: '#a9c6ff',
  },
};

export const THEME_NAME: Record<ColorScheme, string> = { light: 'mimir-light', dark: 'mimir-dark' };

function axisTheme(p: ChartPalette) {
  return {
    axisLine: { lineStyle: { color: p.axisLine } },
    axisTick: { lineStyle: { color: p.axisLine } },
    axisLabel: { color: p.axis },
    splitLine: { lineStyle: { color: [p.gridLine] } },
    nameTextStyle: { color: p.axis },
  };
}

function themeOf(p: ChartPalette) {
  const axis = axisTheme(p);
  return {
    backgroundColor: 'transparent',
    textStyle: { color: p.text },
    valueAxis: axis,
    logAxis: axis,
    categoryAxis: axis,
    legend: { textStyle: { color: p.text }, pageTextStyle: { color: p.axis }, pageIconColor: p.axis },
    tooltip: {
      backgroundColor: p.tooltipBackground,
      borderColor: p.tooltipBorder,
      textStyle: { color: p.text },
    },
    visualMap: { textStyle: { color: p.axis } },
    toolbox: { iconStyle: { borderColor: p.axis } },
  };
}

echarts.registerTheme(THEME_NAME.light, themeOf(PALETTES.light));
echarts.registerTheme(THEME_NAME.dark, themeOf(PALETTES.dark));

const query =
  typeof window !== 'undefined' && window.matchMedia ? window.matchMedia('(prefers-color-scheme: dark)') : null;
const scheme = ref<ColorScheme>(query?.matches ? 'dark' : 'light');
query?.addEventListener('change', (event) => (scheme.value = event.matches ? 'dark' : 'light'));

/** The system's colour scheme, kept current. */
export function useColorScheme(): Readonly<Ref<ColorScheme>> {
  return scheme;
}
