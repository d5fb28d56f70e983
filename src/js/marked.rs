//! What the bootstrap's wrapper returns for an invocation (`readMark` in bootstrap.js): marker
//! letters saying which held-back parts of its event the function read and how it settled, then
//! the result. Decoded here, once, into what they mean.

/// Which of its event's held-back header map the function read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadersRead {
    /// All of it (`h`).
    Whole,
    /// Header by header (`i`).
    OneAtATime,
    Not,
}

/// How the invocation settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled<'a> {
    /// The handler's result as JSON, with the runtime's listed headers before it and body after
    /// it where it used them (`N`).
    Result(&'a str),
    /// The same, to be sent once the event loop is empty: the callback answered and the
    /// function asked to wait for it (`W`).
    ResultAfterEventLoop(&'a str),
    /// The handler threw, rejected or called back with an error: its description, the JSON of
    /// its name, message and stack (`F`).
    Failed(&'a str),
    /// The result could not be turned into JSON: why (`E`).
    Unwritable(&'a str),
    /// Not a marked text.
    Unmarked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marked<'a> {
    /// The function read its event's held-back seldom-read part (`p`).
    pub read_part: bool,
    pub headers: HeadersRead,
    pub settled: Settled<'a>,
}

impl<'a> Marked<'a> {
    pub fn decode(text: &'a str) -> Marked<'a> {
        let (read_part, text) = match text.strip_prefix('p') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (headers, text) = if let Some(rest) = text.strip_prefix('h') {
            (HeadersRead::Whole, rest)
        } else if let Some(rest) = text.strip_prefix('i') {
            (HeadersRead::OneAtATime, rest)
        } else {
            (HeadersRead::Not, text)
        };
        // The marker is one ASCII letter: what follows it starts at byte 1.
        let settled = match text.as_bytes().first() {
            Some(b'N') => Settled::Result(&text[1..]),
            Some(b'W') => Settled::ResultAfterEventLoop(&text[1..]),
            Some(b'F') => Settled::Failed(&text[1..]),
            Some(b'E') => Settled::Unwritable(&text[1..]),
            _ => Settled::Unmarked,
        };
        Marked {
            read_part,
            headers,
            settled,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_decode_into_what_they_mean() {
        let plain = Marked::decode("N{\"uri\":\"/\"}");
        assert_eq!(
            plain,
            Marked {
                read_part: false,
                headers: HeadersRead::Not,
                settled: Settled::Result("{\"uri\":\"/\"}")
            }
        );
        let read = Marked::decode("phW{}");
        assert_eq!(
            (read.read_part, read.headers, read.settled),
            (true, HeadersRead::Whole, Settled::ResultAfterEventLoop("{}"))
        );
        assert_eq!(Marked::decode("iF{\"name\":\"E\"}").headers, HeadersRead::OneAtATime);
        assert_eq!(
            Marked::decode("iF{\"name\":\"E\"}").settled,
            Settled::Failed("{\"name\":\"E\"}")
        );
        assert_eq!(Marked::decode("Ecyclic").settled, Settled::Unwritable("cyclic"));
        assert_eq!(Marked::decode("N").settled, Settled::Result(""));
        for unmarked in ["", "p", "ph", "X{}", "é{}", "{}"] {
            assert_eq!(Marked::decode(unmarked).settled, Settled::Unmarked, "{unmarked:?}");
        }
    }
}
