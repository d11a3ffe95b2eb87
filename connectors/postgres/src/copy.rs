//! Rows of `COPY … TO STDOUT` in text format: tab-separated fields, `\N` for NULL,
//! backslash escapes (`\b \f \n \r \t \v \\`, octal `\ooo`, hex `\xhh`).

use std::borrow::Cow;

use crate::pgoutput::ColumnData;

/// One field of a COPY row; borrowed from the line unless it had escapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyField<'a> {
    /// `\N`.
    Null,
    /// Unescaped text bytes.
    Text(Cow<'a, [u8]>),
}

impl CopyField<'_> {
    /// As a pgoutput-style column, for the shared row conversion.
    pub fn as_column(&self) -> ColumnData<'_> {
        match self {
            Self::Null => ColumnData::Null,
            Self::Text(bytes) => ColumnData::Text(bytes),
        }
    }
}

/// A malformed COPY line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed COPY line at byte {offset}: {message}")]
pub struct CopyError {
    /// Where.
    pub offset: usize,
    /// What.
    pub message: &'static str,
}

/// Parses one line (without its newline). Fields without escapes borrow from `line`
/// (most fields: the snapshot read no longer allocates per field).
pub fn parse_line(line: &[u8]) -> Result<Vec<CopyField<'_>>, CopyError> {
    let mut fields = Vec::with_capacity(16);
    let mut rest = Some(line);
    while let Some(remaining) = rest {
        let raw = match memchr::memchr(b'\t', remaining) {
            Some(tab) => {
                rest = Some(&remaining[tab + 1..]);
                &remaining[..tab]
            }
            None => {
                rest = None;
                remaining
            }
        };
        if raw == b"\\N" {
            fields.push(CopyField::Null);
            continue;
        }
        if memchr::memchr(b'\\', raw).is_none() {
            fields.push(CopyField::Text(Cow::Borrowed(raw)));
            continue;
        }
        let mut out = Vec::with_capacity(raw.len());
        let mut i = 0;
        while i < raw.len() {
            let b = raw[i];
            if b != b'\\' {
                out.push(b);
                i += 1;
                continue;
            }
            let offset = i;
            let next = *raw.get(i + 1).ok_or(CopyError {
                offset,
                message: "backslash at end of field",
            })?;
            i += 2;
            match next {
                b'b' => out.push(8),
                b'f' => out.push(12),
                b'n' => out.push(b'\n'),
                b'r' => out.push(b'\r'),
                b't' => out.push(b'\t'),
                b'v' => out.push(11),
                b'0'..=b'7' => {
                    let mut value = u32::from(next - b'0');
                    for _ in 0..2 {
                        match raw.get(i) {
                            Some(d @ b'0'..=b'7') => {
                                value = value * 8 + u32::from(d - b'0');
                                i += 1;
                            }
                            _ => break,
                        }
                    }
                    out.push(u8::try_from(value & 0xff).unwrap_or(0));
                }
                b'x' => {
                    let mut value = 0u8;
                    let mut digits = 0;
                    while digits < 2 {
                        match raw.get(i).and_then(|d| char::from(*d).to_digit(16)) {
                            Some(d) => {
                                value = value * 16 + u8::try_from(d).unwrap_or(0);
                                i += 1;
                                digits += 1;
                            }
                            None => break,
                        }
                    }
                    if digits == 0 {
                        out.extend_from_slice(b"x");
                    } else {
                        out.push(value);
                    }
                }
                other => out.push(other),
            }
        }
        fields.push(CopyField::Text(Cow::Owned(out)));
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fields_nulls_and_escapes() {
        let fields = parse_line(b"1\t\\N\ta\\tb\\nc\\\\d\t\\101\\x42").unwrap();
        assert_eq!(
            fields,
            vec![
                CopyField::Text(Cow::Borrowed(&b"1"[..])),
                CopyField::Null,
                CopyField::Text(Cow::Owned(b"a\tb\nc\\d".to_vec())),
                CopyField::Text(Cow::Owned(b"AB".to_vec())),
            ]
        );
        assert_eq!(
            parse_line(b"").unwrap(),
            vec![CopyField::Text(Cow::Borrowed(&b""[..]))]
        );
        assert!(parse_line(b"a\\").is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_lines_never_panic(line in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_line(&line);
        }
    }
}
