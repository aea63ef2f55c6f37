import {
  CustomChart,
  LineChart,
  ParallelChart,
  ScatterChart,
  type CustomSeriesOption,
  type LineSeriesOption,
  type ParallelSeriesOption,
  type ScatterSeriesOption,
} from 'echarts/charts';
import {
  DataZoomComponent,
  GridComponent,
  LegendComponent,
  ParallelComponent,
  ToolboxComponent,
  TooltipComponent,
  VisualMapContinuousComponent,
  type DataZoomComponentOption,
  type GridComponentOption,
  type LegendComponentOption,
  type ParallelComponentOption,
  type ToolboxComponentOption,
  type TooltipComponentOption,
  type VisualMapComponentOption,
} from 'echarts/components';
import * as echarts from 'echarts/core';
import { CanvasRenderer } from 'echarts/renderers';

/**
 * ECharts with only what the charts use (tree-shaken): line series (metrics), custom and scatter series
 * (the loss landscape's cells and its centre), parallel coordinates (sweeps), a legend, a continuous colour
 * scale, on a canvas.
 */
echarts.use([
  LineChart,
  CustomChart,
  ScatterChart,
  GridComponent,
  TooltipComponent,
  DataZoomComponent,
  ToolboxComponent,
  LegendComponent,
  VisualMapContinuousComponent,
  ParallelChart,
  ParallelComponent,
  CanvasRenderer,
]);

export { echarts };
export type { EChartsType } from 'echarts/core';

export type MetricChartOption = echarts.ComposeOption<
  | LineSeriesOption
  | CustomSeriesOption
  | ScatterSeriesOption
  | GridComponentOption
  | TooltipComponentOption
  | DataZoomComponentOption
  | ToolboxComponentOption
  | LegendComponentOption
  | VisualMapComponentOption
>;

export type ParallelChartOption = echarts.ComposeOption<
  ParallelSeriesOption | ParallelComponentOption | TooltipComponentOption
>;
