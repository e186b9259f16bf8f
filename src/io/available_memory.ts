// How much memory this process can still take: the system's available memory (Linux's
// MemAvailable, which counts reclaimable page cache, as os.freemem() reads it), or less when a
// cgroup (a container, a systemd slice) caps the process. Under a cap the kernel kills at the
// cap, not when the machine runs out, so the cap's headroom is what a request may use.
import { readFileSync } from 'node:fs';
import { freemem } from 'node:os';
import { join } from 'node:path';

export interface AvailableMemory {
  bytes: number;
  /** Where the number comes from, for messages. */
  source: string;
  /** The cgroup's limit, when it is what bounds the request. */
  limit?: number;
}

/** A cgroup's limit (null when unlimited) and the memory it counts against it. */
interface CgroupMemory {
  limit: number | null;
  usage: number;
  /** Page cache the kernel reclaims before it would kill (inactive file pages). */
  reclaimable: number;
}

// cgroup v1 writes "no limit" as the largest page-aligned signed 64-bit number
const V1_UNLIMITED = 2 ** 62;

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return null; // not there: no such cgroup version, or not Linux
  }
}

/** A memory.stat field (bytes), 0 when absent. */
function statField(stat: string | null, field: string): number {
  const m = stat?.match(new RegExp(`^${field} (\\d+)$`, 'm'));
  return m ? Number(m[1]) : 0;
}

/** cgroup v2 (memory.max) or v1 (memory/memory.limit_in_bytes) under `root`; null if neither. */
export function readCgroupMemory(root = '/sys/fs/cgroup'): CgroupMemory | null {
  const max = readText(join(root, 'memory.max'));
  if (max !== null) {
    const stat = readText(join(root, 'memory.stat'));
    return {
      limit: max === 'max' ? null : Number(max),
      usage: Number(readText(join(root, 'memory.current')) ?? 0),
      reclaimable: statField(stat, 'inactive_file'),
    };
  }
  const v1 = join(root, 'memory');
  const limit = readText(join(v1, 'memory.limit_in_bytes'));
  if (limit === null) return null;
  const stat = readText(join(v1, 'memory.stat'));
  return {
    limit: Number(limit) >= V1_UNLIMITED ? null : Number(limit),
    usage: Number(readText(join(v1, 'memory.usage_in_bytes')) ?? 0),
    reclaimable: statField(stat, 'total_inactive_file'),
  };
}

/**
 * The memory a request may still allocate: the smaller of the system's available memory and
 * the headroom under a cgroup limit (limit − usage + reclaimable cache), if one is set.
 */
export function availableMemory(
  cgroupRoot = '/sys/fs/cgroup',
  systemFree: number = freemem(),
): AvailableMemory {
  const system = { bytes: systemFree, source: "the system's available memory" };
  const cgroup = readCgroupMemory(cgroupRoot);
  if (cgroup === null || cgroup.limit === null) return system;
  const working = Math.max(0, cgroup.usage - cgroup.reclaimable);
  const headroom = Math.max(0, cgroup.limit - working);
  return headroom < system.bytes
    ? {
        bytes: headroom,
        source: `the headroom under the cgroup's memory limit`,
        limit: cgroup.limit,
      }
    : system;
}

/** The budget a caller gave (a server's per-job share), else what is available. */
export function memoryBudget(given?: number): AvailableMemory {
  return given === undefined
    ? availableMemory()
    : { bytes: given, source: 'the memory budget given' };
}
