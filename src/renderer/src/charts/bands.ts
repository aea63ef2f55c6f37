import type { BandPoint } from '@shared/groups';

/**
 * A mean ± std band as two stacked line series: the lower edge (invisible) and the band's width
 * (filled). Points with no std (one member had the step) are left out of the band.
 */
export function bandSeries(id: string, name: string, color: string, band: readonly BandPoint[]) {
  const points = band.filter((p) => p.std !== null);
  if (points.length === 0) return [];
  const common = {
    name,
    type: 'line' as const,
    stack: `band-${id}`,
    symbol: 'none',
    silent: true,
    lineStyle: { opacity: 0 },
    color,
    tooltip: { show: false },
  };
  return [
    { ...common, data: points.map((p) => [p.step, p.mean - (p.std ?? 0)]) },
    { ...common, data: points.map((p) => [p.step, 2 * (p.std ?? 0)]), areaStyle: { opacity: 0.18 } },
  ];
}
