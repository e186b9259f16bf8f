// Benchmarks that measure peak memory run each case in a child process of their own, so a
// case's peak is not the maximum of everything measured before it in the same process.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';

const MiB = 1024 * 1024;

/** Runs `node script ...args` and returns the JSON object on the last line of its stdout. */
export function jsonChild(script: string, args: string[]): Record<string, unknown> {
  const r = spawnSync(process.execPath, [script, ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 16 * MiB,
  });
  if (r.status !== 0) {
    throw new Error(
      `bench child "${args.join(' ')}" failed (${r.error?.message ?? `exit ${r.status}`})`,
    );
  }
  const last = r.stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(last) as Record<string, unknown>;
}

/**
 * Resets this process's peak resident size to its current size (Linux's clear_refs "5"), so a
 * later peakRssSinceResetMiB() is the peak of what ran in between. Returns false where the
 * kernel does not offer it; the peak then counts from the process's start.
 */
export function resetPeakRss(): boolean {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

/** The peak resident size since the last resetPeakRss() (or the start), in MiB. */
export function peakRssSinceResetMiB(): number {
  const status = readFileSync('/proc/self/status', 'utf8');
  const kib = /VmHWM:\s+(\d+)/.exec(status)?.[1];
  return kib !== undefined ? Number(kib) / 1024 : process.resourceUsage().maxRSS / 1024;
}
