//! The one table `cargo xtask bench` ends with. Each benchmark program
//! (host or lab) prints, beside its own lines, one line per figure with a
//! goal:
//!
//! ```text
//! bench-row<TAB>metric<TAB>ours<TAB>baseline<TAB>ratio<TAB>goal<TAB>met
//! ```
//!
//! `ours` and `baseline` carry their units (`46.5 ms`), `ratio` is a number
//! (ours / baseline, or as the goal states it), `goal` says which way
//! (`<= 1.0x`, `>= 1 M/s`), `met` is `yes` or `no`: the program measured
//! and judged it; this module only gathers and prints.
use std::{
    io::BufRead as _,
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

use crate::util;

const MARK: &str = "bench-row\t";

/// One figure against its goal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub metric: String,
    pub ours: String,
    pub baseline: String,
    pub ratio: String,
    pub goal: String,
    pub met: bool,
}

/// The row a `bench-row` line carries (anywhere in the line: the lab
/// console may prefix it).
pub fn parse(line: &str) -> Option<Row> {
    let at = line.find(MARK)?;
    let f: Vec<&str> = line[at + MARK.len()..].trim_end().split('\t').collect();
    let [metric, ours, baseline, ratio, goal, met] = f.as_slice() else {
        return None;
    };
    Some(Row {
        metric: metric.to_string(),
        ours: ours.to_string(),
        baseline: baseline.to_string(),
        ratio: ratio.to_string(),
        goal: goal.to_string(),
        met: *met == "yes",
    })
}

/// Run `cmd` with its stdout shown as it comes; the rows it printed.
pub fn run_collecting(cmd: &mut Command) -> Result<Vec<Row>> {
    let line = util::display(cmd);
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start `{line}`"))?;
    let mut rows = Vec::new();
    for l in std::io::BufReader::new(child.stdout.take().expect("piped")).lines() {
        let l = l?;
        println!("{l}");
        rows.extend(parse(&l));
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("`{line}` failed ({status})");
    }
    Ok(rows)
}

/// The table, columns padded to their widest cell.
pub fn render(rows: &[Row]) -> String {
    let head = ["metric", "ours", "baseline", "ratio", "goal", "met"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.metric.clone(),
                r.ours.clone(),
                r.baseline.clone(),
                r.ratio.clone(),
                r.goal.clone(),
                if r.met { "yes" } else { "NO" }.to_string(),
            ]
        })
        .collect();
    let mut w = head.map(str::len);
    for c in &cells {
        for (i, s) in c.iter().enumerate() {
            w[i] = w[i].max(s.chars().count());
        }
    }
    let fmt = |c: &[String]| -> String {
        c.iter()
            .enumerate()
            .map(|(i, s)| format!("{s:<width$}", width = w[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = fmt(&head.map(String::from));
    out.push('\n');
    out.push_str(&"-".repeat(w.iter().sum::<usize>() + 2 * (w.len() - 1)));
    for c in &cells {
        out.push('\n');
        out.push_str(&fmt(c));
    }
    let met = rows.iter().filter(|r| r.met).count();
    out.push_str(&format!("\n{met} of {} goals met", rows.len()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_is_read_from_anywhere_in_a_line_and_junk_is_not_a_row() {
        let r = parse("[ 12.3] bench-row\tapply\t46.5 ms\t24.7 ms\t1.88\t<= 1.0x\tno\n")
            .expect("a row");
        assert_eq!(r.metric, "apply");
        assert_eq!(r.baseline, "24.7 ms");
        assert!(!r.met);
        assert!(parse("bench-row\tonly\tthree\tfields").is_none());
        assert!(parse("apply 46.5 ms").is_none());
    }

    #[test]
    fn the_table_pads_columns_and_counts_the_goals_met() {
        let rows = [
            parse("bench-row\ta\t1 ms\t2 ms\t0.50\t<= 1.0x\tyes").unwrap(),
            parse("bench-row\tlonger metric\t10 ms\t1 ms\t10.00\t<= 1.0x\tno").unwrap(),
        ];
        let t = render(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "metric         ours   baseline  ratio  goal     met"
        );
        assert_eq!(
            lines[2],
            "a              1 ms   2 ms      0.50   <= 1.0x  yes"
        );
        assert_eq!(
            lines[3],
            "longer metric  10 ms  1 ms      10.00  <= 1.0x  NO"
        );
        assert_eq!(lines[4], "1 of 2 goals met");
    }
}
