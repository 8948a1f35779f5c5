//! The search `filter` expression (protocols/insights-hub.md rule 14; the vendor's
//! filtering page).
//!
//! Clauses `<field> <op> <value>` joined by `and`. Fields: `name`, `path`, `type`,
//! `size`, `timestamp`, `created`, `updated`. Operators: `eq` or `=`, `gt` or `>`, `gte`
//! or `>=`, `lt` or `<`, `lte` or `<=`; word operators need blanks around them. A value
//! is quoted with `'` or `"`, or unquoted up to the next blank. `*` in an `eq` value
//! matches any run of characters. `path` is the directory with a trailing `/` (`/` for
//! the root). Times compare as instants when the value parses as a date-time, else as
//! the stored `YYYY-MM-DDTHH:MM:SS.mmmZ` text.
//!
//! The vendor documents that "blanks in the wrong place and invalid parameters will
//! lead to the filter being ignored": [`parse`] returns `None` then, and search lists
//! every file of the asset. A client must therefore check the names it gets back.

use std::cmp::Ordering;

use super::catalog::StoredFile;
use super::target::Target;
use super::timestamp::{format_ms, parse_ms};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Name,
    Path,
    Type,
    Size,
    Timestamp,
    Created,
    Updated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Gt,
    Gte,
    Lt,
    Lte,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Clause {
    field: Field,
    op: Op,
    value: String,
}

/// A parsed filter: every clause must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Filter {
    clauses: Vec<Clause>,
}

/// Parses `text`; `None` if it is not a valid filter (the service then ignores it).
pub(crate) fn parse(text: &str) -> Option<Filter> {
    let mut rest = text.trim();
    let mut clauses = Vec::new();
    loop {
        let (clause, after) = clause(rest)?;
        clauses.push(clause);
        rest = after.trim_start();
        if rest.is_empty() {
            return Some(Filter { clauses });
        }
        // `and`, then at least one blank; the blank before it was trimmed above, and
        // `after` always ends a value, so the `and` cannot be glued to it unquoted.
        let (word, tail) = rest.split_at(rest.find(char::is_whitespace)?);
        if !word.eq_ignore_ascii_case("and") {
            return None;
        }
        rest = tail.trim_start();
    }
}

/// One clause at the start of `s`, and what follows it.
fn clause(s: &str) -> Option<(Clause, &str)> {
    let end = s
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(s.len());
    let field = match &s[..end] {
        "name" => Field::Name,
        "path" => Field::Path,
        "type" => Field::Type,
        "size" => Field::Size,
        "timestamp" => Field::Timestamp,
        "created" => Field::Created,
        "updated" => Field::Updated,
        _ => return None,
    };
    let s = &s[end..];
    let (op, s) = operator(s)?;
    let (value, s) = value(s)?;
    Some((Clause { field, op, value }, s))
}

/// The operator with its blanks: word operators need a blank on both sides.
fn operator(s: &str) -> Option<(Op, &str)> {
    let trimmed = s.trim_start();
    let blank_before = trimmed.len() < s.len();
    for (sym, op) in [
        (">=", Op::Gte),
        ("<=", Op::Lte),
        ("=", Op::Eq),
        (">", Op::Gt),
        ("<", Op::Lt),
    ] {
        if let Some(after) = trimmed.strip_prefix(sym) {
            return Some((op, after.trim_start()));
        }
    }
    if !blank_before {
        return None;
    }
    let (word, after) = trimmed.split_at(trimmed.find(char::is_whitespace)?);
    let op = match word.to_ascii_lowercase().as_str() {
        "eq" => Op::Eq,
        "gt" => Op::Gt,
        "gte" => Op::Gte,
        "lt" => Op::Lt,
        "lte" => Op::Lte,
        _ => return None,
    };
    Some((op, after.trim_start()))
}

/// A quoted or bare value at the start of `s`, and what follows it. A quoted value
/// must be followed by a blank or the end.
fn value(s: &str) -> Option<(String, &str)> {
    let quote = s.chars().next()?;
    if quote == '\'' || quote == '"' {
        let close = s[1..].find(quote)? + 1;
        let after = &s[close + 1..];
        if !(after.is_empty() || after.starts_with(char::is_whitespace)) {
            return None;
        }
        return Some((s[1..close].to_string(), after));
    }
    let end = s.find(char::is_whitespace).unwrap_or(s.len());
    Some((s[..end].to_string(), &s[end..]))
}

