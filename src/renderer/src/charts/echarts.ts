import {
  CustomChart,
  LineChart,
  ScatterChart,
  type CustomSeriesOption,
  type LineSeriesOption,
  type ScatterSeriesOption,
} from 'echarts/charts';
import {
  DataZoomComponent,
  GridComponent,
  LegendComponent,
  ToolboxComponent,
  TooltipComponent,
  VisualMapContinuousComponent,
  type DataZoomComponentOption,
  type GridComponentOption,
  type LegendComponentOption,
  type ToolboxComponentOption,
  type TooltipComponentOption,
  type VisualMapComponentOption,
} from 'echarts/components';
import * as echarts from 'echarts/core';
import { CanvasRenderer } from 'echarts/renderers';

/**
 * ECharts with only what the charts use (tree-shaken): line series (metrics), custom and scatter series
 * (the loss landscape's cells and its centre), a legend, a continuous colour scale, on a canvas.
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
