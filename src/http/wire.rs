//! HTTP/1.1 on the wire, without I/O: finding the end of a request head under size limits,
//! turning the head into a [`RequestHead`] (RFC 9112 framing rules: one unambiguous body
//! length or refuse), decoding a chunked body, and writing a response head. Pure functions,
//! so unit tests and fuzzers can drive them directly; `adapter.rs` does the I/O.
//!
//! Request-line and header syntax is checked by `httparse` (the parser hyper uses); the
//! framing decisions it leaves to the caller (Content-Length, Transfer-Encoding, Host,
//! Expect, Connection) are made here.

use std::mem::MaybeUninit;

use super::Headers;

/// Size limits on a request head.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    pub max_request_line_bytes: usize,
    pub max_header_bytes: usize,
    pub max_headers: usize,
}

/// A request the server refuses before it reaches a handler; each maps to one status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("{0}")]
    BadRequest(String),
    #[error("the request line is longer than {0} bytes")]
    UriTooLong(usize),
    #[error("{0}")]
    HeadersTooLarge(String),
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(u64),
    #[error(
        "transfer coding {0:?} is not supported; send the body with Content-Length or chunked"
    )]
    UnsupportedCoding(String),
    #[error("only Expect: 100-continue is supported")]
    ExpectationFailed,
    #[error("only HTTP/1.0 and HTTP/1.1 are supported")]
    VersionNotSupported,
    #[error("the request did not arrive within {0} seconds")]
    Timeout(u64),
}

impl WireError {
    pub fn status(&self) -> u16 {
        match self {
            WireError::BadRequest(_) => 400,
            WireError::UriTooLong(_) => 414,
            WireError::HeadersTooLarge(_) => 431,
            WireError::PayloadTooLarge(_) => 413,
            WireError::UnsupportedCoding(_) => 501,
            WireError::ExpectationFailed => 417,
            WireError::VersionNotSupported => 505,
            WireError::Timeout(_) => 408,
        }
    }
}

fn bad(message: impl Into<String>) -> WireError {
    WireError::BadRequest(message.into())
}

/// Finds the end of a request head as bytes arrive, enforcing the limits on what has arrived
/// so far: a 1 MB header line is refused after `max_header_bytes`, not after 1 MB.
#[derive(Debug, Default)]
pub struct HeadScanner {
    scanned: usize,
    line_start: usize,
    /// Lines seen so far, the request line included.
    lines: usize,
    header_bytes: usize,
    empty_lines_before: usize,
}

impl HeadScanner {
    pub fn new() -> Self {
        Self::default()
    }

    /// `buf` holds the head from its first byte (and maybe more); the same `buf`, grown, is
    /// passed on every call. Returns the head's length (through the blank line) once complete.
    pub fn scan(&mut self, buf: &[u8], limits: &HeadLimits) -> Result<Option<usize>, WireError> {
        while let Some(offset) = buf[self.scanned..].iter().position(|&b| b == b'\n') {
            let i = self.scanned + offset;
            self.scanned = i + 1;
            // The size limits first, exactly as for a line still arriving (below): the
            // answer must not depend on how the bytes were split into reads (found by the
            // http_wire fuzz target: 400 at once, 414 in pieces).
            let raw_len = i - self.line_start;
            if self.lines == 0 && raw_len > limits.max_request_line_bytes + 1 {
                return Err(WireError::UriTooLong(limits.max_request_line_bytes));
            }
            if self.lines > 0 {
                self.check_headers(limits, raw_len)?;
            }
            // Bare LF is refused (RFC 9112 §2.2 allows either): the fork's CVE-2026-66753 was a
            // disagreement about line ends, and no IdP sends them.
            if i == 0 || buf[i - 1] != b'\r' || i - 1 < self.line_start {
                return Err(bad("line ending without CR"));
            }
            let len = i - 1 - self.line_start;
            self.line_start = i + 1;
            if self.lines == 0 {
                if len == 0 {
                    // RFC 9112 §2.2: ignore an empty line or two before the request line.
                    self.empty_lines_before += 1;
                    if self.empty_lines_before > 2 {
                        return Err(bad("empty lines instead of a request line"));
                    }
                    continue;
                }
                if len > limits.max_request_line_bytes {
                    return Err(WireError::UriTooLong(limits.max_request_line_bytes));
                }
                self.lines = 1;
                continue;
            }
            if len == 0 {
                return Ok(Some(i + 1));
            }
            self.lines += 1;
            self.header_bytes += len + 2;
            self.check_headers(limits, 0)?;
        }
        self.scanned = buf.len();
        let partial = buf.len() - self.line_start;
        if self.lines == 0 {
            if partial > limits.max_request_line_bytes + 1 {
                return Err(WireError::UriTooLong(limits.max_request_line_bytes));
            }
        } else {
            self.check_headers(limits, partial)?;
        }
        Ok(None)
    }

