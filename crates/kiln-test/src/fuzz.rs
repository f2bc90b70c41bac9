//! Bounded fuzzing on stable Rust: a seeded xorshift generator, byte and token mutations of a
//! corpus of valid inputs (they reach deeper than random bytes), and [`run`], which checks one
//! generated input per case and, when a check panics, fails naming the case, the seed and the
//! input.
//!
//! `KILN_FUZZ_CASES=N` runs N cases per target instead of each test's small default (CI keeps
//! the default: a few seconds per target); `KILN_FUZZ_SEED=S` explores other inputs.

use std::fmt::Debug;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// The seed when `KILN_FUZZ_SEED` is unset: fixed, so a CI failure reproduces.
pub const DEFAULT_SEED: u64 = 0x6b69_6c6e_6675_7a7a;

/// A small, fast, seeded generator (xorshift64*). Not for anything but tests.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value; zero is remapped, as xorshift needs a non-zero state).
    pub fn new(seed: u64) -> Rng {
        // splitmix64 spreads nearby seeds (case 1, case 2, ...) apart.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)).max(1))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "Rng::below(0)");
        (self.next_u64() % n as u64) as usize
    }

    /// True once in `n` times on average.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }

    /// Up to `max` random bytes.
    pub fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max + 1);
        (0..n).map(|_| self.next_u64() as u8).collect()
    }

    /// A string of up to `max` pieces drawn from `alphabet`.
    pub fn string_from(&mut self, alphabet: &[&str], max: usize) -> String {
        let n = self.below(max + 1);
        (0..n).map(|_| *self.pick(alphabet)).collect()
    }
}

/// How many cases a target runs: `KILN_FUZZ_CASES`, else `default`.
pub fn cases(default: usize) -> usize {
    match std::env::var("KILN_FUZZ_CASES") {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("KILN_FUZZ_CASES={v:?} is not a number")),
        Err(_) => default,
    }
}

/// The run's seed: `KILN_FUZZ_SEED`, else [`DEFAULT_SEED`].
pub fn seed() -> u64 {
    match std::env::var("KILN_FUZZ_SEED") {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("KILN_FUZZ_SEED={v:?} is not a number")),
        Err(_) => DEFAULT_SEED,
    }
}

/// Runs `cases(default_cases)` cases of target `name`: each makes an input with `generate`
/// (from a generator seeded by the seed, the name and the case number, so any one case
/// reproduces alone) and checks it with `check`. A panic in either fails the test with the
/// case, the seed and the input (its `Debug`, cut at 4 KiB).
pub fn run<T: Debug>(
    name: &str,
    default_cases: usize,
    mut generate: impl FnMut(&mut Rng) -> T,
    mut check: impl FnMut(&T),
) {
    let seed = seed();
    let name_hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    let n = cases(default_cases);
    for case in 0..n {
        let mut rng = Rng::new(seed ^ name_hash ^ (case as u64).wrapping_mul(0x9e37_79b9));
        let input = generate(&mut rng);
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| check(&input))) {
            let msg = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            let mut shown = format!("{input:?}");
            if shown.len() > 4096 {
                let mut cut = 4096;
                while !shown.is_char_boundary(cut) {
                    cut -= 1;
                }
                shown.truncate(cut);
                shown.push_str("...");
            }
            panic!(
                "fuzz target {name}: case {case} of {n} failed (KILN_FUZZ_SEED={seed}): \
                 {msg}\ninput: {shown}"
            );
        }
    }
}

/// Bytes that often matter to parsers: delimiters, escapes, quotes, extremes.
const INTERESTING: &[u8] = b"\0\xff\x7f\x80\n\r\t \\/.:=$\"'`{}[]#-*?!0";

/// Applies one to four random edits to `data`: bit flips, interesting bytes, deletions,
/// insertions, duplicated chunks, a splice from another corpus entry, a `dict` token, or a cut.
pub fn mutate(rng: &mut Rng, data: &mut Vec<u8>, corpus: &[Vec<u8>], dict: &[&[u8]]) {
    for _ in 0..1 + rng.below(4) {
        let len = data.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = *rng.pick(INTERESTING);
            }
            2 if len > 0 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(64));
                data.drain(at..at + n);
            }
            3 => {
                let at = rng.below(len + 1);
                let extra = rng.bytes(16);
                data.splice(at..at, extra);
            }
            4 if len > 0 => {
                let from = rng.below(len);
                let n = 1 + rng.below((len - from).min(512));
                let chunk = data[from..from + n].to_vec();
                let at = rng.below(len + 1);
                data.splice(at..at, chunk);
            }
            5 if !corpus.is_empty() => {
                let other = rng.pick(corpus);
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
            6 | 7 if !dict.is_empty() => {
                let at = rng.below(len + 1);
                let token = rng.pick(dict);
                data.splice(at..at, token.iter().copied());
            }
            8 if len > 0 => data.truncate(rng.below(len)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_sequence_and_cases_differ() {
        let a: Vec<u64> = (0..8)
            .map({
                let mut r = Rng::new(7);
                move |_| r.next_u64()
            })
            .collect();
        let mut r = Rng::new(7);
        assert_eq!(a, (0..8).map(|_| r.next_u64()).collect::<Vec<_>>());
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
        assert_ne!(Rng::new(0).next_u64(), 0);
    }

    #[test]
    fn below_stays_in_range_and_reaches_both_ends() {
        let mut r = Rng::new(3);
        let xs: Vec<usize> = (0..1000).map(|_| r.below(5)).collect();
        assert!(xs.iter().all(|&x| x < 5));
        assert!(xs.contains(&0) && xs.contains(&4));
    }

    #[test]
    fn mutations_change_inputs_and_never_panic_on_empty_ones() {
        let mut r = Rng::new(11);
        let corpus = vec![b"FROM a\nRUN b\n".to_vec(), Vec::new()];
        let mut changed = 0;
        for _ in 0..2000 {
            let mut d = r.pick(&corpus).clone();
            let before = d.clone();
            mutate(&mut r, &mut d, &corpus, &[b"${"]);
            changed += usize::from(d != before);
        }
        assert!(
            changed > 1000,
            "only {changed} of 2000 mutations changed the input"
        );
    }

    #[test]
    fn run_names_the_failing_case() {
        let err = catch_unwind(|| {
            run("t", 50, |r| r.below(10), |&x| assert!(x != 3, "three"));
        })
        .unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(
            msg.contains("fuzz target t: case") && msg.contains("three"),
            "{msg}"
        );
        assert!(msg.contains("input: 3"), "{msg}");
    }
}
