//! Arrays in their text form: splitting the server's output (`array_out`) into elements, and
//! writing an array literal the server reads (`array_in`). For the bindings, so that the
//! quoting rules live here once rather than in Go, Ruby and C++ each.

/// PostgreSQL's MAXDIM: no array has more dimensions.
pub const MAX_DIMS: usize = 6;

/// A split array: its dimensions (elements per dimension, outermost first; none for `{}`) and
/// its elements in row-major order, each `None` for SQL NULL or the element's text
/// (unquoted, unescaped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrayText {
    pub dims: Vec<usize>,
    pub elems: Vec<Option<Vec<u8>>>,
}

/// Why a text is not an array as the server prints one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrayError(pub String);

fn bad(what: impl Into<String>) -> ArrayError {
    ArrayError(what.into())
}

/// Split `text`, the text of an array value, with `delim` between elements (`,` for every
/// built-in type but box, which uses `;`): what `array_in` accepts for a rectangular array,
/// with an optional dimension decoration (`[0:1]={5,6}`, whose bounds are skipped), elements
/// quoted (`"a \"b\""`, backslash escapes) or not (surrounding whitespace dropped, `NULL` in
/// any case for SQL NULL, backslash escapes), nested braces for each dimension, at most six.
/// Anything else is an `ArrayError` saying where.
pub fn split(text: &[u8], delim: u8) -> Result<ArrayText, ArrayError> {
    let mut p = Parser { s: text, at: 0, delim };
    p.skip_ws();
    if p.peek() == Some(b'[') {
        p.decoration()?;
    }
    p.skip_ws();
    let mut out = ArrayText { dims: Vec::new(), elems: Vec::new() };
    let mut seen: Vec<Option<usize>> = Vec::new();
    let mut leaf = None;
    p.array(0, &mut seen, &mut leaf, &mut out.elems)?;
    p.skip_ws();
    if p.at != text.len() {
        return Err(bad(format!("junk after the array at byte {}", p.at)));
    }
    if out.elems.is_empty() {
        // `{}`: PostgreSQL prints every empty array so.
        return Ok(out);
    }
    out.dims = seen.into_iter().map(|n| n.unwrap_or(0)).collect();
    Ok(out)
}

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
    delim: u8,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), ArrayError> {
        if self.peek() == Some(c) {
            self.at += 1;
            Ok(())
        } else {
            Err(bad(format!("expected '{}' at byte {}", c as char, self.at)))
        }
    }

    /// `[lo:hi][lo:hi]...=`: the bounds are checked for shape and skipped (the elements keep
    /// their order whatever the lower bounds).
    fn decoration(&mut self) -> Result<(), ArrayError> {
        let mut n = 0;
        while self.peek() == Some(b'[') {
            self.at += 1;
            self.bound()?;
            if self.peek() == Some(b':') {
                self.at += 1;
                self.bound()?;
            }
            self.expect(b']')?;
            n += 1;
            if n > MAX_DIMS {
                return Err(bad("more than 6 dimensions"));
            }
        }
        self.skip_ws();
        self.expect(b'=')
    }

    fn bound(&mut self) -> Result<(), ArrayError> {
        if matches!(self.peek(), Some(b'-' | b'+')) {
            self.at += 1;
        }
        let start = self.at;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.at += 1;
        }
        if self.at == start {
            return Err(bad(format!("expected a bound at byte {}", self.at)));
        }
        Ok(())
    }

    /// One `{...}` at nesting `depth`: elements, or arrays one level deeper; records the count
    /// per level in `seen` and the level the elements are at in `leaf`, and refuses a level
    /// whose count differs from another's or elements at two levels.
    fn array(
        &mut self,
        depth: usize,
        seen: &mut Vec<Option<usize>>,
        leaf: &mut Option<usize>,
        elems: &mut Vec<Option<Vec<u8>>>,
    ) -> Result<(), ArrayError> {
        if depth >= MAX_DIMS {
            return Err(bad("more than 6 dimensions"));
        }
        self.expect(b'{')?;
        if seen.len() <= depth {
            seen.push(None);
        }
        self.skip_ws();
        let mut count = 0;
        if self.peek() == Some(b'}') {
            self.at += 1;
        } else {
            loop {
                self.skip_ws();
                if self.peek() == Some(b'{') {
                    if leaf.is_some_and(|l| l <= depth) {
                        return Err(bad(format!("a sub-array where an element belongs at byte {}", self.at)));
                    }
                    self.array(depth + 1, seen, leaf, elems)?;
                } else {
                    if leaf.is_some_and(|l| l != depth) || seen.len() > depth + 1 {
                        return Err(bad(format!("an element where a sub-array belongs at byte {}", self.at)));
                    }
                    *leaf = Some(depth);
                    elems.push(self.element()?);
                }
                count += 1;
                self.skip_ws();
                match self.peek() {
                    Some(b'}') => {
                        self.at += 1;
                        break;
                    }
                    Some(c) if c == self.delim => self.at += 1,
                    _ => return Err(bad(format!("expected '{}' or '}}' at byte {}", self.delim as char, self.at))),
                }
            }
        }
        match seen[depth] {
            None => seen[depth] = Some(count),
            Some(n) if n == count => {}
            Some(_) => return Err(bad("sub-arrays of different lengths (not rectangular)")),
        }
        if count > 0 && leaf.is_none() {
            // Only empty sub-arrays (`{{},{}}`), which the server never prints.
            return Err(bad("empty sub-arrays"));
        }
        Ok(())
    }

    /// One element: quoted, or unquoted up to the delimiter or `}`.
    fn element(&mut self) -> Result<Option<Vec<u8>>, ArrayError> {
        let mut out = Vec::new();
        if self.peek() == Some(b'"') {
            self.at += 1;
            loop {
                match self.peek() {
                    None => return Err(bad("unterminated quoted element")),
                    Some(b'"') => {
                        self.at += 1;
                        return Ok(Some(out));
                    }
                    Some(b'\\') => {
                        let c = self.s.get(self.at + 1).copied().ok_or_else(|| bad("backslash at the end"))?;
                        out.push(c);
                        self.at += 2;
                    }
                    Some(c) => {
                        out.push(c);
                        self.at += 1;
                    }
                }
            }
        }
        // Unquoted: whitespace inside is kept, around is dropped; an escaped character never ends
        // the element and is not taken as whitespace.
        let mut keep = 0; // out's length up to the last character that is not trailing whitespace
        let mut escaped_any = false;
        loop {
            match self.peek() {
                None => return Err(bad("unterminated array")),
                Some(b'{' | b'"') => return Err(bad(format!("unexpected character at byte {}", self.at))),
                Some(b'}') => break,
                Some(c) if c == self.delim => break,
                Some(b'\\') => {
                    let c = self.s.get(self.at + 1).copied().ok_or_else(|| bad("backslash at the end"))?;
                    out.push(c);
                    keep = out.len();
                    escaped_any = true;
                    self.at += 2;
                }
                Some(c) => {
                    out.push(c);
                    if !c.is_ascii_whitespace() {
                        keep = out.len();
                    }
                    self.at += 1;
                }
            }
        }
        out.truncate(keep);
        if out.is_empty() {
            return Err(bad(format!("an empty unquoted element at byte {}", self.at)));
        }
        if !escaped_any && out.eq_ignore_ascii_case(b"NULL") {
            return Ok(None);
        }
        Ok(Some(out))
    }
}

