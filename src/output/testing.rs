//! Test helpers: a fixed recording, a strict JSON parser and a protobuf wire decoder, so the
//! writers' output is checked by reading it back, not by looking for substrings.

use crate::record::{
    Event, EventKind, FunctionInfo, ProcessInfo, Recorded, Recording, ThreadBuffer,
};

/// Two threads; nested calls, equal timestamps, a zero-length call, an exception raised in
/// one frame and caught in its caller, a generator suspended and resumed, a stray return,
/// a call still open at the end, and names and details that need escaping.
pub fn small_recording() -> Recording {
    use EventKind::*;
    let mut recording = Recording::new(ProcessInfo {
        pid: 4242,
        name: "python demo.py".into(),
        start_timestamp_ns: 1_000_000,
    });
    let functions = &mut recording.functions;
    let main = functions.intern(FunctionInfo::new("main", "main", "/app/demo.py", 10));
    let total = functions.intern(FunctionInfo::new("total", "Cart.total", "/app/demo.py", 20));
    let parse = functions.intern(FunctionInfo::new("parse", "parse", "/app/demo.py", 30));
    let restock = functions.intern(FunctionInfo::new("restock", "restock", "/app/demo.py", 40));
    let lambda = functions.intern(FunctionInfo::new(
        "<lambda>",
        "<lambda>",
        "/app/demo.py",
        60,
    ));
    let work = functions.intern(FunctionInfo::new(
        "work",
        "Worker.<locals>.work",
        "/app/tools/ünï \"quoted\"\\.py",
        50,
    ));
    let e = |kind, f, line, ts| Recorded::from(Event::new(kind, f, line, ts));
    let error = "ValueError: bad count\n\t\"x\"";

    let mut main_thread = ThreadBuffer::new(1001, "MainThread");
    for event in [
        e(Call, main, 10, 1_000_000),
        e(Line, main, 11, 1_000_100),
        e(Call, total, 20, 1_000_500),
        e(Return, total, 22, 1_002_000).with_detail("6"),
        e(Call, parse, 30, 1_002_000),
        e(Exception, parse, 31, 1_002_750).with_detail(error),
        e(Unwind, parse, 31, 1_003_000).with_detail(error),
        e(Exception, main, 12, 1_003_000).with_detail(error),
        e(Call, restock, 40, 1_004_000),
        e(Return, restock, 41, 1_004_250).with_detail("('apples', 6)"),
        e(Call, restock, 41, 1_005_000),
        e(Return, restock, 42, 1_005_001).with_detail("None"),
        e(Call, lambda, 60, 1_006_000),
        e(Return, lambda, 60, 1_006_000).with_detail("'\u{1}\u{2028}€𝄞'"),
        e(Return, main, 14, 1_010_000).with_detail("{'apples': 6}"),
    ] {
        main_thread.push(event);
    }
    recording.add_thread(main_thread);

    let mut worker = ThreadBuffer::new(1002, "worker-1 ✓");
    for event in [
        e(Return, work, 52, 1_001_000).with_detail("stray"),
        e(Call, work, 50, 1_001_500),
        e(Call, total, 20, 1_002_500),
        e(Return, total, 22, 1_003_500).with_detail("12"),
        e(Line, work, 55, 1_004_000),
    ] {
        worker.push(event);
    }
    recording.add_thread(worker);
    recording.set_end_timestamp_ns(1_012_000);
    recording
}

/// Compares `actual` with the golden file `tests/golden/NAME`, byte for byte. With
/// `FERROTRACE_BLESS=1` in the environment it writes the file instead.
pub fn check_golden(name: &str, actual: &[u8]) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("FERROTRACE_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with FERROTRACE_BLESS=1 to create it",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{} differs from the output (run with FERROTRACE_BLESS=1 to update it)",
        path.display()
    );
}

// ---------------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn num(&self) -> Option<f64> {
        match self {
            Json::Number(n) => Some(*n),
            _ => None,
        }
    }

    pub fn array(&self) -> Option<&[Json]> {
        match self {
            Json::Array(items) => Some(items),
            _ => None,
        }
    }
}

/// Parses one JSON document (RFC 8259, strictly: no trailing commas, no leading zeros,
/// no raw control characters in strings, surrogate pairs checked).
pub fn parse_json(text: &str) -> Result<Json, String> {
    let mut parser = JsonParser {
        bytes: text.as_bytes(),
        pos: 0,
    };
    let value = parser.value()?;
    parser.skip_ws();
    if parser.pos != parser.bytes.len() {
        return Err(format!("trailing data at {}", parser.pos));
    }
    Ok(value)
}

