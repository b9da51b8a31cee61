/** Figures (a measurement next to its baseline), medians, ratios, and the Markdown table. */

export type Unit = 'ms' | 'MB/s' | 'MB' | 'count';

export interface Measure {
  /** What was measured, e.g. "kopi-docka backup (direct)" or "docker stop + docker start". */
  label: string;
  samples: number[];
  median: number;
}

export interface Target {
  text: string;
  met: boolean;
}

export interface Figure {
  /** Stable key, e.g. "downtime.unchanged.direct-vs-floor". */
  id: string;
  section: string;
  /** The row's name in the table. */
  what: string;
  unit: Unit;
  /** Which direction is better for the value (and thus for the ratio). */
  better: 'lower' | 'higher';
  value: Measure;
  baseline: Measure;
  /** value.median / baseline.median. */
  ratio: number;
  target?: Target;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

export function measure(label: string, samples: readonly number[]): Measure {
  return { label, samples: [...samples], median: median(samples) };
}

export function figure(f: Omit<Figure, 'ratio'>): Figure {
  return { ...f, ratio: f.value.median / f.baseline.median };
}

/** MB/s (10^6 bytes per second) for `bytes` moved in `ms`. */
export function mbps(bytes: number, ms: number): number {
  return bytes / 1e6 / (ms / 1000);
}

export function fmt(v: number, unit: Unit): string {
  if (!Number.isFinite(v)) return String(v);
  switch (unit) {
    case 'ms':
      return v >= 10_000 ? `${(v / 1000).toFixed(1)} s` : `${(v / 1000).toFixed(2)} s`;
    case 'MB/s':
      return `${v.toFixed(1)} MB/s`;
    case 'MB':
      return `${v.toFixed(1)} MB`;
    case 'count':
      return Number.isInteger(v) ? String(v) : v.toFixed(1);
  }
}

function cell(s: string): string {
  return s.replace(/\|/g, '\\|');
}

export function markdownTable(figures: readonly Figure[]): string {
  const out: string[] = [];
  let section = '';
  for (const f of figures) {
    if (f.section !== section) {
      section = f.section;
      out.push('', `### ${section}`, '');
      out.push('| measurement | kopi-docka | baseline | baseline value | ratio | target | met |');
      out.push('|---|---|---|---|---|---|---|');
    }
    const n = f.value.samples.length;
    out.push(
      `| ${cell(f.what)} | ${fmt(f.value.median, f.unit)}${n > 1 ? ` (n=${String(n)})` : ''} | ${cell(f.baseline.label)} | ${fmt(f.baseline.median, f.unit)} | ${f.ratio.toFixed(2)}× (${f.better} is better) | ${cell(f.target?.text ?? '—')} | ${f.target ? (f.target.met ? 'yes' : '**NO**') : '—'} |`,
    );
  }
  return out.join('\n').trimStart();
}
