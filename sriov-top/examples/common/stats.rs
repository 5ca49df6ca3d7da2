//! Medians and spreads the benchmarks print, and the attached-vs-detached
//! ratio of rounds measured in turn.
use std::time::Duration;

/// The median of `v` (the upper one of an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    assert!(!v.is_empty(), "no samples");
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The median of `v` (the upper one of an even count).
pub fn median_duration(mut v: Vec<Duration>) -> Duration {
    assert!(!v.is_empty(), "no samples");
    v.sort();
    v[v.len() / 2]
}

/// "median (min-max) ms".
pub fn spread_ms(v: &[Duration]) -> String {
    let mut v = v.to_vec();
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!(
        "{:.1} ms ({:.1}-{:.1})",
        ms(v[v.len() / 2]),
        ms(v[0]),
        ms(v[v.len() - 1])
    )
}

/// Rounds measured detached, attached, detached, ... (`off` has one more
/// than `on`): each attached round against the mean of the detached rounds
/// on either side of it, sorted (median in the middle, spread at the ends).
pub fn neighbour_ratios(off: &[f64], on: &[f64]) -> Vec<f64> {
    assert_eq!(
        off.len(),
        on.len() + 1,
        "detached rounds around each attached"
    );
    let mut r: Vec<f64> = on
        .iter()
        .enumerate()
        .map(|(i, a)| a / ((off[i] + off[i + 1]) / 2.0))
        .collect();
    r.sort_by(f64::total_cmp);
    r
}
