//! Which driver the kernel picks for a device by ID: the modules whose
//! `MODULE_DEVICE_TABLE` patterns (`modules.alias`, `modules.builtin.alias`
//! of the running kernel) match the device's `modalias`. That is the driver
//! `drivers_probe` and autoprobe bind when no `driver_override` names one.
use std::{fs, path::Path};

/// The `alias PATTERN MODULE` lines of the running kernel's alias files
/// for PCI devices. Unreadable files give no lines (no module then matches:
/// the caller decides what that means).
pub fn pci_aliases(modules_dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for f in ["modules.alias", "modules.builtin.alias"] {
        let Ok(text) = fs::read_to_string(modules_dir.join(f)) else {
            continue;
        };
        out.extend(parse(&text));
    }
    out
}

/// `alias pci:... module` lines of an alias file.
pub fn parse(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next()? == "alias").then_some(())?;
            let pat = w.next()?;
            let module = w.next()?;
            pat.starts_with("pci:")
                .then(|| (pat.to_string(), module.to_string()))
        })
        .collect()
}

/// The modules whose pattern matches `modalias`, sorted, without repeats.
pub fn matching(aliases: &[(String, String)], modalias: &str) -> Vec<String> {
    let mut out: Vec<String> = aliases
        .iter()
        .filter(|(p, _)| glob(p.as_bytes(), modalias.as_bytes()))
        .map(|(_, m)| m.clone())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A module name and a driver name are the same when they differ only in
/// `-` against `_` (`vfio_pci` is the module of `vfio-pci`).
pub fn same_name(module: &str, driver: &str) -> bool {
    module.len() == driver.len()
        && module
            .bytes()
            .zip(driver.bytes())
            .all(|(a, b)| a == b || (a == b'_' || a == b'-') && (b == b'_' || b == b'-'))
}

/// `fnmatch` as kmod uses it for aliases: `*`, `?` and `[...]` classes.
fn glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() {
            match p[pi] {
                b'*' => {
                    star = Some((pi, si));
                    pi += 1;
                    continue;
                }
                b'?' => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                b'[' => {
                    if let Some((ok, next)) = class(&p[pi..], s[si])
                        && ok
                    {
                        pi += next;
                        si += 1;
                        continue;
                    }
                }
                c if c == s[si] => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                _ => {}
            }
        }
        // mismatch: let the last `*` take one more character
        let Some((sp, ss)) = star else { return false };
        pi = sp + 1;
        si = ss + 1;
        star = Some((sp, ss + 1));
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// A `[...]` class at the start of `p` against `c`: (matches, its length).
fn class(p: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = p.get(1) == Some(&b'!') || p.get(1) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    while i < p.len() && (p[i] != b']' || first) {
        first = false;
        if i + 2 < p.len() && p[i + 1] == b'-' && p[i + 2] != b']' {
            hit |= (p[i]..=p[i + 2]).contains(&c);
            i += 3;
        } else {
            hit |= p[i] == c;
            i += 1;
        }
    }
    (i < p.len()).then_some((hit != negate, i + 1))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The 82576 VF as Debian 6.12 shows it, and lines of its alias file.
    const VF: &str = "pci:v00008086d000010CAsv00000000sd00000000bc02sc00i00";
    const ALIASES: &str = "\
# Aliases extracted from modules themselves.
alias pci:v00008086d000010CAsv*sd*bc*sc*i* igbvf
alias pci:v00008086d0000152Esv*sd*bc*sc*i* igbvf
alias pci:v00008086d000010C9sv*sd*bc*sc*i* igb
alias pci:v*d*sv*sd*bc02sc00i* some_class_driver
alias pci:v0000808[0-7]d000010C[A-B]sv*sd*bc*sc*i* ranged
alias pci:v0000808[!6]d*sv*sd*bc*sc*i* negated
alias usb:v*p*d*dc*dsc*dp*ic*isc*ip*in* usbcore
alias fs-ext4 ext4
";

    #[test]
    fn the_vf_is_matched_by_its_id_and_class_patterns_only() {
        let a = parse(ALIASES);
        assert_eq!(a.len(), 6, "PCI lines only: {a:?}");
        assert_eq!(matching(&a, VF), ["igbvf", "ranged", "some_class_driver"]);
        let pf = "pci:v00008086d000010C9sv00008086sd0000A03Cbc02sc00i00";
        assert_eq!(matching(&a, pf), ["igb", "some_class_driver"]);
        assert!(matching(&a, "pci:v00001234d00005678sv0sd0bc01sc00i00").is_empty());
    }

    #[test]
    fn glob_handles_stars_classes_and_backtracking() {
        assert!(glob(b"a*b*c", b"axxbyyc"));
        assert!(glob(b"a*c", b"abcbc"));
        assert!(!glob(b"a*c", b"abcb"));
        assert!(glob(b"a?c", b"abc"));
        assert!(!glob(b"a?c", b"ac"));
        assert!(glob(b"[a-c]x", b"bx"));
        assert!(!glob(b"[!a-c]x", b"bx"));
        assert!(glob(b"[]]", b"]"));
        assert!(glob(b"*", b""));
        assert!(!glob(b"x", b""));
    }

    #[test]
    fn module_and_driver_names_differ_in_dashes_only() {
        assert!(same_name("vfio_pci", "vfio-pci"));
        assert!(same_name("igbvf", "igbvf"));
        assert!(!same_name("igb", "igbvf"));
        assert!(!same_name("vfio_pci", "vfio-pcx"));
    }
}
