//! `examples/tokenize.rs` on hostile surroundings: a text argument that is not UTF-8, a
//! stdout that cannot be written (`> /dev/full`) and one whose reader has gone (`| head`).
//! The example's source is compiled here as a module, so its `run` can be handed any
//! argument and any writer.

use std::ffi::OsString;
use std::io::{self, ErrorKind, Write};

#[allow(dead_code)] // its `main` is not called here
#[path = "../examples/tokenize.rs"]
mod tokenize;

/// A stdout that fails every write with `kind`.
struct FailingWriter(ErrorKind);

impl Write for FailingWriter {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(self.0, "refused"))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn the_text_is_explained_on_the_writer() {
    let mut out = Vec::new();
    tokenize::run(Some(OsString::from(" The dog")), &mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(out.starts_with("text: \" The dog\"\npre-tokens: [\" The\", \" dog\"]\n"), "{out}");
    assert!(out.ends_with("all ids: [383, 3290]\n"), "{out}");
}

#[cfg(unix)]
#[test]
fn a_text_that_is_not_utf8_is_an_error_not_a_panic() {
    use std::os::unix::ffi::OsStringExt;
    let mut out = Vec::new();
    let error = tokenize::run(Some(OsString::from_vec(b"caf\xe9".to_vec())), &mut out);
    let error = error.unwrap_err();
    assert!(error.starts_with("the text \"caf\\xE9\" is not valid UTF-8"), "{error}");
    assert!(out.is_empty());
}

#[test]
fn a_full_stdout_is_an_error_and_a_closed_pipe_is_a_quiet_end() {
    let error = tokenize::run(None, &mut FailingWriter(ErrorKind::StorageFull)).unwrap_err();
    assert_eq!(error, "cannot write to stdout: refused");
    assert_eq!(tokenize::run(None, &mut FailingWriter(ErrorKind::BrokenPipe)), Ok(()));
}