    fn check_headers(&self, limits: &HeadLimits, partial: usize) -> Result<(), WireError> {
        if self.lines - 1 > limits.max_headers {
            return Err(WireError::HeadersTooLarge(format!(
                "more than {} header lines",
                limits.max_headers
            )));
        }
        if self.header_bytes + partial > limits.max_header_bytes + 2 {
            return Err(WireError::HeadersTooLarge(format!(
                "the header section is larger than {} bytes",
                limits.max_header_bytes
            )));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    None,
    Length(u64),
    Chunked,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    /// Still percent-encoded, without the query.
    pub path: String,
    pub query: String,
    pub http10: bool,
    pub headers: Headers,
    pub body: BodyFraming,
    /// The client allows another request on this connection.
    pub keep_alive: bool,
    pub expect_continue: bool,
    /// `X-Forwarded-For` and `Forwarded` (RFC 7239) as sent, repeated lines joined with ", ";
    /// read only when the peer is a trusted proxy (`forwarded::client_address`). Bytes, not
    /// text: a value that is not UTF-8 must not refuse a request that does not use it.
    pub x_forwarded_for: Option<Vec<u8>>,
    pub forwarded: Option<Vec<u8>>,
}

fn header_str<'a>(name: &str, value: &'a [u8]) -> Result<&'a str, WireError> {
    std::str::from_utf8(value).map_err(|_| bad(format!("header {name} is not valid UTF-8")))
}

/// Splits a list-valued header into its trimmed, non-empty elements.
fn list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// Header slots `parse_head` keeps on the stack (32 bytes each); a larger `max_headers`
/// takes them from the heap.
const STACK_HEADER_SLOTS: usize = 128;

