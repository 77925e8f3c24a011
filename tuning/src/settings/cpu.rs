//! CPU-side settings: frequency governor, IRQ affinity of NIC and NVMe queues, clocksource.

use super::{online_cpus, with_fixes, with_note, Context, Doc, Setting};
use crate::cpulist::{self, CpuSet};
use crate::report::{Fix, Item, Status};
use crate::sysroot::SysRoot;
use std::collections::BTreeMap;

pub const GOVERNOR: Setting = Setting {
    name: "cpu-governor",
    title: "CPU frequency governor",
    check: check_governor,
};

pub const IRQ_AFFINITY: Setting = Setting {
    name: "irq-affinity",
    title: "IRQ affinity of NIC and NVMe queues",
    check: check_irq_affinity,
};

pub const CLOCKSOURCE: Setting = Setting {
    name: "clocksource",
    title: "Clocksource",
    check: check_clocksource,
};

const GOVERNOR_DOC: Doc = Doc {
    setting: GOVERNOR.name,
    title: GOVERNOR.title,
    why: "Each shard busy-polls its own core and goes idle between bursts; a power-saving \
          governor lowers the clock during those gaps and the next request pays the ramp-up in \
          tail latency. `performance` keeps every shard core at full speed.",
};

const IRQ_DOC: Doc = Doc {
    setting: IRQ_AFFINITY.name,
    title: IRQ_AFFINITY.title,
    why: "A shard owns its connections and its io_uring; when the NIC or NVMe completion \
          interrupt fires on another core, the wakeup crosses cores and pollutes a foreign \
          cache. Pinning each NIC queue to one shard core (and having an NVMe queue per shard \
          core) keeps interrupt work on the core that consumes it.",
};

const CLOCKSOURCE_DOC: Doc = Doc {
    setting: CLOCKSOURCE.name,
    title: CLOCKSOURCE.title,
    why: "The broker timestamps every batch and latency sample. With `tsc` (or kvm-clock / \
          arch_sys_counter) clock_gettime is a vDSO read of a few nanoseconds; with hpet or \
          acpi_pm it becomes a slow hardware access on every call.",
};

const CPU_SYS: &str = "/sys/devices/system/cpu";

fn governor_path(cpu: u32) -> String {
    format!("{CPU_SYS}/cpu{cpu}/cpufreq/scaling_governor")
}

/// Groups CPUs by their governor so that a 128-core host yields a handful of lines.
fn check_governor(ctx: &Context) -> Vec<Item> {
    let change = "cpupower frequency-set -g performance (or write `performance` to \
                  /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor); persist with \
                  cpupower.service or a tuned profile";
    let cpus = match online_cpus(&ctx.root) {
        Ok(c) => c,
        Err(e) => {
            return vec![with_note(
                GOVERNOR_DOC.item(
                    "all CPUs",
                    "unreadable",
                    "performance",
                    Status::Unreadable,
                    change,
                    "nothing to revert",
                ),
                e,
            )]
        }
    };

    // Value (or `None` when unreadable) -> CPUs with that value.
    let mut groups: BTreeMap<Option<String>, CpuSet> = BTreeMap::new();
    let mut first_error = None;
    for &cpu in &cpus {
        match ctx.root.read_trimmed(governor_path(cpu)) {
            Ok(v) => groups.entry(Some(v)).or_default().insert(cpu),
            Err(e) => {
                first_error.get_or_insert_with(|| e.to_string());
                groups.entry(None).or_default().insert(cpu)
            }
        };
    }

    let mut items = Vec::new();
    for (value, set) in groups {
        let subject = format!("cpu{}", cpulist::format(&set));
        match value {
            None => items.push(with_note(
                GOVERNOR_DOC.item(
                    subject,
                    "unreadable",
                    "performance",
                    Status::Unreadable,
                    change,
                    "nothing to revert",
                ),
                format!(
                    "{}; without a cpufreq driver (common in VMs) the frequency is set by \
                     firmware or the hypervisor",
                    first_error.clone().unwrap_or_default()
                ),
            )),
            Some(v) => {
                let revert = format!(
                    "cpupower frequency-set -g {v}, or `corelog tune --revert --only cpu-governor`"
                );
                if v == "performance" {
                    items.push(GOVERNOR_DOC.item(
                        subject,
                        v.clone(),
                        "performance",
                        Status::Ok,
                        change,
                        revert,
                    ));
                    continue;
                }
                let first = set.iter().next().copied().unwrap_or(0);
                let available = ctx
                    .root
                    .read(format!(
                        "{CPU_SYS}/cpu{first}/cpufreq/scaling_available_governors"
                    ))
                    .map(|s| s.split_whitespace().any(|g| g == "performance"))
                    // When the list is unreadable, try anyway: the kernel rejects the write
                    // cleanly if the governor does not exist.
                    .unwrap_or(true);
                let fixes = if available {
                    set.iter()
                        .map(|&c| Fix {
                            path: governor_path(c),
                            value: "performance".into(),
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                let item = with_fixes(
                    GOVERNOR_DOC.item(
                        subject,
                        v.clone(),
                        "performance",
                        Status::Warn,
                        change,
                        revert,
                    ),
                    fixes,
                );
                items.push(if available {
                    item
                } else {
                    with_note(item, "the cpufreq driver does not offer `performance`")
                });
            }
        }
    }
    items
}

/// One line of `/proc/interrupts` that we care about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IrqLine {
    pub irq: u32,
    pub name: String,
}

/// Parses `/proc/interrupts` into numbered IRQs and their action names (the last column).
pub(crate) fn parse_interrupts(text: &str) -> Vec<IrqLine> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((num, rest)) = line.trim_start().split_once(':') else {
            continue;
        };
        let Ok(irq) = num.trim().parse::<u32>() else {
            // Named rows such as NMI, LOC and ERR are per-CPU counters, not device IRQs.
            continue;
        };
        if let Some(name) = rest.split_whitespace().last() {
            out.push(IrqLine {
                irq,
                name: name.to_string(),
            });
        }
    }
    out
}

