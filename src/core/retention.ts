/** Config retention → the Kopia retention policy fields kopi-docka sets on each unit's source roots. */
import type { RetentionSettings } from '../config/types.js';

export interface RetentionPolicy {
  keepLatest: number;
  keepHourly: number;
  keepDaily: number;
  keepWeekly: number;
  keepMonthly: number;
  keepAnnual: number;
}

export function retentionFlags(r: RetentionSettings): RetentionPolicy {
  return {
    keepLatest: r.latest,
    keepHourly: r.hourly,
    keepDaily: r.daily,
    keepWeekly: r.weekly,
    keepMonthly: r.monthly,
    keepAnnual: r.yearly,
  };
}