/// Interprets a complete request head (as found by [`HeadScanner`]). Refuses a body longer
/// than `max_body` when its length is declared, so nothing of it is read.
pub fn parse_head(
    head: &[u8],
    max_headers: usize,
    max_body: u64,
) -> Result<RequestHead, WireError> {
    // The default limit's slots live on the stack, and uninitialised: a 3 KiB heap block,
    // zeroed, per request was the costliest allocation of a request head (glibc serves it
    // outside its per-thread cache). httparse fills the slots it uses.
    let mut on_stack = [const { MaybeUninit::<httparse::Header>::uninit() }; STACK_HEADER_SLOTS];
    let mut on_heap = Vec::new();
    let slots: &mut [MaybeUninit<httparse::Header>] = if max_headers <= STACK_HEADER_SLOTS {
        &mut on_stack[..max_headers]
    } else {
        on_heap.resize_with(max_headers, MaybeUninit::uninit);
        &mut on_heap
    };
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(head, slots) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(bad("incomplete request head")),
        Err(httparse::Error::Version) => return Err(WireError::VersionNotSupported),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(WireError::HeadersTooLarge(format!(
                "more than {max_headers} header lines"
            )))
        }
        Err(e) => return Err(bad(format!("malformed request head: {e}"))),
    }
    let method = req.method.unwrap_or_default().to_string();
    let target = req.path.unwrap_or_default();
    let http10 = req.version == Some(0);

    let mut headers = Headers::default();
    let mut content_length: Option<u64> = None;
    let mut codings: Vec<String> = Vec::new();
    let mut transfer_encoding = false;
    let mut hosts = 0;
    let mut connection_close = false;
    let mut connection_keep_alive = false;
    let mut expect_continue = false;
    let mut x_forwarded_for = None;
    let mut forwarded = None;
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let text = header_str(name, h.value)?;
            let mut any = false;
            for item in text.split(',').map(str::trim) {
                if item.is_empty() || !item.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad(format!("Content-Length {text:?} is not a number")));
                }
                let n: u64 = item
                    .parse()
                    .map_err(|_| bad(format!("Content-Length {text:?} is out of range")))?;
                if content_length.is_some_and(|m| m != n) {
                    return Err(bad("conflicting Content-Length values"));
                }
                content_length = Some(n);
                any = true;
            }
            if !any {
                return Err(bad("empty Content-Length"));
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            let text = header_str(name, h.value)?;
            for coding in list(text) {
                // Parameters (`;q=…`) do not change which coding it is.
                let token = coding.split(';').next().unwrap_or("").trim();
                codings.push(token.to_ascii_lowercase());
            }
        } else if name.eq_ignore_ascii_case("host") {
            hosts += 1;
            headers.host = Some(header_str(name, h.value)?.to_string());
        } else if name.eq_ignore_ascii_case("connection") {
            for option in list(header_str(name, h.value)?) {
                if option.eq_ignore_ascii_case("close") {
                    connection_close = true;
                } else if option.eq_ignore_ascii_case("keep-alive") {
                    connection_keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("expect") {
            let value = header_str(name, h.value)?.trim();
            if value.eq_ignore_ascii_case("100-continue") {
                expect_continue = true;
            } else {
                return Err(WireError::ExpectationFailed);
            }
        } else if name.eq_ignore_ascii_case("authorization") {
            single(&mut headers.authorization, name, h.value)?;
        } else if name.eq_ignore_ascii_case("content-type") {
            single(&mut headers.content_type, name, h.value)?;
        } else if name.eq_ignore_ascii_case("if-match") {
            combine(&mut headers.if_match, name, h.value)?;
        } else if name.eq_ignore_ascii_case("if-none-match") {
            combine(&mut headers.if_none_match, name, h.value)?;
        } else if name.eq_ignore_ascii_case("user-agent") {
            combine_lossy(&mut headers.user_agent, ", ", h.value);
        } else if name.eq_ignore_ascii_case("cookie") {
            // RFC 6265 §5.4 says one line; a proxy that split it joins back with "; ".
            combine_lossy(&mut headers.cookie, "; ", h.value);
        } else if name.eq_ignore_ascii_case("origin") {
            // Two origins are no origin the console accepts (it compares the whole value).
            combine_lossy(&mut headers.origin, ", ", h.value);
        } else if name.eq_ignore_ascii_case("x-forwarded-for") {
            combine_bytes(&mut x_forwarded_for, h.value);
        } else if name.eq_ignore_ascii_case("forwarded") {
            combine_bytes(&mut forwarded, h.value);
        }
    }
    // RFC 9112 §3.2: exactly one Host in HTTP/1.1.
    if hosts > 1 {
        return Err(bad("more than one Host header"));
    }
    if hosts == 0 && !http10 {
        return Err(bad("an HTTP/1.1 request needs a Host header"));
    }
    // RFC 9112 §6.1 and §6.3: the body length must be unambiguous.
    let body = if transfer_encoding {
        if content_length.is_some() {
            return Err(bad("Content-Length and Transfer-Encoding together"));
        }
        if http10 {
            return Err(bad("Transfer-Encoding in an HTTP/1.0 request"));
        }
        if codings.last().map(String::as_str) != Some("chunked") {
            return Err(bad("the last transfer coding must be chunked"));
        }
        if codings.iter().filter(|c| *c == "chunked").count() > 1 {
            return Err(bad("chunked applied more than once"));
        }
        if let Some(other) = codings.iter().find(|c| *c != "chunked") {
            return Err(WireError::UnsupportedCoding(other.clone()));
        }
        BodyFraming::Chunked
    } else {
        match content_length {
            Some(n) if n > max_body => return Err(WireError::PayloadTooLarge(max_body)),
            Some(0) | None => BodyFraming::None,
            Some(n) => BodyFraming::Length(n),
        }
    };

    let (path, query) = split_target(target)?;
    let keep_alive = if http10 {
        connection_keep_alive && !connection_close
    } else {
        !connection_close
    };
    Ok(RequestHead {
        method,
        path,
        query,
        http10,
        headers,
        body,
        keep_alive,
        // An HTTP/1.0 client cannot take an interim response (RFC 9110 §10.1.1).
        expect_continue: expect_continue && !http10,
        x_forwarded_for,
        forwarded,
    })
}

fn single(slot: &mut Option<String>, name: &str, value: &[u8]) -> Result<(), WireError> {
    if slot.is_some() {
        return Err(bad(format!("more than one {name} header")));
    }
    *slot = Some(header_str(name, value)?.to_string());
    Ok(())
}

fn combine(slot: &mut Option<String>, name: &str, value: &[u8]) -> Result<(), WireError> {
    let value = header_str(name, value)?;
    match slot {
        Some(existing) => {
            existing.push_str(", ");
            existing.push_str(value);
        }
        None => *slot = Some(value.to_string()),
    }
    Ok(())
}

/// Joins repeated lines of a header only the console reads, with bytes that are not UTF-8
/// as U+FFFD: such a header never refuses a SCIM request, which does not use it.
fn combine_lossy(slot: &mut Option<String>, separator: &str, value: &[u8]) {
    let value = String::from_utf8_lossy(value);
    match slot {
        Some(existing) => {
            existing.push_str(separator);
            existing.push_str(&value);
        }
        None => *slot = Some(value.into_owned()),
    }
}

/// Joins repeated lines of a list header, in order (RFC 9110 §5.3).
fn combine_bytes(slot: &mut Option<Vec<u8>>, value: &[u8]) {
    match slot {
        Some(existing) => {
            existing.extend_from_slice(b", ");
            existing.extend_from_slice(value);
        }
        None => *slot = Some(value.to_vec()),
    }
}

/// Origin form (`/path?query`), absolute form (`https://host/path?query`, RFC 9112 §3.2.2
/// says a server must accept it) or `*`.
fn split_target(target: &str) -> Result<(String, String), WireError> {
    let origin = if target.starts_with('/') || target == "*" {
        target
    } else if let Some(rest) = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => &rest[i..],
            Some(i) => return Ok(("/".into(), rest[i + 1..].to_string())),
            None => "/",
        }
    } else {
        return Err(bad("the request target must be a path"));
    };
    Ok(match origin.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (origin.to_string(), String::new()),
    })
}

