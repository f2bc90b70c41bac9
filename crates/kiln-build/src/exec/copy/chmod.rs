//! `--chmod` values: octal (`0755`, at most `07777`) or, as BuildKit accepts since
//! dockerfile 1.14, symbolic chmod(1) clauses (`u+x`, `go-w`, `a=rX`, `u=rwx,g=u`),
//! applied with a zero umask.

/// A malformed `--chmod`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChmodError {
    #[error("invalid chmod parameter: '{0}'. it should be octal string and between 0 and 07777")]
    Octal(String),
    #[error("invalid chmod parameter: {0:?}: not an octal mode nor a symbolic mode")]
    Symbolic(String),
}

/// A parsed `--chmod`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chmod {
    Octal(u32),
    Symbolic(Vec<Clause>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    /// Bit mask of the classes (0o700 user, 0o070 group, 0o007 other); 0o777 when none given.
    who: u32,
    actions: Vec<(char, Perm)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Perm {
    Bits(String),
    Copy(char),
}

impl Chmod {
    pub fn parse(s: &str) -> Result<Chmod, ChmodError> {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return match u32::from_str_radix(s, 8) {
                Ok(v) if v <= 0o7777 => Ok(Chmod::Octal(v)),
                _ => Err(ChmodError::Octal(s.to_string())),
            };
        }
        let bad = || ChmodError::Symbolic(s.to_string());
        let mut clauses = Vec::new();
        for part in s.split(',') {
            let mut chars = part.chars().peekable();
            let mut who = 0;
            while let Some(c) = chars.peek().copied() {
                let m = match c {
                    'u' => 0o700,
                    'g' => 0o070,
                    'o' => 0o007,
                    'a' => 0o777,
                    _ => break,
                };
                who |= m;
                chars.next();
            }
            let mut actions = Vec::new();
            while let Some(op) = chars.next() {
                if !matches!(op, '+' | '-' | '=') {
                    return Err(bad());
                }
                let mut bits = String::new();
                let mut perm = None;
                while let Some(c) = chars.peek().copied() {
                    match c {
                        'r' | 'w' | 'x' | 'X' | 's' | 't' if perm.is_none() => bits.push(c),
                        'u' | 'g' | 'o' if bits.is_empty() && perm.is_none() => {
                            perm = Some(Perm::Copy(c));
                        }
                        '+' | '-' | '=' => break,
                        _ => return Err(bad()),
                    }
                    chars.next();
                }
                actions.push((op, perm.unwrap_or(Perm::Bits(bits))));
            }
            if actions.is_empty() {
                return Err(bad());
            }
            clauses.push(Clause {
                who: if who == 0 { 0o777 } else { who },
                actions,
            });
        }
        Ok(Chmod::Symbolic(clauses))
    }

    /// The mode (`0o7777` bits) a file with `mode` gets.
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        match self {
            Chmod::Octal(m) => *m,
            Chmod::Symbolic(clauses) => {
                let mut mode = mode & 0o7777;
                for c in clauses {
                    for (op, perm) in &c.actions {
                        let bits = match perm {
                            Perm::Bits(b) => {
                                let mut v = 0;
                                for ch in b.chars() {
                                    v |= match ch {
                                        'r' => 0o444 & c.who,
                                        'w' => 0o222 & c.who,
                                        'x' => 0o111 & c.who,
                                        'X' if is_dir || mode & 0o111 != 0 => 0o111 & c.who,
                                        's' => {
                                            (if c.who & 0o700 != 0 { 0o4000 } else { 0 })
                                                | (if c.who & 0o070 != 0 { 0o2000 } else { 0 })
                                        }
                                        't' if c.who & 0o007 != 0 => 0o1000,
                                        _ => 0,
                                    };
                                }
                                v
                            }
                            Perm::Copy(from) => {
                                let rwx = match from {
                                    'u' => (mode >> 6) & 7,
                                    'g' => (mode >> 3) & 7,
                                    _ => mode & 7,
                                };
                                (rwx * 0o111) & c.who
                            }
                        };
                        match op {
                            '+' => mode |= bits,
                            '-' => mode &= !bits,
                            _ => {
                                let mut clear = c.who;
                                if c.who & 0o700 != 0 {
                                    clear |= 0o4000;
                                }
                                if c.who & 0o070 != 0 && !is_dir {
                                    clear |= 0o2000;
                                }
                                mode = (mode & !clear) | bits;
                            }
                        }
                    }
                }
                mode
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal() {
        assert_eq!(Chmod::parse("0755").unwrap(), Chmod::Octal(0o755));
        assert_eq!(Chmod::parse("600").unwrap(), Chmod::Octal(0o600));
        assert_eq!(Chmod::parse("4755").unwrap(), Chmod::Octal(0o4755));
        assert!(matches!(Chmod::parse("17777"), Err(ChmodError::Octal(_))));
        assert!(matches!(Chmod::parse("789"), Err(ChmodError::Octal(_))));
    }

    #[test]
    fn symbolic() {
        let a = |s: &str, m: u32, d: bool| Chmod::parse(s).unwrap().apply(m, d);
        assert_eq!(a("u+x", 0o644, false), 0o744);
        assert_eq!(a("+x", 0o644, false), 0o755);
        assert_eq!(a("go-w", 0o666, false), 0o644);
        assert_eq!(a("a=rX", 0o640, false), 0o444);
        assert_eq!(a("a=rX", 0o740, false), 0o555);
        assert_eq!(a("a=rX", 0o700, true), 0o555);
        assert_eq!(a("u=rwx,g=u,o=", 0o000, false), 0o770);
        assert_eq!(a("u+s", 0o755, false), 0o4755);
        assert_eq!(a("+t", 0o755, true), 0o1755);
        assert_eq!(a("u=rw,go=r", 0o777, false), 0o644);
        for bad in ["", "u", "x+", "u+q", "zz", "u+x,"] {
            assert!(Chmod::parse(bad).is_err(), "{bad:?}");
        }
    }
}
