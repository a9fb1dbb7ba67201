//! `--shard K/N`: the K-th of N disjoint parts of the listed inputs (0-based), for running one
//! job over many machines (a Kubernetes Indexed Job, a Slurm array). The split is over the
//! listing (files, tar shards, and inputs that failed to list), round-robin, so the parts are
//! decided before anything is read, every worker computes the same ones from the same
//! arguments, their union is every input, and a worker never opens another worker's tar shard.

use std::fmt;
use std::str::FromStr;

/// The most parts a listing is split into (2^32): far more workers than any cluster runs, and
/// the index of a part fits in any platform's usize.
pub const MAX_PARTS: u64 = 1 << 32;

/// One part of N.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub index: usize,
    pub count: usize,
}

impl Part {
    /// The whole listing (no `--shard`).
    pub const ALL: Part = Part { index: 0, count: 1 };

    /// Whether the `i`-th listed input (0-based) belongs to this part.
    pub fn holds(&self, i: usize) -> bool {
        i % self.count == self.index
    }

    /// This part's items of a listing, in order.
    pub fn select<T>(self, listed: impl Iterator<Item = T>) -> impl Iterator<Item = T> {
        listed
            .enumerate()
            .filter(move |(i, _)| self.holds(*i))
            .map(|(_, item)| item)
    }
}

impl FromStr for Part {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not K/N (e.g. 0/8: the first of 8 parts)"))?;
        let number = |v: &str, what: &str| {
            let v = v.trim();
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("{what} in {s:?} is not a whole number"));
            }
            // Digits only: the one way left to fail is size.
            v.parse::<u64>()
                .ok()
                .filter(|&x| x <= MAX_PARTS)
                .map(|x| x as usize)
                .ok_or_else(|| format!("{what} in {s:?} is out of range (at most {MAX_PARTS})"))
        };
        let (index, count) = (number(k, "K")?, number(n, "N")?);
        if count == 0 {
            return Err("N must be at least 1".into());
        }
        if index >= count {
            return Err(format!(
                "K counts from 0, so K/{count} needs K in 0..={}, not {index}",
                count - 1
            ));
        }
        Ok(Part { index, count })
    }
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_disjoint_and_cover_the_listing() {
        for n in 1..6 {
            let mut seen = vec![0; 23];
            for k in 0..n {
                let part: Part = format!("{k}/{n}").parse().unwrap();
                for i in part.select(0..23) {
                    seen[i] += 1;
                }
            }
            assert!(seen.iter().all(|&c| c == 1), "{n}: {seen:?}");
        }
    }

    #[test]
    fn malformed_specs_are_refused() {
        for bad in ["", "3", "1/0", "2/2", "5/3", "-1/3", "a/3", "1/b", "1/2/3"] {
            assert!(bad.parse::<Part>().is_err(), "{bad}");
        }
        assert_eq!(" 2 / 3".parse::<Part>().unwrap().to_string(), "2/3");
        // Too large for the type, or past the bound: out of range, not "not a number".
        for big in [
            "0/18446744073709551616",
            "99999999999999999999999/3",
            "0/4294967297",
        ] {
            let e = big.parse::<Part>().unwrap_err();
            assert!(e.contains("out of range"), "{big}: {e}");
        }
        let top = format!("{}/{}", MAX_PARTS - 1, MAX_PARTS);
        assert_eq!(top.parse::<Part>().unwrap().to_string(), top);
    }
}
