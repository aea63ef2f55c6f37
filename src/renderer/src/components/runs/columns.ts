import type { RunSortKey } from '../../stores/runs';

export interface Column {
  key: RunSortKey;
  label: string;
  numeric?: boolean;
}

/** The runs table's columns, in order. */
export const COLUMNS: Column[] = [
  { key: 'status', label: 'Status' },
  { key: 'name', label: 'Name' },
  { key: 'kind', label: 'Mode' },
  { key: 'model', label: 'Model' },
  { key: 'dataset', label: 'Dataset' },
  { key: 'progress', label: 'Progress' },
  { key: 'imagesPerSecond', label: 'img/s', numeric: true },
  { key: 'createdAt', label: 'Created' },
  { key: 'loss', label: 'Loss', numeric: true },
  { key: 'mi', label: 'MI', numeric: true },
  { key: 'natural', label: 'Natural', numeric: true },
  { key: 'robust', label: 'Robust', numeric: true },
];