impl Filter {
    pub(crate) fn matches(&self, target: &Target, file: &StoredFile) -> bool {
        self.clauses.iter().all(|c| c.matches(target, file))
    }
}

impl Clause {
    fn matches(&self, target: &Target, f: &StoredFile) -> bool {
        match self.field {
            Field::Name => self.text(target.name()),
            Field::Path => self.text(&target.dir()),
            Field::Type => self.text(&f.file_type),
            Field::Size => self
                .value
                .parse::<u64>()
                .is_ok_and(|v| self.holds(f.size.cmp(&v))),
            Field::Timestamp => self.time(f.timestamp_ms),
            Field::Created => self.time(f.created_ms),
            Field::Updated => self.time(f.updated_ms),
        }
    }

    fn holds(&self, ord: Ordering) -> bool {
        match self.op {
            Op::Eq => ord == Ordering::Equal,
            Op::Gt => ord == Ordering::Greater,
            Op::Gte => ord != Ordering::Less,
            Op::Lt => ord == Ordering::Less,
            Op::Lte => ord != Ordering::Greater,
        }
    }

    fn text(&self, actual: &str) -> bool {
        match self.op {
            Op::Eq => glob(&self.value, actual),
            _ => self.holds(actual.cmp(self.value.as_str())),
        }
    }

    fn time(&self, actual_ms: i64) -> bool {
        match parse_ms(&self.value) {
            Some(v) => self.holds(actual_ms.cmp(&v)),
            None => self.text(&format_ms(actual_ms)),
        }
    }
}

/// Whether `text` matches `pattern`, where `*` stands for any run of characters.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was, and the text position it is now taken to end at.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> (Target, StoredFile) {
        let t = Target {
            entity: "00189ab4c65243bb9d77f17332dd570a".into(),
            filepath: "logs/2024/dev1.log".into(),
        };
        let f = StoredFile {
            etag: 0,
            size: 100,
            file_type: "text/plain".into(),
            description: None,
            timestamp_ms: 1_532_711_131_208, // 2018-07-27T17:05:31.208Z
            created_ms: 0,
            updated_ms: 1_532_711_131_208,
        };
        (t, f)
    }

    fn hit(filter: &str) -> Option<bool> {
        let (t, f) = file();
        parse(filter).map(|p| p.matches(&t, &f))
    }

    #[test]
    fn name_and_path_with_any_quoting() {
        for yes in [
            "name eq dev1.log",
            "name eq 'dev1.log'",
            "name eq \"dev1.log\"",
            "name='dev1.log'",
            "name = dev1.log",
            "path eq 'logs/2024/'",
            "name eq 'dev1.log' and path eq 'logs/2024/'",
            "name EQ dev1.log AND path eq logs/2024/",
            "  name eq dev1.log   and   size gte 100  ",
            "name eq 'dev*.log'",
            "path eq 'logs/*'",
            "updated gt '2018-07-27T17:05:31Z'",
            "updated lte '2018-07-27T19:05:31.208+02:00'",
            "timestamp eq '2018-07-27T17:05:31.208Z'",
            "type eq text/plain",
        ] {
            assert_eq!(hit(yes), Some(true), "{yes}");
        }
        for no in [
            "name eq dev1",
            "path eq logs/2024",
            "path eq /logs/2024/",
            "name eq 'dev1.log' and path eq '/'",
            "size lt 100",
            "name eq 'dev1.log ' ",
        ] {
            assert_eq!(hit(no), Some(false), "{no}");
        }
    }

    #[test]
    fn invalid_filters_are_none() {
        for bad in [
            "",
            "name",
            "name eq",
            "nameeq x",
            "name eqx",
            "owner eq x",
            "name eq 'x",
            "name eq 'x'y",
            "name eq x or path eq y",
            "name eq x and",
            "name eq x andpath eq y",
            "name like x",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn glob_matches_runs() {
        assert!(glob("*", ""));
        assert!(glob("a*c", "abbbc"));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*c", "abcd"));
        assert!(glob("*.log", "x.y.log"));
        assert!(!glob("abc", "ab"));
    }
}
