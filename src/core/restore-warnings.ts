/**
 * What a restore must tell about the restore point it restores, from the recipe manifest: data it does
 * not hold, an application that was force-killed before its data was read, and volumes that
 * `compose up` will not bring back by itself. Pure: the manifest in, message lines out.
 */

/** The manifest fields this reads (all absent in recipes written before they existed). */
export interface RestoreCaveatInput {
  forceKilled?: string[];
  volumes?: {
    name: string;
    anonymous: boolean;
    device?: string;
    usedBy: { container: string; destination: string }[];
  }[];
  uncaptured?: { container: string; source: string; destination: string; message: string }[];
}

/** One line per caveat, in order of harm; empty when there is nothing to say. */
export function restoreCaveats(m: RestoreCaveatInput): string[] {
  const out: string[] = [];
  for (const u of m.uncaptured ?? []) {
    out.push(
      `${u.source} (${u.container}:${u.destination}) is NOT in this restore point: ${u.message}; restore it from where it lives`,
    );
  }
  if ((m.forceKilled ?? []).length > 0) {
    out.push(
      `taken after Docker force-killed ${(m.forceKilled ?? []).join(', ')} at the stop timeout: the application did not shut down cleanly, check its data (or pick an earlier restore point)`,
    );
  }
  for (const v of m.volumes ?? []) {
    const users = v.usedBy.map((u) => `${u.container}:${u.destination}`).join(', ');
    if (v.anonymous) {
      out.push(
        `volume ${v.name} is anonymous (${users}): \`compose up\` creates a new empty one instead of reattaching it — after \`up\`, stop the service, copy ${v.name}'s data into the new volume mounted at that path, start it; or name the volume in the Compose file`,
      );
    }
    if (v.device !== undefined) {
      out.push(
        `volume ${v.name} is a bind-type volume whose data lives in ${v.device}: the restore writes into the volume; with its containers stopped, copy it to ${v.device} (see docs/data-safety.md)`,
      );
    }
  }
  return out;
}