/// Longest chunk-size line (size, extensions) accepted.
const MAX_CHUNK_LINE: usize = 4096;
/// Most trailer bytes accepted after the last chunk (they are read and dropped).
const MAX_TRAILER_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    SizeLine,
    Data(u64),
    DataEnd,
    Trailers,
    Done,
}

/// Decodes a chunked body (RFC 9112 §7.1) as bytes arrive, refusing it once it exceeds the
/// body limit.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: ChunkState,
    line: Vec<u8>,
    trailer_bytes: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder {
            state: ChunkState::SizeLine,
            line: Vec::new(),
            trailer_bytes: 0,
        }
    }
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Consumes what it can of `input`, appending body bytes to `out`; returns how many bytes
    /// of `input` were used (all of them unless the body ended inside `input`).
    pub fn feed(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        max_body: u64,
    ) -> Result<usize, WireError> {
        let mut used = 0;
        while used < input.len() {
            match self.state {
                ChunkState::Done => break,
                ChunkState::Data(left) => {
                    let take =
                        (input.len() - used).min(usize::try_from(left).unwrap_or(usize::MAX));
                    out.extend_from_slice(&input[used..used + take]);
                    used += take;
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left)
                    };
                }
                ChunkState::SizeLine | ChunkState::DataEnd | ChunkState::Trailers => {
                    let rest = &input[used..];
                    let (piece, complete) = match rest.iter().position(|&b| b == b'\n') {
                        Some(i) => (&rest[..=i], true),
                        None => (rest, false),
                    };
                    used += piece.len();
                    self.line.extend_from_slice(piece);
                    let limit = match self.state {
                        ChunkState::DataEnd => 2,
                        ChunkState::Trailers => {
                            MAX_TRAILER_BYTES - self.trailer_bytes.min(MAX_TRAILER_BYTES)
                        }
                        _ => MAX_CHUNK_LINE,
                    };
                    if self.line.len() > limit {
                        return Err(match self.state {
                            ChunkState::DataEnd => bad("chunk data longer than its size"),
                            ChunkState::Trailers => bad("chunked trailer section too large"),
                            _ => bad("chunk-size line too long"),
                        });
                    }
                    if complete {
                        let line = std::mem::take(&mut self.line);
                        self.line_done(&line, out.len() as u64, max_body)?;
                    }
                }
            }
        }
        Ok(used)
    }

    fn line_done(&mut self, line: &[u8], body_len: u64, max_body: u64) -> Result<(), WireError> {
        let Some(text) = line.strip_suffix(b"\r\n") else {
            return Err(bad("chunked body line without CRLF"));
        };
        match self.state {
            ChunkState::SizeLine => {
                // chunk-size = 1*HEXDIG, from the first byte of the line: no whitespace
                // before it (RFC 9112 §7.1), where parsers disagree about what it means.
                let digits_len = text.iter().take_while(|b| b.is_ascii_hexdigit()).count();
                let (digits, extensions) = text.split_at(digits_len);
                if digits.is_empty() || digits.len() > 16 {
                    return Err(bad("malformed chunk size"));
                }
                check_chunk_extensions(extensions)?;
                let hex = std::str::from_utf8(digits).map_err(|_| bad("malformed chunk size"))?;
                let size = u64::from_str_radix(hex, 16).map_err(|_| bad("malformed chunk size"))?;
                if size == 0 {
                    self.state = ChunkState::Trailers;
                } else if body_len.saturating_add(size) > max_body {
                    return Err(WireError::PayloadTooLarge(max_body));
                } else {
                    self.state = ChunkState::Data(size);
                }
            }
            ChunkState::DataEnd => {
                if !text.is_empty() {
                    return Err(bad("chunk data longer than its size"));
                }
                self.state = ChunkState::SizeLine;
            }
            ChunkState::Trailers => {
                if text.is_empty() {
                    self.state = ChunkState::Done;
                } else {
                    // Read and dropped, but only if it is a field line (no folding, no
                    // stray CR): RFC 9112 §7.1.2 and §5.
                    check_trailer_field(text)?;
                    self.trailer_bytes += line.len();
                }
            }
            ChunkState::Data(_) | ChunkState::Done => {}
        }
        Ok(())
    }
}

fn skip_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    s
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The length of the token at the start of `s` (0: none).
fn token_len(s: &[u8]) -> usize {
    s.iter().take_while(|&&b| is_tchar(b)).count()
}

/// The rest of `s` after the quoted-string it starts with (RFC 9110 §5.6.4), or `None`.
fn after_quoted_string(s: &[u8]) -> Option<&[u8]> {
    let mut rest = s.strip_prefix(b"\"")?;
    loop {
        match *rest {
            [b'"', ref after @ ..] => return Some(after),
            // quoted-pair: HTAB, SP, VCHAR or obs-text after the backslash.
            [b'\\', c, ref after @ ..] if c == b'\t' || (c >= 0x20 && c != 0x7f) => rest = after,
            // qdtext: HTAB, SP, VCHAR but '"' and '\', obs-text.
            [c, ref after @ ..] if c == b'\t' || (c >= 0x20 && c != 0x7f && c != b'\\') => {
                rest = after
            }
            _ => return None,
        }
    }
}