struct JsonParser<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl JsonParser<'_> {
    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at byte {}", self.pos))
    }

    fn skip_ws(&mut self) {
        while matches!(self.bytes.get(self.pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, literal: &str) -> bool {
        if self.bytes[self.pos..].starts_with(literal.as_bytes()) {
            self.pos += literal.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        self.skip_ws();
        match self.bytes.get(self.pos) {
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => self.string().map(Json::String),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ if self.eat("true") => Ok(Json::Bool(true)),
            _ if self.eat("false") => Ok(Json::Bool(false)),
            _ if self.eat("null") => Ok(Json::Null),
            _ => self.err("expected a value"),
        }
    }

    fn object(&mut self) -> Result<Json, String> {
        self.pos += 1;
        let mut members = Vec::new();
        self.skip_ws();
        if self.eat("}") {
            return Ok(Json::Object(members));
        }
        loop {
            self.skip_ws();
            if self.bytes.get(self.pos) != Some(&b'"') {
                return self.err("expected a key");
            }
            let key = self.string()?;
            self.skip_ws();
            if !self.eat(":") {
                return self.err("expected ':'");
            }
            members.push((key, self.value()?));
            self.skip_ws();
            if self.eat("}") {
                return Ok(Json::Object(members));
            }
            if !self.eat(",") {
                return self.err("expected ',' or '}'");
            }
        }
    }

    fn array(&mut self) -> Result<Json, String> {
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.eat("]") {
            return Ok(Json::Array(items));
        }
        loop {
            items.push(self.value()?);
            self.skip_ws();
            if self.eat("]") {
                return Ok(Json::Array(items));
            }
            if !self.eat(",") {
                return self.err("expected ',' or ']'");
            }
        }
    }

    fn number(&mut self) -> Result<Json, String> {
        let start = self.pos;
        self.eat("-");
        let digits = |p: &mut Self| {
            let from = p.pos;
            while matches!(p.bytes.get(p.pos), Some(b'0'..=b'9')) {
                p.pos += 1;
            }
            p.pos - from
        };
        let int_start = self.pos;
        let n = digits(self);
        if n == 0 || (n > 1 && self.bytes[int_start] == b'0') {
            return self.err("bad integer part");
        }
        if self.eat(".") && digits(self) == 0 {
            return self.err("bad fraction");
        }
        if matches!(self.bytes.get(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            if !self.eat("+") {
                self.eat("-");
            }
            if digits(self) == 0 {
                return self.err("bad exponent");
            }
        }
        let text = std::str::from_utf8(&self.bytes[start..self.pos]).unwrap();
        text.parse().map(Json::Number).map_err(|e| e.to_string())
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let Some(hex) = self.bytes.get(self.pos..self.pos + 4) else {
            return self.err("short \\u escape");
        };
        let hex = std::str::from_utf8(hex).map_err(|e| e.to_string())?;
        let value = u32::from_str_radix(hex, 16).map_err(|e| format!("{e} in \\u{hex}"))?;
        self.pos += 4;
        Ok(value)
    }

    fn string(&mut self) -> Result<String, String> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(&b) = self.bytes.get(self.pos) else {
                return self.err("unterminated string");
            };
            match b {
                b'"' => {
                    self.pos += 1;
                    return Ok(out);
                }
                0x00..=0x1f => return self.err("raw control character in a string"),
                b'\\' => {
                    self.pos += 1;
                    let Some(&escape) = self.bytes.get(self.pos) else {
                        return self.err("unterminated escape");
                    };
                    self.pos += 1;
                    let c = match escape {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let high = self.hex4()?;
                            let code = if (0xd800..0xdc00).contains(&high) {
                                if !self.eat("\\u") {
                                    return self.err("lone high surrogate");
                                }
                                let low = self.hex4()?;
                                if !(0xdc00..0xe000).contains(&low) {
                                    return self.err("bad low surrogate");
                                }
                                0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00)
                            } else {
                                high
                            };
                            match char::from_u32(code) {
                                Some(c) => c,
                                None => return self.err("lone surrogate"),
                            }
                        }
                        _ => return self.err("bad escape"),
                    };
                    out.push(c);
                }
                _ => {
                    let rest = std::str::from_utf8(&self.bytes[self.pos..]).unwrap();
                    let c = rest.chars().next().unwrap();
                    out.push(c);
                    self.pos += c.len_utf8();
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Protobuf
// ---------------------------------------------------------------------------------------

/// A field's value, by wire type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Varint(u64),
    Fixed64(u64),
    Bytes(Vec<u8>),
    Fixed32(u32),
}

/// Decodes one message's fields as `(field number, value)`, in order. Strict: a truncated
/// field, an over-long varint, field number 0 or a group wire type is an error.
pub fn decode(mut bytes: &[u8]) -> Result<Vec<(u32, Value)>, String> {
    fn varint(bytes: &mut &[u8]) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let (&b, rest) = bytes.split_first().ok_or("truncated varint")?;
            *bytes = rest;
            if shift == 63 && b > 1 {
                return Err("varint overflows 64 bits".into());
            }
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint longer than 10 bytes".into())
    }
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
        if bytes.len() < n {
            return Err(format!("truncated: need {n} bytes, have {}", bytes.len()));
        }
        let (head, rest) = bytes.split_at(n);
        *bytes = rest;
        Ok(head)
    }
    let mut fields = Vec::new();
    while !bytes.is_empty() {
        let key = varint(&mut bytes)?;
        let number = u32::try_from(key >> 3).map_err(|_| "field number too large")?;
        if number == 0 {
            return Err("field number 0".into());
        }
        let value = match key & 7 {
            0 => Value::Varint(varint(&mut bytes)?),
            1 => Value::Fixed64(u64::from_le_bytes(take(&mut bytes, 8)?.try_into().unwrap())),
            2 => {
                let len = usize::try_from(varint(&mut bytes)?).map_err(|e| e.to_string())?;
                Value::Bytes(take(&mut bytes, len)?.to_vec())
            }
            5 => Value::Fixed32(u32::from_le_bytes(take(&mut bytes, 4)?.try_into().unwrap())),
            other => return Err(format!("unsupported wire type {other}")),
        };
        fields.push((number, value));
    }
    Ok(fields)
}

/// A decoded message with lookups by field number.
#[derive(Clone, Debug)]
pub struct Message(pub Vec<(u32, Value)>);

impl Message {
    pub fn parse(bytes: &[u8]) -> Message {
        Message(decode(bytes).unwrap_or_else(|e| panic!("bad message: {e}")))
    }

    pub fn all(&self, field: u32) -> impl Iterator<Item = &Value> {
        self.0
            .iter()
            .filter(move |(n, _)| *n == field)
            .map(|(_, v)| v)
    }

    pub fn has(&self, field: u32) -> bool {
        self.all(field).next().is_some()
    }

    pub fn uint(&self, field: u32) -> Option<u64> {
        match self.all(field).last()? {
            Value::Varint(v) => Some(*v),
            other => panic!("field {field} is not a varint: {other:?}"),
        }
    }

    pub fn string(&self, field: u32) -> Option<String> {
        match self.all(field).last()? {
            Value::Bytes(b) => Some(String::from_utf8(b.clone()).expect("a string field")),
            other => panic!("field {field} is not length-delimited: {other:?}"),
        }
    }

    pub fn message(&self, field: u32) -> Option<Message> {
        self.messages(field).pop()
    }

    pub fn messages(&self, field: u32) -> Vec<Message> {
        self.all(field)
            .map(|v| match v {
                Value::Bytes(b) => Message::parse(b),
                other => panic!("field {field} is not a message: {other:?}"),
            })
            .collect()
    }
}

#[test]
fn the_json_parser_is_strict() {
    let ok = parse_json(r#" {"a": [1, -2.5e3, true, null, "x\u00e9\ud834\udd1e\n"], "b": {}} "#)
        .unwrap();
    assert_eq!(
        ok.get("a").unwrap().array().unwrap()[4].str(),
        Some("xé𝄞\n")
    );
    assert_eq!(
        ok.get("a").unwrap().array().unwrap()[1].num(),
        Some(-2500.0)
    );
    for bad in [
        "[1,]",
        "{\"a\":1,}",
        "01",
        "1.",
        "\"\u{1}\"",
        "\"\\ud834\"",
        "\"\\x\"",
        "[1] 2",
        "{a:1}",
        "",
    ] {
        assert!(parse_json(bad).is_err(), "accepted {bad:?}");
    }
}

#[test]
fn the_protobuf_decoder_rejects_truncation() {
    assert_eq!(
        decode(&[0x08, 0x96, 0x01]).unwrap(),
        [(1, Value::Varint(150))]
    );
    assert!(decode(&[0x08]).is_err());
    assert!(decode(&[0x08, 0x80]).is_err());
    assert!(decode(&[0x12, 0x05, b'a']).is_err());
    assert!(decode(&[0x00, 0x00]).is_err());
    assert!(decode(&[0x0b]).is_err());
}