/// True for NVMe I/O queue vectors (`nvme0q1`, ...); `q0` is the admin queue.
fn is_nvme_io_queue(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("nvme") else {
        return false;
    };
    let Some((ctrl, queue)) = rest.split_once('q') else {
        return false;
    };
    !ctrl.is_empty()
        && ctrl.chars().all(|c| c.is_ascii_digit())
        && queue.parse::<u32>().map(|q| q > 0).unwrap_or(false)
}

/// Physical network interfaces: entries of `/sys/class/net` that have a backing device.
fn physical_interfaces(root: &SysRoot) -> Vec<String> {
    root.list_dir("/sys/class/net")
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n != "lo" && root.exists(format!("/sys/class/net/{n}/device")))
        .collect()
}

/// True when an IRQ action name belongs to a NIC queue of one of `ifaces`.
fn is_nic_queue(name: &str, ifaces: &[String]) -> bool {
    let by_iface = ifaces.iter().any(|i| {
        name == i
            || name
                .strip_prefix(i.as_str())
                .is_some_and(|r| r.starts_with('-') || r.starts_with('@'))
    });
    // Some drivers name vectors after the driver rather than the interface.
    let by_driver = name.starts_with("mlx5_comp")
        || (name.starts_with("virtio") && (name.contains("-input") || name.contains("-output")));
    by_iface || by_driver
}

fn affinity_path(irq: u32) -> String {
    format!("/proc/irq/{irq}/smp_affinity_list")
}

/// Finds a running irqbalance, which would undo any pinning within seconds.
fn irqbalance_pid(root: &SysRoot) -> Option<String> {
    let pids = root.list_dir("/proc").ok()?;
    pids.into_iter()
        .filter(|p| p.chars().all(|c| c.is_ascii_digit()))
        .find(|p| {
            root.read_trimmed(format!("/proc/{p}/comm"))
                .map(|c| c == "irqbalance")
                .unwrap_or(false)
        })
}