/// What follows the chunk size on its line (RFC 9112 §7.1.1):
/// `chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )`, `ext-name = token`,
/// `ext-val = token / quoted-string`. The extensions are ignored, but a line that does not
/// follow this grammar is refused: a parser in front may have read it differently.
fn check_chunk_extensions(mut s: &[u8]) -> Result<(), WireError> {
    let malformed = || bad("malformed chunk extension");
    while !s.is_empty() {
        s = skip_ows(s).strip_prefix(b";").ok_or_else(malformed)?;
        s = skip_ows(s);
        let name = token_len(s);
        if name == 0 {
            return Err(malformed());
        }
        s = &s[name..];
        if let Some(value) = skip_ows(s).strip_prefix(b"=") {
            let value = skip_ows(value);
            s = if value.first() == Some(&b'"') {
                after_quoted_string(value).ok_or_else(malformed)?
            } else {
                match token_len(value) {
                    0 => return Err(malformed()),
                    n => &value[n..],
                }
            };
        }
    }
    Ok(())
}

/// A trailer line: `field-name ":" OWS field-value OWS` (RFC 9112 §5), the value visible
/// characters, spaces and tabs.
fn check_trailer_field(line: &[u8]) -> Result<(), WireError> {
    let name = token_len(line);
    let value = line[name..].strip_prefix(b":");
    match value {
        Some(value)
            if name > 0
                && value
                    .iter()
                    .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f)) =>
        {
            Ok(())
        }
        _ => Err(bad("malformed chunked trailer field")),
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// A field value may hold visible characters, spaces and tabs; CR, LF and other controls
/// would let a value start a new header or response.
fn is_field_value(s: &str) -> bool {
    s.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// Headers the transport sets itself; a handler's copy is ignored.
const TRANSPORT_HEADERS: [&str; 4] = ["content-length", "transfer-encoding", "connection", "date"];

/// Whether the response to `method` with `status` carries no body (RFC 9110 §6.4.1).
pub fn bodyless(method: &str, status: u16) -> bool {
    method.eq_ignore_ascii_case("HEAD") || status == 204 || status == 304 || status < 200
}

/// A response's status line and headers, as the transport sends them.
pub struct ResponseHead<'a> {
    pub status: u16,
    pub headers: &'a [(String, String)],
    pub body_len: usize,
    /// Announce that the connection closes after this response.
    pub close: bool,
    pub http10: bool,
    /// The `Date` header's value.
    pub date: &'a str,
}

