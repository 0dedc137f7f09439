//! fnmatch(3) for modalias patterns, and the literal prefix that lets the
//! index skip most patterns without running the matcher. Pure.

/// fnmatch(3) with flags 0 (no FNM_PATHNAME, no FNM_PERIOD): `*`, `?`,
/// `[...]` with ranges and `!`/`^` negation, `\` escapes. Iterative with one
/// backtrack point per `*` (the classic linear-memory matcher), so no
/// recursion depth and no panics on any input.
pub fn fnmatch(pattern: &str, s: &str) -> bool {
    let p = pattern.as_bytes();
    let t = s.as_bytes();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        let c = t.get(ti).copied().unwrap_or(0);
        let step = match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ti));
                pi += 1;
                continue;
            }
            Some(b'?') => Some(1),
            Some(b'[') => match bracket(p, pi, c) {
                Some((true, len)) => Some(len),
                Some((false, _)) => None,
                // An unterminated `[` is a literal `[` (glibc behaviour).
                None => (c == b'[').then_some(1),
            },
            Some(b'\\') => match p.get(pi + 1) {
                Some(&e) if e == c => Some(2),
                None if c == b'\\' => Some(1),
                _ => None,
            },
            Some(&l) if l == c => Some(1),
            _ => None,
        };
        match step {
            Some(n) => {
                pi += n;
                ti += 1;
            }
            None => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    while p.get(pi) == Some(&b'*') {
        pi += 1;
    }
    pi == p.len()
}

/// Match `c` against the bracket expression starting at `p[start] == '['`.
/// Returns (matched, length of the expression) or None if unterminated.
fn bracket(p: &[u8], start: usize, c: u8) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some(b'!') | Some(b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let mut lo = *p.get(i)?;
        if lo == b']' && !first {
            break;
        }
        first = false;
        if lo == b'\\' {
            i += 1;
            lo = *p.get(i)?;
        }
        i += 1;
        let mut hi = lo;
        if p.get(i) == Some(&b'-') && p.get(i + 1).is_some_and(|&b| b != b']') {
            hi = *p.get(i + 1)?;
            i += 2;
            if hi == b'\\' {
                hi = *p.get(i)?;
                i += 1;
            }
        }
        if lo <= c && c <= hi {
            matched = true;
        }
    }
    Some((matched != negate, i + 1 - start))
}

/// The literal prefix of a glob pattern (up to the first special byte): a
/// cheap filter before fnmatch, since modalias patterns start with their
/// bus (`pci:v00008086d…`).
pub(super) fn literal_prefix(p: &str) -> &str {
    let end = p.find(['*', '?', '[', '\\']).unwrap_or(p.len());
    p.get(..end).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_basics() {
        assert!(fnmatch(
            "pci:v00001AF4d*sv*sd*bc*sc*i*",
            "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00"
        ));
        assert!(!fnmatch("pci:v00008086d*", "pci:v00001AF4d00001000"));
        assert!(fnmatch("a?c", "abc"));
        assert!(!fnmatch("a?c", "ac"));
        assert!(fnmatch("x[0-9]y", "x5y"));
        assert!(!fnmatch("x[!0-9]y", "x5y"));
        assert!(fnmatch("x[]]y", "x]y"));
        assert!(fnmatch("a[", "a["));
        assert!(fnmatch("a\\*", "a*"));
        assert!(!fnmatch("a\\*", "ab"));
        assert!(fnmatch("*", ""));
        assert!(fnmatch("a*b*c", "aXbYbZc"));
        assert!(!fnmatch("a*b*c", "aXbYbZ"));
        assert!(fnmatch("dmi*:svnQEMU*", "dmi:bvnSeaBIOS:svnQEMU:pn"));
        for p in ["[", "[!", "\\", "[a-", "*[", "[\\"] {
            let _ = fnmatch(p, "a-[\\");
        }
    }
}
