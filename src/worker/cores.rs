//! How many workers, and whether to pin them (spec §2 `workers`, `pin_workers`).
//!
//! Usable cores = the CPUs of the process affinity mask, capped by a cgroup CPU quota
//! (cgroup v2 `cpu.max` along the process's cgroup path, or v1 `cpu.cfs_quota_us`), at
//! least 1. Read once on the control thread at startup.

use std::fs;
use std::path::{Path, PathBuf};

use core_affinity::CoreId;

use crate::config::PinWorkers;

/// The decided layout of worker threads.
#[derive(Debug, Clone)]
pub struct WorkerPlan {
    pub workers: usize,
    /// Core for worker k is `pins[k]`; empty when not pinning.
    pub pins: Vec<CoreId>,
    /// Why pinning is on or off, for the startup line.
    pub pin_reason: &'static str,
}

/// Plans `configured` workers (0 = the default) with pinning mode `pin`.
pub fn plan(configured: usize, pin: PinWorkers) -> WorkerPlan {
    let mask = core_affinity::get_core_ids().unwrap_or_default();
    let quota = cpu_quota_cores();
    let usable = match quota {
        Some(q) => mask.len().min(q),
        None => mask.len(),
    }
    .max(1);
    let workers = if configured == 0 { usable } else { configured };
    let (pin_on, pin_reason) = match pin {
        PinWorkers::Never => (false, "pin_workers: false"),
        PinWorkers::Always => (!mask.is_empty(), "pin_workers: true"),
        PinWorkers::Auto if quota.is_some() => (false, "auto: a CPU quota applies"),
        PinWorkers::Auto if mask.len() < workers => (false, "auto: fewer CPUs than workers"),
        PinWorkers::Auto => (true, "auto"),
    };
    let pins = if pin_on {
        (0..workers).map(|k| mask[k % mask.len()]).collect()
    } else {
        Vec::new()
    };
    WorkerPlan {
        workers,
        pins,
        pin_reason,
    }
}

/// Whole cores allowed by a CPU quota (rounded up), or `None` when no quota applies.
fn cpu_quota_cores() -> Option<usize> {
    let root = Path::new("/sys/fs/cgroup");
    if let Some(q) = cgroup_v2_quota(root) {
        return Some(q);
    }
    let quota = read_i64(&root.join("cpu/cpu.cfs_quota_us"))?;
    let period = read_i64(&root.join("cpu/cpu.cfs_period_us"))?;
    quota_to_cores(quota, period)
}

fn cgroup_v2_quota(root: &Path) -> Option<usize> {
    let text = fs::read_to_string("/proc/self/cgroup").ok()?;
    let rel = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    let mut dir: PathBuf = root.join(rel.trim_start_matches('/'));
    let mut best: Option<usize> = None;
    // The tightest quota along the path to the root applies.
    loop {
        if let Ok(s) = fs::read_to_string(dir.join("cpu.max")) {
            if let Some(c) = parse_cpu_max(&s) {
                best = Some(best.map_or(c, |b| b.min(c)));
            }
        }
        if dir == root || !dir.pop() || !dir.starts_with(root) {
            break;
        }
    }
    best
}

/// `"max 100000"` → None; `"150000 100000"` → Some(2).
pub fn parse_cpu_max(s: &str) -> Option<usize> {
    let mut it = s.split_whitespace();
    let quota = it.next()?;
    let period: i64 = it.next()?.parse().ok()?;
    if quota == "max" {
        return None;
    }
    quota_to_cores(quota.parse().ok()?, period)
}

fn quota_to_cores(quota: i64, period: i64) -> Option<usize> {
    if quota <= 0 || period <= 0 {
        return None;
    }
    Some(((quota + period - 1) / period).max(1) as usize)
}

fn read_i64(p: &Path) -> Option<i64> {
    fs::read_to_string(p).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_max_parsing() {
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max("150000 100000\n"), Some(2));
        assert_eq!(parse_cpu_max("50000 100000"), Some(1));
        assert_eq!(parse_cpu_max("garbage"), None);
    }

    #[test]
    fn explicit_worker_count_is_kept() {
        let p = plan(3, PinWorkers::Never);
        assert_eq!(p.workers, 3);
        assert!(p.pins.is_empty());
    }
}