fn check_irq_affinity(ctx: &Context) -> Vec<Item> {
    let change_nic = "echo CPU > /proc/irq/N/smp_affinity_list for each NIC queue IRQ, one \
                      shard core per queue; disable irqbalance (systemctl disable --now \
                      irqbalance) or ban the shard cores in IRQBALANCE_BANNED_CPULIST";
    let revert_nic = "write the previous lists back (`corelog tune --revert --only \
                      irq-affinity`) and re-enable irqbalance";
    let shards = match ctx
        .shard_cpus
        .clone()
        .map(Ok)
        .unwrap_or_else(|| online_cpus(&ctx.root))
    {
        Ok(s) if !s.is_empty() => s,
        Ok(_) | Err(_) => {
            return vec![IRQ_DOC.item(
                "shard cores",
                "unreadable",
                "NIC queues pinned to shard cores",
                Status::Unreadable,
                change_nic,
                revert_nic,
            )]
        }
    };
    let shard_list = cpulist::format(&shards);
    let interrupts = match ctx.root.read("/proc/interrupts") {
        Ok(t) => parse_interrupts(&t),
        Err(e) => {
            return vec![with_note(
                IRQ_DOC.item(
                    "NIC and NVMe",
                    "unreadable",
                    format!("NIC queues pinned one per shard core ({shard_list})"),
                    Status::Unreadable,
                    change_nic,
                    revert_nic,
                ),
                e.to_string(),
            )]
        }
    };
    let balancer_note = irqbalance_pid(&ctx.root)
        .map(|pid| format!("irqbalance is running (pid {pid}) and will move pinned IRQs back"));

    // Reads each IRQ's affinity; unreadable ones are counted separately.
    let affinities = |irqs: &[&IrqLine]| -> Vec<(u32, Result<CpuSet, String>)> {
        irqs.iter()
            .map(|l| {
                let a = ctx
                    .root
                    .read(affinity_path(l.irq))
                    .map_err(|e| e.to_string())
                    .and_then(|s| cpulist::parse(&s));
                (l.irq, a)
            })
            .collect()
    };

    let mut items = Vec::new();

    // NIC queues: recommend one queue per shard core, round-robin.
    let ifaces = physical_interfaces(&ctx.root);
    let nic: Vec<&IrqLine> = interrupts
        .iter()
        .filter(|l| is_nic_queue(&l.name, &ifaces))
        .collect();
    let recommended_nic =
        format!("each queue IRQ on one shard core, round-robin over {shard_list}");
    let subject_nic = if ifaces.is_empty() {
        "NIC".to_string()
    } else {
        format!("NIC {}", ifaces.join(","))
    };
    if nic.is_empty() {
        items.push(IRQ_DOC.item(
            subject_nic,
            "no NIC queue IRQs found in /proc/interrupts",
            recommended_nic,
            Status::Info,
            change_nic,
            revert_nic,
        ));
    } else {
        let aff = affinities(&nic);
        let unreadable = aff.iter().filter(|(_, a)| a.is_err()).count();
        let pinned: Vec<u32> = aff
            .iter()
            .filter_map(|(_, a)| a.as_ref().ok())
            .filter(|a| a.len() == 1 && a.iter().all(|c| shards.contains(c)))
            .filter_map(|a| a.iter().next().copied())
            .collect();
        let distinct: CpuSet = pinned.iter().copied().collect();
        let wanted_distinct = nic.len().min(shards.len());
        let ok = unreadable == 0 && pinned.len() == nic.len() && distinct.len() >= wanted_distinct;
        let current = format!(
            "{} queue IRQs: {} pinned to a single shard core ({} distinct), {} elsewhere or \
             spread{}",
            nic.len(),
            pinned.len(),
            distinct.len(),
            nic.len() - pinned.len() - unreadable,
            if unreadable > 0 {
                format!(", {unreadable} unreadable")
            } else {
                String::new()
            }
        );
        let mut item = IRQ_DOC.item(
            subject_nic,
            current,
            recommended_nic,
            if ok { Status::Ok } else { Status::Warn },
            change_nic,
            revert_nic,
        );
        if !ok {
            let cores: Vec<u32> = shards.iter().copied().collect();
            item.fixes = aff
                .iter()
                .filter(|(_, a)| a.is_ok())
                .enumerate()
                .map(|(k, (irq, _))| Fix {
                    path: affinity_path(*irq),
                    value: cores[k % cores.len()].to_string(),
                })
                .collect();
        }
        if let Some(n) = &balancer_note {
            item = with_note(item, n.clone());
        }
        items.push(item);
    }

    // NVMe queues: the kernel manages these vectors (writes fail with EIO), so we only report
    // whether every shard core has a queue whose interrupt is delivered locally.
    let nvme: Vec<&IrqLine> = interrupts
        .iter()
        .filter(|l| is_nvme_io_queue(&l.name))
        .collect();
    let change_nvme = "NVMe queue IRQs are kernel-managed; give the controller more I/O \
                       queues (nvme.write_queues / nvme.poll_queues module parameters) or \
                       place shards on cores that own a queue";
    let recommended_nvme = format!("an NVMe queue IRQ local to every shard core ({shard_list})");
    if nvme.is_empty() {
        items.push(IRQ_DOC.item(
            "NVMe",
            "no NVMe queue IRQs found in /proc/interrupts",
            recommended_nvme,
            Status::Info,
            change_nvme,
            "nothing to revert",
        ));
    } else {
        let aff = affinities(&nvme);
        let covered: CpuSet = aff
            .iter()
            .filter_map(|(_, a)| a.as_ref().ok())
            .flat_map(|a| a.iter().copied())
            .collect();
        let uncovered: CpuSet = shards.difference(&covered).copied().collect();
        let current = if uncovered.is_empty() {
            format!("{} I/O queue IRQs cover every shard core", nvme.len())
        } else {
            format!(
                "{} I/O queue IRQs; shard cores without a local queue: {}",
                nvme.len(),
                cpulist::format(&uncovered)
            )
        };
        items.push(IRQ_DOC.item(
            "NVMe",
            current,
            recommended_nvme,
            if uncovered.is_empty() {
                Status::Ok
            } else {
                Status::Warn
            },
            change_nvme,
            "nothing to revert",
        ));
    }
    items
}

