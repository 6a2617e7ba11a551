//! Content lines and components (RFC 5545 §3.1), tolerant of what real
//! producers emit: LF-only line ends, folds with a tab, folds that split a
//! UTF-8 sequence (lines are unfolded as bytes before they are decoded),
//! unterminated and mismatched components. Every line keeps its physical
//! line number so that problems can say where they are.

use std::borrow::Cow;

/// A parameter of a content line, name upper-cased, values unquoted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Param {
    /// Parameter name, upper-case (`TZID`, `X-FOO`).
    pub name: String,
    /// Values, unquoted (a parameter may carry a comma-separated list).
    pub values: Vec<String>,
}

impl Param {
    /// A parameter with one value.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            values: vec![value.into()],
        }
    }

    /// The first value.
    pub fn value(&self) -> &str {
        self.values.first().map(String::as_str).unwrap_or("")
    }
}

/// A property as written: name, parameters and the raw (still escaped) value.
///
/// Equality ignores `line`: where a property was read is provenance, not content.
#[derive(Debug, Clone, Eq)]
pub struct Property {
    /// Property name, upper-case.
    pub name: String,
    /// Parameters in the order written.
    pub params: Vec<Param>,
    /// Raw value text, escapes not applied.
    pub value: String,
    /// Physical line (1-based) where the property starts; 0 when built in code.
    pub line: u32,
}

impl PartialEq for Property {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.params == other.params && self.value == other.value
    }
}

impl PartialEq for Component {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.properties == other.properties
            && self.children == other.children
    }
}

impl Property {
    /// The first value of parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|param| param.name == name)
            .map(Param::value)
    }
}

/// A component (`VEVENT`, `VALARM`, ...) with its properties and children.
///
/// Equality ignores `line`.
#[derive(Debug, Clone, Eq)]
pub struct Component {
    /// Component name, upper-case.
    pub name: String,
    /// Properties in the order written.
    pub properties: Vec<Property>,
    /// Nested components.
    pub children: Vec<Component>,
    /// Physical line of its `BEGIN`; 0 when built in code.
    pub line: u32,
}

impl Component {
    /// An empty component.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            properties: Vec::new(),
            children: Vec::new(),
            line: 0,
        }
    }

    /// The first property named `name`.
    pub fn property(&self, name: &str) -> Option<&Property> {
        self.properties.iter().find(|prop| prop.name == name)
    }
}

/// Something wrong with the structure of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LexProblem {
    pub line: u32,
    pub uid: Option<String>,
    pub message: String,
}

/// The top-level components of every `VCALENDAR` in the input, plus the
/// calendar-level properties, in order.
#[derive(Debug, Default)]
pub(crate) struct Lexed {
    pub calendar_properties: Vec<Property>,
    pub components: Vec<Component>,
    pub problems: Vec<LexProblem>,
    pub calendars: usize,
}

/// Splits input into logical (unfolded) lines with their first physical line
/// number. Folds are joined as bytes, so a fold inside a UTF-8 sequence is
/// healed before decoding.
fn logical_lines(input: &[u8]) -> Vec<(u32, Cow<'_, [u8]>)> {
    let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    // Most lines are not folded: borrow them, copy only when joining.
    let mut lines: Vec<(u32, Cow<'_, [u8]>)> = Vec::with_capacity(input.len() / 48);
    for (idx, raw) in input.split(|&b| b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        // A CR that ends no line is no character of any value (RFC 5545
        // allows no control character but HTAB): it is dropped here, as
        // the writer would drop it, so what is read writes back the same.
        let raw: Cow<'_, [u8]> = if raw.contains(&b'\r') {
            Cow::Owned(raw.iter().copied().filter(|&b| b != b'\r').collect())
        } else {
            Cow::Borrowed(raw)
        };
        let line_no = u32::try_from(idx + 1).unwrap_or(u32::MAX);
        match raw.first() {
            Some(b' ' | b'\t') => match lines.last_mut() {
                Some((_, last)) => last.to_mut().extend_from_slice(&raw[1..]),
                None => {
                    let start = raw.len() - raw.trim_ascii_start().len();
                    lines.push((line_no, slice_from(raw, start)));
                }
            },
            None => {}
            Some(_) => lines.push((line_no, raw)),
        }
    }
    lines
}