/// The array literal of `elems` (None for SQL NULL) shaped by `dims` (elements per dimension,
/// outermost first; empty for one dimension of all the elements): every element quoted, with
/// `"` and `\` escaped, so any text survives (`{"1","a b",NULL}`); `{}` when there are none.
/// The server converts it to the parameter's array type. An `ArrayError` when `dims` does not
/// multiply to the element count or has more than six entries, or a zero with elements.
pub fn literal(elems: &[Option<&[u8]>], dims: &[usize]) -> Result<Vec<u8>, ArrayError> {
    if dims.len() > MAX_DIMS {
        return Err(bad("more than 6 dimensions"));
    }
    let one = [elems.len()];
    let dims = if dims.is_empty() { &one[..] } else { dims };
    let product = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| bad("dimensions overflow"))?;
    if product != elems.len() {
        return Err(bad(format!("dimensions {dims:?} hold {product} elements, not {}", elems.len())));
    }
    if elems.is_empty() {
        return Ok(b"{}".to_vec());
    }
    let mut out = Vec::with_capacity(elems.iter().map(|e| e.map_or(4, |e| e.len() + 3)).sum::<usize>() + 2);
    let mut next = 0;
    write_level(&mut out, elems, dims, &mut next);
    Ok(out)
}

fn write_level(out: &mut Vec<u8>, elems: &[Option<&[u8]>], dims: &[usize], next: &mut usize) {
    out.push(b'{');
    for i in 0..dims[0] {
        if i > 0 {
            out.push(b',');
        }
        if dims.len() > 1 {
            write_level(out, elems, &dims[1..], next);
            continue;
        }
        match elems[*next] {
            None => out.extend_from_slice(b"NULL"),
            Some(e) => {
                out.push(b'"');
                for &c in e {
                    if c == b'"' || c == b'\\' {
                        out.push(b'\\');
                    }
                    out.push(c);
                }
                out.push(b'"');
            }
        }
        *next += 1;
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(e: &str) -> Option<Vec<u8>> {
        Some(e.as_bytes().to_vec())
    }

    #[test]
    fn splits_what_the_server_prints() {
        let a = split(b"{1,2,NULL}", b',').unwrap();
        assert_eq!(a.dims, [3]);
        assert_eq!(a.elems, [s("1"), s("2"), None]);
        let a = split(br#"{"a b","c\"d","e\\f","NULL",null}"#, b',').unwrap();
        assert_eq!(a.elems, [s("a b"), s("c\"d"), s("e\\f"), s("NULL"), None]);
        let a = split(b"{{1,2},{3,4},{5,6}}", b',').unwrap();
        assert_eq!(a.dims, [3, 2]);
        assert_eq!(a.elems.len(), 6);
        let a = split(b"[0:1]={5,6}", b',').unwrap();
        assert_eq!((a.dims, a.elems), (vec![2], vec![s("5"), s("6")]));
        let a = split(b"[1:1][-2:-1]={{7,8}}", b',').unwrap();
        assert_eq!(a.dims, [1, 2]);
        assert_eq!(split(b"{}", b',').unwrap(), ArrayText { dims: vec![], elems: vec![] });
        let a = split(b"{(1,2),(3,4);(5,6),(7,8)}", b';').unwrap();
        assert_eq!(a.elems, [s("(1,2),(3,4)"), s("(5,6),(7,8)")]);
        // array_in's leniency: whitespace around elements, escapes in unquoted ones.
        let a = split(b" { a b , \\NULL ,  c\\ } ", b',').unwrap();
        assert_eq!(a.elems, [s("a b"), s("NULL"), s("c ")]);
    }

    #[test]
    fn refuses_what_is_not_an_array() {
        for t in [
            &b""[..],
            b"1,2",
            b"{1,2",
            b"{1,,2}",
            b"{\"a}",
            b"{{1,2},{3}}",
            b"{{1,2},3}",
            b"{1,{2}}",
            b"{1}x",
            b"{{{{{{{1}}}}}}}",
            b"[1:2{1,2}",
            b"{a\\",
            b"{,}",
        ] {
            assert!(split(t, b',').is_err(), "{:?}", String::from_utf8_lossy(t));
        }
        assert!(split(b"{{{{{{1}}}}}}", b',').is_ok(), "six dimensions are allowed");
    }

    #[test]
    fn literal_round_trips() {
        let texts: Vec<&[u8]> = vec![b"1", b"a \"b\"", b"c\\d", b"", b"NULL", b" x ", b"{,}"];
        let mut elems: Vec<Option<&[u8]>> = texts.iter().map(|t| Some(*t)).collect();
        elems.push(None);
        let lit = literal(&elems, &[]).unwrap();
        let back = split(&lit, b',').unwrap();
        assert_eq!(back.dims, [elems.len()]);
        assert_eq!(back.elems, elems.iter().map(|e| e.map(<[u8]>::to_vec)).collect::<Vec<_>>());
        let grid: Vec<Option<&[u8]>> = vec![Some(b"1"), Some(b"2"), None, Some(b"4"), Some(b"5"), Some(b"6")];
        let lit = literal(&grid, &[2, 3]).unwrap();
        assert_eq!(lit, br#"{{"1","2",NULL},{"4","5","6"}}"#);
        assert_eq!(split(&lit, b',').unwrap().dims, [2, 3]);
        assert_eq!(literal(&[], &[]).unwrap(), b"{}");
        assert!(literal(&grid, &[4, 2]).is_err());
        assert!(literal(&grid, &[1, 1, 1, 1, 1, 1, 6]).is_err());
    }
}
