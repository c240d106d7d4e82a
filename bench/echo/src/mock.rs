//! In-memory [`Transport`] for unit tests: reads come from a byte slice
//! in small steps (to exercise partial reads), writes are collected.

use std::cell::RefCell;
use std::io::{self, Cursor, Read, Write};
use std::rc::Rc;
use std::time::Duration;

use crate::conn::Transport;

/// In-memory transport: reads from `input`, appends writes to `output`.
pub struct Mock {
    pub input: Cursor<Vec<u8>>,
    pub output: Rc<RefCell<Vec<u8>>>,
    /// Largest slice returned by one read, to exercise partial reads.
    pub step: usize,
}

impl Mock {
    pub fn new(input: &[u8], step: usize) -> Self {
        Mock {
            input: Cursor::new(input.to_vec()),
            output: Default::default(),
            step,
        }
    }
}

impl Read for Mock {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.step);
        self.input.read(&mut buf[..n])
    }
}

impl Write for Mock {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for Mock {
    fn shutdown_write(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn read_timeout(&mut self, _: Option<Duration>) -> io::Result<()> {
        Ok(())
    }
    fn prepare_reset(&mut self) {}
}