/// `cow[start..]`, borrowed when `cow` is.
fn slice_from(cow: Cow<'_, [u8]>, start: usize) -> Cow<'_, [u8]> {
    match cow {
        Cow::Borrowed(bytes) => Cow::Borrowed(&bytes[start..]),
        Cow::Owned(mut bytes) => {
            bytes.drain(..start);
            Cow::Owned(bytes)
        }
    }
}

/// Parses one logical line into a property. `None` when it has no `:`.
fn parse_content_line(line_no: u32, text: &str) -> Option<Property> {
    let bytes = text.as_bytes();
    let mut idx = 0;
    while idx < bytes.len() && bytes[idx] != b';' && bytes[idx] != b':' {
        idx += 1;
    }
    if idx == bytes.len() {
        return None;
    }
    let name = text[..idx].trim().to_ascii_uppercase();
    if name.is_empty() {
        return None;
    }
    let mut params = Vec::new();
    while idx < bytes.len() && bytes[idx] == b';' {
        idx += 1;
        let name_start = idx;
        while idx < bytes.len() && !matches!(bytes[idx], b'=' | b';' | b':') {
            idx += 1;
        }
        let param_name = text[name_start..idx].trim().to_ascii_uppercase();
        let mut values = Vec::new();
        if idx < bytes.len() && bytes[idx] == b'=' {
            idx += 1;
            loop {
                let value;
                if idx < bytes.len() && bytes[idx] == b'"' {
                    let start = idx + 1;
                    idx = start;
                    while idx < bytes.len() && bytes[idx] != b'"' {
                        idx += 1;
                    }
                    value = text[start..idx.min(bytes.len())].to_string();
                    if idx < bytes.len() {
                        idx += 1;
                    }
                    // Tolerate junk between a closing quote and the delimiter.
                    while idx < bytes.len() && !matches!(bytes[idx], b',' | b';' | b':') {
                        idx += 1;
                    }
                } else {
                    let start = idx;
                    while idx < bytes.len() && !matches!(bytes[idx], b',' | b';' | b':') {
                        idx += 1;
                    }
                    // A DQUOTE inside an unquoted value is not allowed;
                    // it reads as `'`, as the writer puts it.
                    value = text[start..idx].replace('"', "'");
                }
                values.push(value);
                if idx < bytes.len() && bytes[idx] == b',' {
                    idx += 1;
                    continue;
                }
                break;
            }
        }
        if values.is_empty() {
            // `;NAME:` (no `=`) reads as `;NAME=:`, one empty value, which
            // is how the writer puts it back.
            values.push(String::new());
        }
        if !param_name.is_empty() {
            params.push(Param {
                name: param_name,
                values,
            });
        }
    }
    if idx >= bytes.len() || bytes[idx] != b':' {
        return None;
    }
    Some(Property {
        name,
        params,
        value: text[idx + 1..].to_string(),
        line: line_no,
    })
}

fn uid_of(component: &Component) -> Option<String> {
    component.property("UID").map(|prop| prop.value.clone())
}

/// Lexes a whole file. Never fails: what cannot be read is reported and
/// skipped.
pub(crate) fn lex(input: &[u8]) -> Lexed {
    let mut out = Lexed::default();
    // Open components; the bottom one, if any, is a VCALENDAR.
    let mut stack: Vec<Component> = Vec::new();
    for (line_no, raw) in logical_lines(input) {
        let text = String::from_utf8_lossy(&raw);
        let Some(prop) = parse_content_line(line_no, &text) else {
            if !stack.is_empty() {
                out.problems.push(LexProblem {
                    line: line_no,
                    uid: stack.last().and_then(uid_of),
                    message: format!("invalid content line {:?} skipped", truncate(&text)),
                });
            }
            continue;
        };
        match prop.name.as_str() {
            "BEGIN" => {
                let name = prop.value.trim().to_ascii_uppercase();
                if name == "VCALENDAR" && !stack.is_empty() {
                    unterminated(&mut out, &mut stack, 0);
                }
                // A component cannot contain one of its own kind: a second
                // BEGIN:VEVENT means the first one was never closed.
                if let Some(pos) = stack.iter().position(|open| open.name == name) {
                    unterminated(&mut out, &mut stack, pos);
                }
                stack.push(Component {
                    name,
                    properties: Vec::new(),
                    children: Vec::new(),
                    line: line_no,
                });
            }
            "END" => {
                let name = prop.value.trim().to_ascii_uppercase();
                match stack.iter().rposition(|open| open.name == name) {
                    None => out.problems.push(LexProblem {
                        line: line_no,
                        uid: None,
                        message: format!("END:{name} without BEGIN:{name} ignored"),
                    }),
                    Some(pos) => {
                        if pos + 1 < stack.len() {
                            unterminated(&mut out, &mut stack, pos + 1);
                        }
                        if let Some(done) = stack.pop() {
                            close(&mut out, &mut stack, done);
                        }
                    }
                }
            }
            _ => match stack.last_mut() {
                Some(open) if open.name == "VCALENDAR" => {
                    out.calendar_properties.push(prop);
                }
                Some(open) => open.properties.push(prop),
                None => out.problems.push(LexProblem {
                    line: line_no,
                    uid: None,
                    message: format!("property {} outside any component ignored", prop.name),
                }),
            },
        }
    }
    if let Some(first_open) = stack.iter().position(|open| open.name != "VCALENDAR") {
        unterminated(&mut out, &mut stack, first_open);
    }
    // A missing END:VCALENDAR at the end of a file loses nothing.
    while let Some(calendar) = stack.pop() {
        close(&mut out, &mut stack, calendar);
    }
    out
}

/// Reports and drops the components from `stack[from..]`, which were never
/// closed.
fn unterminated(out: &mut Lexed, stack: &mut Vec<Component>, from: usize) {
    let dropped: Vec<Component> = stack.drain(from..).collect();
    if let Some(outer) = dropped.first() {
        if outer.name == "VCALENDAR" {
            // Keep what the calendar held; only its END was missing.
            let mut dropped = dropped.into_iter();
            if let Some(calendar) = dropped.next() {
                let rest: Vec<Component> = dropped.collect();
                stack.push(calendar);
                if !rest.is_empty() {
                    let keep = stack.len();
                    stack.extend(rest);
                    unterminated(out, stack, keep);
                }
                if let Some(calendar) = stack.pop() {
                    close(out, stack, calendar);
                }
            }
            return;
        }
        out.problems.push(LexProblem {
            line: outer.line,
            uid: uid_of(outer),
            message: format!(
                "{} is not terminated (no END:{}); skipped",
                outer.name, outer.name
            ),
        });
    }
}

fn close(out: &mut Lexed, stack: &mut [Component], done: Component) {
    if done.name == "VCALENDAR" {
        out.calendars += 1;
        out.components.extend(done.children);
        return;
    }
    match stack.last_mut() {
        Some(parent) if parent.name != "VCALENDAR" => parent.children.push(done),
        _ => out.components.push(done),
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(60).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfolds_bytes_before_decoding() {
        // "é" is C3 A9; the fold splits it.
        let input = b"BEGIN:VCALENDAR\nBEGIN:VEVENT\nSUMMARY:caf\xC3\r\n \xA9 au lait\n\tnoir\nEND:VEVENT\nEND:VCALENDAR\n";
        let lexed = lex(input);
        assert_eq!(lexed.problems, vec![]);
        let summary = lexed.components[0].property("SUMMARY").unwrap();
        assert_eq!(summary.value, "café au laitnoir");
        assert_eq!(summary.line, 3);
    }

    #[test]
    fn quoted_params_keep_delimiters() {
        let prop = parse_content_line(
            7,
            "DTSTART;TZID=\"W. Europe Standard Time\";X-A=\"a:b;c\",d:20250101T100000",
        )
        .unwrap();
        assert_eq!(prop.param("TZID"), Some("W. Europe Standard Time"));
        assert_eq!(prop.params[1].values, vec!["a:b;c", "d"]);
        assert_eq!(prop.value, "20250101T100000");
    }

    #[test]
    fn unterminated_component_is_reported_and_skipped() {
        let input = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:a\nBEGIN:VEVENT\nUID:b\nEND:VEVENT\nEND:VCALENDAR\n";
        let lexed = lex(input.as_bytes());
        assert_eq!(lexed.components.len(), 1);
        assert_eq!(lexed.components[0].property("UID").unwrap().value, "b");
        assert_eq!(lexed.problems.len(), 1);
        assert_eq!(lexed.problems[0].line, 2);
        assert_eq!(lexed.problems[0].uid.as_deref(), Some("a"));
    }

    #[test]
    fn missing_end_vcalendar_keeps_events() {
        let lexed = lex(b"BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:a\nEND:VEVENT\n");
        assert_eq!(lexed.components.len(), 1);
        assert_eq!(lexed.calendars, 1);
    }
}
