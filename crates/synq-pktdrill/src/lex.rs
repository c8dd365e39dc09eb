//! The tokenizer. Whitespace and newlines carry no meaning in packetdrill, so every token
//! keeps the line it started on for error messages.

use crate::ParseError;

/// One token.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    /// `--name[=value]` on an options line.
    Opt(String),
    /// An integer (decimal or `0x` hex).
    Int(i64),
    /// A number with a fraction (`0.100`, `.1`).
    Float(f64),
    /// A name: letters, digits, `_`.
    Word(String),
    /// `"..."`.
    Str(String),
    /// `` `...` ``: a shell command.
    Cmd(String),
    /// `%{ ... }%`: a code block.
    Code(String),
    /// `...`.
    Ellipsis,
    /// Any other single character (`< > ( ) [ ] { } , : . = ~ + - * | !`).
    P(char),
}

/// A token and the 1-based line it starts on.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) line: usize,
    /// Whitespace (or a comment) came right before it: `S.` is one flag word, `S .` is not
    /// written by anyone but parses the same; `0:0(0)` needs nothing between its parts.
    pub(crate) spaced: bool,
    /// Byte range in the source (a fast-open cookie is read back as written).
    pub(crate) span: (usize, usize),
}

/// Longest token we keep (a hostile file cannot make one token hold the whole input twice).
const MAX_TOKENS: usize = 1 << 20;

/// Split `src` into tokens.
pub(crate) fn lex(src: &str) -> Result<Vec<Token>, ParseError> {
    let b = src.as_bytes();
    let mut i = 0;
    let mut line = 1;
    let mut out = Vec::new();
    let mut spaced = true;
    let err = |line, msg: String| ParseError { line, msg };
    while i < b.len() {
        if out.len() >= MAX_TOKENS {
            return Err(err(line, "script too long".into()));
        }
        let c = b[i];
        let start_line = line;
        match c {
            b'\n' => {
                line += 1;
                i += 1;
                spaced = true;
                continue;
            }
            c if c.is_ascii_whitespace() => {
                i += 1;
                spaced = true;
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                spaced = true;
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let end = find(b, i + 2, b"*/")
                    .ok_or_else(|| err(line, "unterminated /* comment".into()))?;
                line += count_lines(&b[i..end]);
                i = end + 2;
                spaced = true;
                continue;
            }
            _ => {}
        }
        let (tok, next) = match c {
            b'%' if b.get(i + 1) == Some(&b'{') => {
                let end = find(b, i + 2, b"}%")
                    .ok_or_else(|| err(line, "unterminated %{ code block".into()))?;
                (Tok::Code(text(b, i + 2, end)), end + 2)
            }
            b'`' => {
                let end = find(b, i + 1, b"`")
                    .ok_or_else(|| err(line, "unterminated ` command".into()))?;
                (Tok::Cmd(text(b, i + 1, end)), end + 1)
            }
            b'"' => {
                let end =
                    find(b, i + 1, b"\"").ok_or_else(|| err(line, "unterminated string".into()))?;
                (Tok::Str(text(b, i + 1, end)), end + 1)
            }
            b'-' if b.get(i + 1) == Some(&b'-') && spaced => {
                let mut j = i + 2;
                while j < b.len() && !b[j].is_ascii_whitespace() {
                    j += 1;
                }
                (Tok::Opt(text(b, i + 2, j)), j)
            }
            b'.' if b[i..].starts_with(b"...") => (Tok::Ellipsis, i + 3),
            b'.' if b.get(i + 1).is_some_and(u8::is_ascii_digit) => number(b, i, line)?,
            c if c.is_ascii_digit() => number(b, i, line)?,
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let mut j = i;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                (Tok::Word(text(b, i, j)), j)
            }
            c if c.is_ascii() => (Tok::P(c as char), i + 1),
            _ => {
                // A UTF-8 character outside comments: one token, refused where it is used.
                let ch = src[i..].chars().next().unwrap_or('?');
                (Tok::P(ch), i + ch.len_utf8())
            }
        };
        line += count_lines(&b[i..next]);
        out.push(Token {
            tok,
            line: start_line,
            spaced,
            span: (i, next),
        });
        spaced = false;
        i = next;
    }
    Ok(out)
}

fn find(b: &[u8], from: usize, pat: &[u8]) -> Option<usize> {
    b.get(from..)?
        .windows(pat.len())
        .position(|w| w == pat)
        .map(|p| p + from)
}

fn count_lines(b: &[u8]) -> usize {
    b.iter().filter(|&&c| c == b'\n').count()
}

fn text(b: &[u8], from: usize, to: usize) -> String {
    String::from_utf8_lossy(&b[from..to]).into_owned()
}

/// `12`, `0x1f`, `0.5`, `.5`; `0...1` is `0`, `...`, `1`.
fn number(b: &[u8], i: usize, line: usize) -> Result<(Tok, usize), ParseError> {
    let bad = |s: &str| ParseError {
        line,
        msg: format!("bad number {s:?}"),
    };
    if b[i..].starts_with(b"0x") || b[i..].starts_with(b"0X") {
        let mut j = i + 2;
        while j < b.len() && b[j].is_ascii_hexdigit() {
            j += 1;
        }
        let s = text(b, i + 2, j);
        // Up to i64::MAX, as a decimal number: 0xffffffffffffffff is not -1.
        let v = i64::from_str_radix(&s, 16).map_err(|_| bad(&s))?;
        return Ok((Tok::Int(v), j));
    }
    let mut j = i;
    while j < b.len() && b[j].is_ascii_digit() {
        j += 1;
    }
    let frac = b.get(j) == Some(&b'.') && !b[j..].starts_with(b"...");
    if !frac {
        let s = text(b, i, j);
        let v: i64 = s.parse().map_err(|_| bad(&s))?;
        return Ok((Tok::Int(v), j));
    }
    j += 1;
    while j < b.len() && b[j].is_ascii_digit() {
        j += 1;
    }
    let s = text(b, i, j);
    let v: f64 = s.parse().map_err(|_| bad(&s))?;
    Ok((Tok::Float(v), j))
}