/// Clocksources whose reads are served from the vDSO without a syscall or slow MMIO.
const FAST_CLOCKSOURCES: [&str; 4] = [
    "tsc",
    "kvm-clock",
    "arch_sys_counter",
    "hyperv_clocksource_tsc_page",
];

fn check_clocksource(ctx: &Context) -> Vec<Item> {
    let dir = "/sys/devices/system/clocksource/clocksource0";
    let current_path = format!("{dir}/current_clocksource");
    let change = "echo tsc > /sys/devices/system/clocksource/clocksource0/current_clocksource; \
                  persist with clocksource=tsc tsc=reliable on the kernel command line";
    let available: Vec<String> = ctx
        .root
        .read(format!("{dir}/available_clocksource"))
        .map(|s| s.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    let recommended = if available.is_empty() || available.iter().any(|a| a == "tsc") {
        "tsc".to_string()
    } else {
        available
            .iter()
            .find(|a| FAST_CLOCKSOURCES.contains(&a.as_str()))
            .cloned()
            .unwrap_or_else(|| "tsc".to_string())
    };
    match ctx.root.read_trimmed(&current_path) {
        Err(e) => vec![with_note(
            CLOCKSOURCE_DOC.item(
                "system",
                "unreadable",
                recommended,
                Status::Unreadable,
                change,
                "nothing to revert",
            ),
            e.to_string(),
        )],
        Ok(current) => {
            let revert = format!("echo {current} > {current_path}, or `corelog tune --revert`");
            let ok = FAST_CLOCKSOURCES.contains(&current.as_str());
            let mut item = CLOCKSOURCE_DOC.item(
                "system",
                current.clone(),
                recommended.clone(),
                if ok { Status::Ok } else { Status::Warn },
                change,
                revert,
            );
            if !ok && available.contains(&recommended) {
                item.fixes = vec![Fix {
                    path: current_path,
                    value: recommended,
                }];
            }
            vec![item]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interrupts_parsing() {
        let text = "           CPU0       CPU1\n  24:  10  0  PCI-MSI 524288-edge  nvme0q0\n \
                    25:  5  5  PCI-MSI 524289-edge  nvme0q1\n  30:  1  1  PCI-MSI 1-edge  \
                    eth0-TxRx-0\nNMI:  0  0  Non-maskable interrupts\n";
        let lines = parse_interrupts(text);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[1].name, "nvme0q1");
        assert!(!is_nvme_io_queue("nvme0q0"));
        assert!(is_nvme_io_queue("nvme0q1"));
        assert!(!is_nvme_io_queue("nvmeq1"));
        let ifaces = vec!["eth0".to_string()];
        assert!(is_nic_queue("eth0-TxRx-0", &ifaces));
        assert!(!is_nic_queue("eth01-TxRx-0", &ifaces));
        assert!(is_nic_queue("virtio1-input.0", &ifaces));
    }
}
