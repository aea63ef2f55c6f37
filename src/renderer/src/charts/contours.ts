/**
 * Contour lines of a function sampled on a grid (marching squares). values[row][col] is the value at
 * (xs[col], ys[row]); null marks a missing sample, and cells touching one draw nothing. A saddle cell
 * is resolved by the mean of its corners.
 */
export type Point = [number, number];
export type Segment = [Point, Point];

export function contourSegments(
  values: readonly (readonly (number | null)[])[],
  xs: readonly number[],
  ys: readonly number[],
  level: number,
): Segment[] {
  const segments: Segment[] = [];
  for (let r = 0; r + 1 < ys.length; r++) {
    for (let c = 0; c + 1 < xs.length; c++) {
      const v00 = values[r]?.[c] ?? null;
      const v10 = values[r]?.[c + 1] ?? null;
      const v11 = values[r + 1]?.[c + 1] ?? null;
      const v01 = values[r + 1]?.[c] ?? null;
      if (v00 === null || v10 === null || v11 === null || v01 === null) continue;
      const x0 = xs[c] ?? 0;
      const x1 = xs[c + 1] ?? 0;
      const y0 = ys[r] ?? 0;
      const y1 = ys[r + 1] ?? 0;
      // Corners counter-clockwise from (x0, y0); a bit set where the corner is above the level.
      const index = (v00 > level ? 1 : 0) | (v10 > level ? 2 : 0) | (v11 > level ? 4 : 0) | (v01 > level ? 8 : 0);
      if (index === 0 || index === 15) continue;
      const at = (a: number, b: number) => (a === b ? 0.5 : (level - a) / (b - a));
      const bottom: Point = [x0 + (x1 - x0) * at(v00, v10), y0];
      const right: Point = [x1, y0 + (y1 - y0) * at(v10, v11)];
      const top: Point = [x0 + (x1 - x0) * at(v01, v11), y1];
      const left: Point = [x0, y0 + (y1 - y0) * at(v00, v01)];
      const centreAbove = (v00 + v10 + v11 + v01) / 4 > level;
      switch (index) {
        case 1:
        case 14:
          segments.push([left, bottom]);
          break;
        case 2:
        case 13:
          segments.push([bottom, right]);
          break;
        case 3:
        case 12:
          segments.push([left, right]);
          break;
        case 4:
        case 11:
          segments.push([right, top]);
          break;
        case 6:
        case 9:
          segments.push([bottom, top]);
          break;
        case 7:
        case 8:
          segments.push([left, top]);
          break;
        case 5:
          // v00 and v11 above: the centre decides whether they connect.
          if (centreAbove) segments.push([left, top], [bottom, right]);
          else segments.push([left, bottom], [right, top]);
          break;
        case 10:
          if (centreAbove) segments.push([left, bottom], [right, top]);
          else segments.push([left, top], [bottom, right]);
          break;
      }
    }
  }
  return segments;
}

/** `count` levels evenly spaced strictly between min and max. */
export function contourLevels(min: number, max: number, count: number): number[] {
  if (!(max > min) || count < 1) return [];
  return Array.from({ length: count }, (_, i) => min + ((max - min) * (i + 1)) / (count + 1));
}
