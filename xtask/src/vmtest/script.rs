//! The guest's script: one test after another, each with a watchdog, and
//! the injected hangs and wedges of `--inject-*`.
use super::*;
/// A debug fault a test can be made to show in the guest (`--inject-*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Inject {
    /// A fake RCU stall report, then a hang (as a wedged guest).
    Wedge,
    /// A silent hang past the time limit that the watchdog cannot end.
    Hang,
}

/// Where the pending injections land in `tests` (the list one VM runs):
/// each on the first test whose name contains its pattern and that no
/// earlier one took. Returns (index in `tests`, kind, index in `pending`).
pub(super) fn place_injections(
    tests: &[(String, String)],
    pending: &[(Inject, String)],
) -> Vec<(usize, Inject, usize)> {
    let mut placed: Vec<(usize, Inject, usize)> = Vec::new();
    for (k, (kind, pat)) in pending.iter().enumerate() {
        if let Some(i) = (0..tests.len())
            .find(|&i| tests[i].1.contains(pat.as_str()) && !placed.iter().any(|p| p.0 == i))
        {
            placed.push((i, *kind, k));
        }
    }
    placed
}

/// The guest script: each test in its own process, under `timeout`, so a
/// hang or crash is charged to the test by name and the rest still run.
/// `inject`: (index in `tests`, fault) for the debug options.
pub(super) fn script(
    tests: &[(String, String)],
    timeout_s: u64,
    inject: &[(usize, Inject)],
) -> String {
    // a watchdog per test: past the limit it dumps the blocked tasks to the
    // console (a test stuck in the kernel cannot be killed) and kills it
    let mut s = String::from(
        "set -u\nrc=0\n\
         echo 4 > /proc/sys/kernel/printk\n\
         echo 30 > /proc/sys/kernel/hung_task_timeout_secs 2>/dev/null\n\
         one() {\n\
         \techo \"{mark}$1 $2\"\n\
         \t\"$1\" --ignored --exact \"$2\" --test-threads=1 --color never &\n\
         \tpid=$!\n\
         \t( sleep {timeout_s}; echo \"vm-test: $2 still running after {timeout_s} s; blocked tasks:\"; \
         echo 8 > /proc/sys/kernel/printk; echo w > /proc/sysrq-trigger; sleep 1; kill -9 $pid ) &\n\
         \twd=$!\n\
         \twait $pid\n\
         \ts=$?\n\
         \tkill $wd 2>/dev/null\n\
         \t[ $s -eq 0 ] || rc=1\n\
         \techo \"{exit}$s\"\n\
         }\n",
    );
    if inject.iter().any(|(_, k)| *k == Inject::Wedge) {
        // what the console showed when a vCPU's timer stopped (the kernel's
        // lines, copied), and then no progress
        s.push_str(
            "wedge() {\n\
             \techo \"{mark}$1 $2\"\n\
             \techo \"vm-test: --inject-wedge: a fake RCU stall report follows; this test then hangs\"\n\
             \techo; echo 'running 1 test'; printf 'test %s ... ' \"$2\"\n\
             \techo '[  600.649805] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:'\n\
             \techo '[  600.651695] rcu: \t0-...!: (0 ticks this GP) idle=b878/0/0x0 softirq=17266/17266 fqs=0 (false positive?)'\n\
             \techo \"[  600.658163] rcu: rcu_preempt kthread timer wakeup didn't happen for 5251 jiffies! g28973 f0x0 RCU_GP_WAIT_FQS(5) ->state=0x402\"\n\
             \techo '[  600.659037] rcu: \tPossible timer handling issue on cpu=0 timer-softirq=12477'\n\
             \twhile :; do sleep 3600; done\n\
             }\n",
        );
    }
    if inject.iter().any(|(_, k)| *k == Inject::Hang) {
        s.push_str(
            "hang() {\n\
             \techo \"{mark}$1 $2\"\n\
             \techo \"vm-test: --inject-hang: this test hangs, silent, and its watchdog cannot kill it\"\n\
             \techo; echo 'running 1 test'; printf 'test %s ... ' \"$2\"\n\
             \tsleep {timeout_s}\n\
             \techo \"vm-test: $2 still running after {timeout_s} s; blocked tasks: (--inject-hang: none)\"\n\
             \twhile :; do sleep 3600; done\n\
             }\n",
        );
    }
    let mut s = s
        .replace("{mark}", TEST_MARK)
        .replace("{exit}", EXIT_MARK)
        .replace("{timeout_s}", &timeout_s.to_string());
    for (i, (bin, name)) in tests.iter().enumerate() {
        let f = match inject.iter().find(|(j, _)| *j == i) {
            None => "one",
            Some((_, Inject::Wedge)) => "wedge",
            Some((_, Inject::Hang)) => "hang",
        };
        s.push_str(&format!("{f} {bin} {name}\n"));
    }
    s.push_str("exit $rc\n");
    s
}
