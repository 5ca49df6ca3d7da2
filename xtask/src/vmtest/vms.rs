//! The VMs of one run: what is built once for all of them, how the tests
//! are dealt over them, and running them side by side.
use super::*;

/// What `cargo` built for the run, once for every VM.
pub(super) struct Built {
    pub(super) bins: Vec<(String, PathBuf)>,
    /// (kernel, test) to run: (binary name in /lab/bin, test name).
    pub(super) tests: Vec<(GuestKernel, (String, String))>,
    /// (kernel, (test, why)) not run there.
    pub(super) skipped: Vec<(GuestKernel, (String, String))>,
}

pub(super) fn build(o: &Options) -> Result<Built> {
    let sabotage_args: Vec<String> = o
        .sabotage
        .map(|s| {
            vec![
                "--features".into(),
                format!("sriov-core/sabotage-{}", s.name()),
            ]
        })
        .unwrap_or_default();
    let mut bins = Vec::new();
    let (mut tests, mut skipped) = (Vec::new(), Vec::new());
    for (package, target) in LAB_TEST_TARGETS {
        let exe = build_test(package, target, &sabotage_args)?;
        let name = format!("{package}-{target}-tests");
        let listed = list_tests(&exe, o.filter.as_deref(), o.hazards)?;
        for k in o.kernel.kernels() {
            for t in &listed {
                match skips::why_skipped(k, t) {
                    Some(why) => skipped.push((k, (t.clone(), why.to_string()))),
                    None => tests.push((k, (name.clone(), t.clone()))),
                }
            }
        }
        bins.push((name, exe));
    }
    if !tests.is_empty() {
        bins.extend(lab::build_project_bins_with(&sabotage_args)?);
    }
    Ok(Built {
        bins,
        tests,
        skipped,
    })
}

/// One VM of the run: a kernel and its share of that kernel's tests.
pub(super) struct VmPlan {
    pub(super) kernel: GuestKernel,
    /// 1-based; `of` VMs for this kernel.
    pub(super) shard: usize,
    pub(super) of: usize,
    /// (binary, test), `--repeat` times over.
    pub(super) tests: Vec<(String, String)>,
}

impl VmPlan {
    /// `6.12`, or `6.12/2` when the kernel's tests are dealt over VMs;
    /// empty when this VM runs alone.
    pub(super) fn label(&self, side_by_side: bool) -> String {
        match (side_by_side, self.of) {
            (false, _) => String::new(),
            (true, 1) => self.kernel.to_string(),
            (true, _) => format!("{}/{}", self.kernel, self.shard),
        }
    }

    /// Its own lab directory, so that VMs can run side by side.
    pub(super) fn dir(&self) -> lab::LabDir {
        lab::LabDir::named(&format!("vm-{}-{}", self.kernel, self.shard))
    }
}

/// The VMs: per kernel, its tests dealt ([`deal`]) over
/// `ceil(jobs / kernels)` VMs (never an empty one).
pub(super) fn plan(o: &Options, built: &Built) -> Vec<VmPlan> {
    let kernels = o.kernel.kernels();
    let per_kernel = (o.jobs as usize).div_ceil(kernels.len()).max(1);
    let mut plan = Vec::new();
    for k in kernels {
        let mine: Vec<(String, String)> = built
            .tests
            .iter()
            .filter(|(x, _)| *x == k)
            .map(|(_, t)| t.clone())
            .collect();
        let all: Vec<(String, String)> = (0..o.repeat).flat_map(|_| mine.iter().cloned()).collect();
        let of = per_kernel.min(all.len());
        for (shard, tests) in deal(&all, of).into_iter().enumerate() {
            plan.push(VmPlan {
                kernel: k,
                shard: shard + 1,
                of,
                tests,
            });
        }
    }
    plan
}

/// Lab tests that take far longer than the ~24 s of a typical one under
/// TCG (seconds, the mean of 6.12 and 6.1 in one run): dealt first, so that
/// they do not end up in one VM.
const LONG_TESTS: &[(&str, u32)] = &[
    ("agent::fifty_scrapes_a_second", 85),
    ("redteam_bind::a_numvfs_text_changed_after_the_check", 83),
    ("agent::the_agent_serves_each_vf", 51),
    ("lifetime::a_second_instance_is_refused", 41),
    ("redteam::numvfs_is_parsed_as_the_kernel_parses_it", 38),
];

/// What a test is expected to take, for dealing.
fn weight(test: &str) -> u32 {
    LONG_TESTS
        .iter()
        .find(|(t, _)| test.starts_with(t))
        .map_or(24, |(_, s)| *s)
}

/// Deal `tests` over `n` VMs, the longest first, each to the VM with the
/// least so far (longest processing time first); each VM keeps the order
/// it was dealt.
pub(super) fn deal(tests: &[(String, String)], n: usize) -> Vec<Vec<(String, String)>> {
    let mut order: Vec<&(String, String)> = tests.iter().collect();
    // stable: equal weights keep the listed order
    order.sort_by_key(|t| std::cmp::Reverse(weight(&t.1)));
    let mut vms: Vec<(u32, Vec<(String, String)>)> = vec![(0, Vec::new()); n.max(1)];
    for t in order {
        let vm = vms
            .iter_mut()
            .min_by_key(|(load, _)| *load)
            .expect("at least one VM");
        vm.0 += weight(&t.1);
        vm.1.push(t.clone());
    }
    vms.into_iter().map(|(_, t)| t).collect()
}

/// Run the planned VMs, at most `o.jobs` at once, in plan order; each
/// result in plan order.
pub(super) fn run_plan(
    o: &Options,
    built: &Built,
    plan: &[VmPlan],
    side_by_side: bool,
    built_after: Duration,
) -> Vec<Result<Summary>> {
    let jobs = if side_by_side { o.jobs as usize } else { 1 };
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<Result<Summary>>>> =
        plan.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(plan.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(vm) = plan.get(i) else { break };
                    let label = vm.label(side_by_side);
                    PREFIX.with(|p| {
                        *p.borrow_mut() = if label.is_empty() {
                            String::new()
                        } else {
                            format!("[{label}] ")
                        }
                    });
                    if plan.len() > 1 {
                        say!(
                            "vm-test: === guest kernel {}{} ({} tests) ===",
                            vm.kernel,
                            if vm.of > 1 {
                                format!(", VM {} of {}", vm.shard, vm.of)
                            } else {
                                String::new()
                            },
                            vm.tests.len()
                        );
                    }
                    let r = run_vm(o, vm, &built.bins, built_after);
                    if let Err(e) = &r {
                        say!("vm-test: the lab run failed: {e:#}");
                    }
                    *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                }
            });
        }
    });
    results
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .unwrap_or_else(|| Err(anyhow::anyhow!("the VM did not run")))
        })
        .collect()
}
