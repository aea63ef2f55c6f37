import { computed, onBeforeUnmount, onMounted, watch, type ComputedRef, type Ref } from 'vue';
import { echarts, type EChartsType } from './echarts';
import { downloadDataUrl, labelledChartPng, type PngLabel } from './png-export';
import { PALETTES, THEME_NAME, useColorScheme, type ChartPalette } from './theme';

type Option = Parameters<EChartsType['setOption']>[0];
type SetOptionOpts = Exclude<Parameters<EChartsType['setOption']>[1], boolean | undefined>;

export interface EChartSetup {
  el: Ref<HTMLElement | null>;
  /** The full option; called on every render, with the palette of the current colour scheme. */
  option: (palette: ChartPalette) => Option;
  /** How a render replaces the previous option (default: notMerge). */
  update?: SetOptionOpts;
  /** Charts of one group share tooltip and zoom (echarts.connect). */
  group?: string;
  /** Event handlers and the like, run after every (re)initialisation. */
  onInit?: (chart: EChartsType) => void;
  /** What a saved PNG says above the plot. */
  label?: () => PngLabel;
}

export interface EChartHandle {
  /** Render at the next animation frame (several changes in one frame render once). */
  render: () => void;
  chart: () => EChartsType | null;
  palette: ComputedRef<ChartPalette>;
  /** Download the chart as a PNG with its title and run names drawn in. */
  savePng: () => Promise<void>;
}

/**
 * The one lifecycle of every chart: init on mount in the theme of the system's colour scheme (re-init
 * when it changes), follow the element's size, connect to a group, render on demand, dispose on unmount.
 */
export function useEChart(setup: EChartSetup): EChartHandle {
  const scheme = useColorScheme();
  const palette = computed(() => PALETTES[scheme.value]);
  let chart: EChartsType | null = null;
  let observer: ResizeObserver | null = null;
  let frame = 0;

  function draw(): void {
    frame = 0;
    chart?.setOption(setup.option(palette.value), setup.update ?? { notMerge: true });
  }

  function render(): void {
    if (!frame) frame = requestAnimationFrame(draw);
  }

  function init(): void {
    if (!setup.el.value) return;
    chart?.dispose();
    chart = echarts.init(setup.el.value, THEME_NAME[scheme.value], { renderer: 'canvas' });
    if (setup.group) chart.group = setup.group;
    setup.onInit?.(chart);
    chart.setOption(setup.option(palette.value), { notMerge: true });
  }

  onMounted(() => {
    init();
    if (!setup.el.value) return;
    observer = new ResizeObserver(() => chart?.resize());
    observer.observe(setup.el.value);
  });
  watch(scheme, init);
  onBeforeUnmount(() => {
    if (frame) cancelAnimationFrame(frame);
    observer?.disconnect();
    chart?.dispose();
    chart = null;
  });

  async function savePng(): Promise<void> {
    if (!chart) return;
    const label = setup.label?.() ?? { title: 'chart', names: [] };
    downloadDataUrl(await labelledChartPng(chart, label, palette.value), label.title);
  }

  return { render, chart: () => chart, palette, savePng };
}
