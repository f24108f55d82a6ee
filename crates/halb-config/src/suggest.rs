//! "Did you mean …?": edit distance over keys and enum values.

/// Optimal-string-alignment distance (Levenshtein plus adjacent
/// transpositions), over chars.
pub(crate) fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let (n, m) = (a.len(), b.len());
    // d[i][j]: distance between a[..i] and b[..j]; three rows suffice.
    let mut prev2 = vec![0usize; m + 1];
    let mut prev: Vec<usize> = (0..=m).collect();
    let mut cur = vec![0usize; m + 1];
    for i in 1..=n {
        cur[0] = i;
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(prev2[j - 2] + 1);
            }
            cur[j] = v;
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[m]
}

/// Lowercase, without `-`, `_` and spaces: `Scheduler-Flags` and
/// `scheduler_flags` are the same word to a human.
pub(crate) fn normalize(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '-' | '_' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The fix for key `k` from a table of (names other tools use, hint).
pub(crate) fn hint_for(pairs: &[(&[&str], &'static str)], k: &str) -> Option<&'static str> {
    let n = normalize(k);
    pairs
        .iter()
        .find(|(names, _)| names.iter().any(|x| normalize(x) == n))
        .map(|(_, hint)| *hint)
}

/// The candidate `input` most likely meant, if any is close enough.
pub(crate) fn closest<'c>(input: &str, candidates: &[&'c str]) -> Option<&'c str> {
    if input.is_empty() || input.chars().count() > 64 {
        return None;
    }
    let norm = normalize(input);
    if let Some(c) = candidates.iter().find(|c| normalize(c) == norm) {
        return Some(c);
    }
    let lower = input.to_lowercase();
    let mut best: Option<(usize, &'c str)> = None;
    for c in candidates {
        let d = distance(&lower, c);
        match best {
            Some((bd, _)) if bd <= d => {}
            _ => best = Some((d, c)),
        }
    }
    let (d, c) = best?;
    let len = lower.chars().count().min(c.chars().count());
    let limit = (len / 3).max(1);
    if d <= limit {
        return Some(c);
    }
    // A truncation: "sched" for "scheduler".
    if lower.chars().count() >= 4 {
        if let Some(c) = candidates.iter().find(|c| c.starts_with(lower.as_str())) {
            return Some(c);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(distance("", ""), 0);
        assert_eq!(distance("abc", ""), 3);
        assert_eq!(distance("wrrr", "wrr"), 1);
        assert_eq!(distance("shceduler", "scheduler"), 1);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggestions() {
        let keys = ["scheduler", "scheduler_flags", "listen", "weight"];
        assert_eq!(closest("schedular", &keys), Some("scheduler"));
        assert_eq!(closest("Scheduler-Flags", &keys), Some("scheduler_flags"));
        assert_eq!(closest("weigth", &keys), Some("weight"));
        assert_eq!(closest("sched", &keys), Some("scheduler"));
        assert_eq!(closest("zzz", &keys), None);
        assert_eq!(closest("", &keys), None);
        let scheds = ["rr", "wrr", "lc", "wlc"];
        assert_eq!(closest("wrrr", &scheds), Some("wrr"));
        assert_eq!(closest("WLC", &scheds), Some("wlc"));
    }
}