/// Appends the status line and headers to `out`. Invalid header names or values are dropped
/// (and reported through `dropped`), never sent.
pub fn response_head(head: &ResponseHead, out: &mut Vec<u8>, mut dropped: impl FnMut(&str)) {
    let ResponseHead {
        status,
        headers,
        body_len,
        close,
        http10,
        date,
    } = *head;
    use std::io::Write as _;
    out.extend_from_slice(if http10 { b"HTTP/1.0 " } else { b"HTTP/1.1 " });
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{status} ");
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\nDate: ");
    out.extend_from_slice(date.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        if TRANSPORT_HEADERS
            .iter()
            .any(|t| name.eq_ignore_ascii_case(t))
        {
            continue;
        }
        if !is_token(name) || !is_field_value(value) {
            dropped(name);
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // Not for 1xx, 204 (RFC 9110 §8.6) or 304 (whose length would be the 200's).
    if status >= 200 && status != 204 && status != 304 {
        let _ = write!(out, "Content-Length: {body_len}\r\n");
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if http10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// [`http_date`] of the current second, formatted once a second by each thread: a response's
/// `Date` header.
pub fn current_http_date() -> String {
    thread_local! {
        static LAST: std::cell::RefCell<(i64, String)> =
            const { std::cell::RefCell::new((i64::MIN, String::new())) };
    }
    let now = time::OffsetDateTime::now_utc();
    LAST.with_borrow_mut(|(second, text)| {
        if *second != now.unix_timestamp() {
            *second = now.unix_timestamp();
            *text = http_date(now);
        }
        text.clone()
    })
}

/// The current time as an HTTP date (RFC 9110 §5.6.7), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
/// Through `time`'s formatter: a `format!` of each field was 2,800 instructions a response
/// (callgrind, issue 22).
pub fn http_date(now: time::OffsetDateTime) -> String {
    use time::format_description::BorrowedFormatItem;
    const IMF_FIXDATE: &[BorrowedFormatItem<'_>] = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    now.to_offset(time::UtcOffset::UTC)
        .format(IMF_FIXDATE)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HeadLimits = HeadLimits {
        max_request_line_bytes: 64,
        max_header_bytes: 128,
        max_headers: 4,
    };

    fn scan_all(input: &[u8]) -> Result<Option<usize>, WireError> {
        HeadScanner::new().scan(input, &LIMITS)
    }

    fn head(text: &str) -> Result<RequestHead, WireError> {
        let n = scan_all(text.as_bytes()).unwrap().expect("complete head");
        parse_head(&text.as_bytes()[..n], 10, 1000)
    }

    #[test]
    fn scanner_finds_the_end_byte_by_byte() {
        let text = b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\nBODY";
        let mut s = HeadScanner::new();
        let mut found = None;
        for n in 1..=text.len() {
            if let Some(end) = s.scan(&text[..n], &LIMITS).unwrap() {
                found = Some(end);
                break;
            }
        }
        assert_eq!(found, Some(text.len() - 4));
    }

    #[test]
    fn scanner_limits_apply_before_the_line_ends() {
        let long_line = format!("GET /{} HTTP/1.1", "a".repeat(100));
        assert_eq!(
            scan_all(long_line.as_bytes()),
            Err(WireError::UriTooLong(64))
        );
        let big_header = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(200));
        assert!(matches!(
            scan_all(big_header.as_bytes()),
            Err(WireError::HeadersTooLarge(_))
        ));
        let many = format!("GET / HTTP/1.1\r\n{}", "A: b\r\n".repeat(5));
        assert!(matches!(
            scan_all(many.as_bytes()),
            Err(WireError::HeadersTooLarge(_))
        ));
        assert!(matches!(
            scan_all(b"GET / HTTP/1.1\nHost: x\r\n\r\n"),
            Err(WireError::BadRequest(_))
        ));
        assert!(matches!(
            scan_all(b"\r\n\r\n\r\n\r\n"),
            Err(WireError::BadRequest(_))
        ));
    }

    /// The same refusal whether a line arrives in one read or byte by byte: an over-long
    /// line is too long before its missing CR matters (an http_wire fuzz finding).
    #[test]
    fn refusals_do_not_depend_on_how_the_bytes_arrive() {
        for text in [
            format!("GET /{} HTTP/1.1\nHost: x\r\n\r\n", "a".repeat(100)),
            format!("GET / HTTP/1.1\r\nX: {}\nHost: x\r\n\r\n", "a".repeat(200)),
            "GET / HTTP/1.1\nHost: x\r\n\r\n".to_string(),
        ] {
            let at_once = HeadScanner::new().scan(text.as_bytes(), &LIMITS);
            let mut s = HeadScanner::new();
            let mut byte_by_byte = Ok(None);
            for n in 1..=text.len() {
                byte_by_byte = s.scan(&text.as_bytes()[..n], &LIMITS);
                if !matches!(byte_by_byte, Ok(None)) {
                    break;
                }
            }
            assert!(at_once.is_err(), "{text:?}");
            assert_eq!(at_once, byte_by_byte, "{text:?}");
        }
    }

    #[test]
    fn framing_rules() {
        let h = head("POST /a?b=c HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n").unwrap();
        assert_eq!((h.path.as_str(), h.query.as_str()), ("/a", "b=c"));
        assert_eq!(h.body, BodyFraming::Length(5));
        assert!(h.keep_alive);
        let same =
            head("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5, 5\r\n\r\n");
        assert_eq!(same.unwrap().body, BodyFraming::Length(5));
        for (text, status) in [
            ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
            ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n", 413),
            ("GET / HTTP/1.1\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: x\r\nAuthorization: a\r\nAuthorization: b\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n\r\n", 417),
            ("GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
            ("GET nopath HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n", 400),
        ] {
            assert_eq!(head(text).map(|_| ()).unwrap_err().status(), status, "{text:?}");
        }
        let h =
            head("GET http://example.com/scim/v2/Users?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n")
                .unwrap();
        assert_eq!(
            (h.path.as_str(), h.query.as_str()),
            ("/scim/v2/Users", "x=1")
        );
        let h = head("GET / HTTP/1.0\r\n\r\n").unwrap();
        assert!(!h.keep_alive && h.http10);
        let h = head("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nIf-Match: \"a\"\r\nIf-Match: \"b\"\r\n\r\n").unwrap();
        assert!(!h.keep_alive);
        assert_eq!(h.headers.if_match.as_deref(), Some("\"a\", \"b\""));
        let h = head("GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 192.0.2.1\r\nx-forwarded-for: 10.0.0.1\r\nForwarded: for=192.0.2.1\r\n\r\n").unwrap();
        assert_eq!(
            h.x_forwarded_for.as_deref(),
            Some(&b"192.0.2.1, 10.0.0.1"[..])
        );
        assert_eq!(h.forwarded.as_deref(), Some(&b"for=192.0.2.1"[..]));
        let h = head("GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!((h.x_forwarded_for, h.forwarded), (None, None));
        let h = parse_head(
            b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: \xff\r\n\r\n",
            10,
            1000,
        )
        .expect("a forwarding header that is not UTF-8 refuses nothing");
        assert_eq!(h.x_forwarded_for.as_deref(), Some(&b"\xff"[..]));
        // The console's headers: joined when repeated, never a refusal, not even as bytes
        // that are not UTF-8.
        let h = parse_head(
            b"GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: Okta SCIM Client 1.0.0\r\nCookie: a=1\r\ncookie: b=\xff\r\nOrigin: http://x\r\nUser-Agent: \xfe\r\n\r\n",
            10,
            1000,
        )
        .expect("console headers refuse nothing");
        assert_eq!(
            h.headers.user_agent.as_deref(),
            Some("Okta SCIM Client 1.0.0, \u{fffd}")
        );
        assert_eq!(h.headers.cookie.as_deref(), Some("a=1; b=\u{fffd}"));
        assert_eq!(h.headers.origin.as_deref(), Some("http://x"));
        let h = head("GET / HTTP/1.1\r\nHost: x\r\nOrigin: http://a\r\nOrigin: http://b\r\n\r\n")
            .unwrap();
        assert_eq!(h.headers.origin.as_deref(), Some("http://a, http://b"));
        let h = head("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\nExpect: 100-continue\r\n\r\n").unwrap();
        assert_eq!(h.body, BodyFraming::Chunked);
        assert!(h.expect_continue);
    }

    #[test]
    fn chunked_bodies_decode_in_any_split_and_respect_the_limit() {
        let wire = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        for split in 0..=wire.len() - 4 {
            let mut d = ChunkedDecoder::new();
            let mut out = Vec::new();
            let a = d.feed(&wire[..split], &mut out, 100).unwrap();
            assert_eq!(a, split);
            let b = d.feed(&wire[split..], &mut out, 100).unwrap();
            assert!(d.is_done());
            assert_eq!(out, b"hello world");
            assert_eq!(&wire[split + b..], b"NEXT");
        }
        let mut d = ChunkedDecoder::new();
        assert_eq!(
            d.feed(b"ff\r\n", &mut Vec::new(), 100),
            Err(WireError::PayloadTooLarge(100))
        );
        for bad_input in [
            &b"zz\r\n"[..],
            b"5\r\nhelloX\r\n",
            b"5\nhello",
            b"fffffffffffffffff\r\n",
        ] {
            let mut d = ChunkedDecoder::new();
            assert!(
                d.feed(bad_input, &mut Vec::new(), 1 << 40).is_err(),
                "{bad_input:?}"
            );
        }
    }

    /// Decodes `wire` in one piece and byte by byte; both must agree.
    fn decode(wire: &[u8]) -> Result<Vec<u8>, WireError> {
        let mut results = Vec::new();
        for step in [wire.len().max(1), 1] {
            let mut d = ChunkedDecoder::new();
            let mut out = Vec::new();
            let mut result = Ok(());
            for piece in wire.chunks(step) {
                if let Err(e) = d.feed(piece, &mut out, 1000) {
                    result = Err(e);
                    break;
                }
            }
            results.push(result.map(|()| {
                assert!(d.is_done(), "{:?}", String::from_utf8_lossy(wire));
                out
            }));
        }
        assert_eq!(
            results[0],
            results[1],
            "{:?}",
            String::from_utf8_lossy(wire)
        );
        results.remove(0)
    }

    /// RFC 9112 §7.1: the chunk size starts the line, and extensions follow
    /// `*( BWS ";" BWS token [ BWS "=" BWS ( token / quoted-string ) ] )`; trailers are field
    /// lines. Anything else is refused, however the bytes arrive.
    #[test]
    fn chunk_lines_follow_the_grammar() {
        for good in [
            &b"5\r\nhello\r\n0\r\n\r\n"[..],
            b"5;a\r\nhello\r\n0\r\n\r\n",
            b"5;a=b;c=d\r\nhello\r\n0;last\r\n\r\n",
            b"5 ; a = b\t;\tc\r\nhello\r\n0\r\n\r\n",
            b"5;a=\"q ; \\\" , \xc3\xa9\"\r\nhello\r\n0\r\n\r\n",
            b"5;a=\"\"\r\nhello\r\n0\r\n\r\n",
            b"0005\r\nhello\r\n000\r\n\r\n",
            b"5\r\nhello\r\n0\r\nX-Trailer: v\r\nEmpty:\r\n\r\n",
        ] {
            assert_eq!(
                decode(good).as_deref(),
                Ok(&b"hello"[..]),
                "{:?}",
                String::from_utf8_lossy(good)
            );
        }
        for bad_input in [
            // Whitespace before the size.
            &b" 5\r\nhello\r\n0\r\n\r\n"[..],
            b"\t5\r\nhello\r\n0\r\n\r\n",
            b" 0\r\n\r\n",
            // Not a size.
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b"+5\r\nhello\r\n0\r\n\r\n",
            b"\r\n",
            // Whitespace with no extension after it.
            b"5 \r\nhello\r\n0\r\n\r\n",
            b"5;a \r\nhello\r\n0\r\n\r\n",
            // Extensions off the grammar.
            b"5;\r\nhello\r\n0\r\n\r\n",
            b"5;=b\r\nhello\r\n0\r\n\r\n",
            b"5;a=\r\nhello\r\n0\r\n\r\n",
            b"5;a=b c\r\nhello\r\n0\r\n\r\n",
            b"5;a b\r\nhello\r\n0\r\n\r\n",
            b"5;a=b;\r\nhello\r\n0\r\n\r\n",
            b"5,a\r\nhello\r\n0\r\n\r\n",
            b"5g;x\r\nhello\r\n0\r\n\r\n",
            b"5;a=\"open\r\nhello\r\n0\r\n\r\n",
            b"5;a=\"x\"y\r\nhello\r\n0\r\n\r\n",
            b"5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n",
            b"5;a=\"\\\x7f\"\r\nhello\r\n0\r\n\r\n",
            b"5;a\x00\r\nhello\r\n0\r\n\r\n",
            b"5\r;a\r\nhello\r\n0\r\n\r\n",
            b"5;a=b\rc\r\nhello\r\n0\r\n\r\n",
            b"5\r\nhello\r\n0;\r\n\r\n",
            // Trailers that are not field lines.
            b"5\r\nhello\r\n0\r\n folded: x\r\n\r\n",
            b"5\r\nhello\r\n0\r\nno-colon\r\n\r\n",
            b"5\r\nhello\r\n0\r\n: empty name\r\n\r\n",
            b"5\r\nhello\r\n0\r\nBad Name: x\r\n\r\n",
            b"5\r\nhello\r\n0\r\nX: a\rb\r\n\r\n",
        ] {
            match decode(bad_input) {
                Err(e) => assert_eq!(e.status(), 400, "{:?}", String::from_utf8_lossy(bad_input)),
                Ok(body) => panic!(
                    "accepted {:?} as {:?}",
                    String::from_utf8_lossy(bad_input),
                    String::from_utf8_lossy(&body)
                ),
            }
        }
    }

    /// The header-count limit holds on both sides of where the slots move to the heap.
    #[test]
    fn the_header_limit_counts_the_same_on_the_stack_and_on_the_heap() {
        let with_headers = |n: usize| {
            let mut text = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
            for i in 2..n {
                text.push_str(&format!("X-{i}: {i}\r\n"));
            }
            text.push_str("Authorization: Bearer last\r\n\r\n");
            text
        };
        for max in [
            2,
            10,
            STACK_HEADER_SLOTS - 1,
            STACK_HEADER_SLOTS,
            STACK_HEADER_SLOTS + 1,
            300,
        ] {
            let h = parse_head(with_headers(max).as_bytes(), max, 1000)
                .unwrap_or_else(|e| panic!("{max} headers with max_headers {max}: {e}"));
            // The last line was read, so every slot was there.
            assert_eq!(
                h.headers.authorization.as_deref(),
                Some("Bearer last"),
                "{max}"
            );
            assert!(
                matches!(
                    parse_head(with_headers(max + 1).as_bytes(), max, 1000),
                    Err(WireError::HeadersTooLarge(_))
                ),
                "{} headers with max_headers {max}",
                max + 1
            );
        }
    }

    #[test]
    fn response_heads_drop_unsafe_headers() {
        let mut dropped = Vec::new();
        let mut head = b"kept|".to_vec();
        response_head(
            &ResponseHead {
                status: 201,
                headers: &[
                    ("Location".into(), "/x".into()),
                    ("X-Bad".into(), "a\r\nSet-Cookie: y".into()),
                    ("Content-Length".into(), "999".into()),
                ],
                body_len: 3,
                close: false,
                http10: false,
                date: "Sun, 06 Nov 1994 08:49:37 GMT",
            },
            &mut head,
            |n| dropped.push(n.to_string()),
        );
        let text = String::from_utf8(head).unwrap();
        // Appended to what the buffer held.
        assert!(text.starts_with("kept|HTTP/1.1 201 Created\r\n"), "{text}");
        assert!(text.contains("Location: /x\r\n") && text.contains("Content-Length: 3\r\n"));
        assert!(!text.contains("999") && !text.contains("Set-Cookie"));
        assert_eq!(dropped, ["X-Bad"]);
        let d = http_date(time::OffsetDateTime::from_unix_timestamp(784_111_777).unwrap());
        assert_eq!(d, "Sun, 06 Nov 1994 08:49:37 GMT");
        // Zero-padded day and time, in GMT whatever the offset given.
        let t = time::OffsetDateTime::from_unix_timestamp(1_643_677_505)
            .unwrap()
            .to_offset(time::UtcOffset::from_hms(-5, 0, 0).unwrap());
        assert_eq!(http_date(t), "Tue, 01 Feb 2022 01:05:05 GMT");
    }

    #[test]
    fn the_current_date_is_the_current_second() {
        let before = http_date(time::OffsetDateTime::now_utc());
        let current = current_http_date();
        let again = current_http_date();
        let after = http_date(time::OffsetDateTime::now_utc());
        for d in [&current, &again] {
            assert!(
                *d == before || *d == after,
                "{d} is neither {before} nor {after}"
            );
        }
    }
}
