//! Frames on a TCP stream between two ranks: a tag byte, a little-endian u64 length, the
//! payload. A closed stream, a timeout and an abort frame each become the `DistError`
//! that names the peer.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::DistError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Tag {
    /// A joining rank introduces itself: `rank world identity`.
    Hello = 1,
    /// Rank 0 admits a rank (payload: what every rank gets, e.g. a communicator id).
    Welcome = 2,
    /// A collective's bytes.
    Data = 3,
    /// The sender stops the job; the payload says why.
    Abort = 4,
}

/// The largest frame accepted (a corrupt length must not allocate the machine away).
const MAX_FRAME: u64 = 1 << 36;

pub struct Link {
    pub stream: TcpStream,
    /// The rank at the other end.
    pub peer: usize,
    pub timeout: Duration,
}

impl Link {
    pub fn new(stream: TcpStream, peer: usize, timeout: Duration) -> Result<Self, DistError> {
        let setup = |e| DistError::io(format!("setting up the connection to rank {peer}"), e);
        stream.set_nodelay(true).map_err(setup)?;
        stream.set_read_timeout(Some(timeout)).map_err(setup)?;
        stream.set_write_timeout(Some(timeout)).map_err(setup)?;
        Ok(Self {
            stream,
            peer,
            timeout,
        })
    }

    fn failed(&self, e: std::io::Error, during: &str) -> DistError {
        match e.kind() {
            ErrorKind::WouldBlock | ErrorKind::TimedOut => DistError::Timeout {
                rank: self.peer,
                timeout: self.timeout,
                during: during.to_string(),
            },
            ErrorKind::UnexpectedEof
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe => DistError::PeerGone {
                rank: self.peer,
                during: during.to_string(),
            },
            _ => DistError::io(format!("rank {} {during}", self.peer), e),
        }
    }

    pub fn send(&mut self, tag: Tag, payload: &[u8], during: &str) -> Result<(), DistError> {
        let mut head = [0u8; 9];
        head[0] = tag as u8;
        head[1..].copy_from_slice(&(payload.len() as u64).to_le_bytes());
        self.stream
            .write_all(&head)
            .and_then(|_| self.stream.write_all(payload))
            .map_err(|e| self.failed(e, during))
    }

    /// The next frame, which must carry `want`; an abort frame becomes `Aborted`.
    pub fn recv(&mut self, want: Tag, during: &str) -> Result<Vec<u8>, DistError> {
        let mut head = [0u8; 9];
        self.stream
            .read_exact(&mut head)
            .map_err(|e| self.failed(e, during))?;
        let len = u64::from_le_bytes(head[1..].try_into().expect("8 bytes"));
        if len > MAX_FRAME {
            return Err(DistError::Protocol {
                rank: self.peer,
                what: format!("a frame of {len} bytes"),
            });
        }
        let mut payload = vec![0u8; len as usize];
        self.stream
            .read_exact(&mut payload)
            .map_err(|e| self.failed(e, during))?;
        if head[0] == Tag::Abort as u8 {
            return Err(DistError::Aborted(format!(
                "rank {}: {}",
                self.peer,
                String::from_utf8_lossy(&payload)
            )));
        }
        if head[0] != want as u8 {
            return Err(DistError::Protocol {
                rank: self.peer,
                what: format!("tag {} where {:?} was expected {during}", head[0], want),
            });
        }
        Ok(payload)
    }

    /// Like `recv`, waiting up to `wait` instead of the link's timeout.
    pub fn recv_within(
        &mut self,
        want: Tag,
        wait: Duration,
        during: &str,
    ) -> Result<Vec<u8>, DistError> {
        let normal = self.timeout;
        self.stream.set_read_timeout(Some(wait)).ok();
        self.timeout = wait;
        let r = self.recv(want, during);
        self.timeout = normal;
        self.stream.set_read_timeout(Some(normal)).ok();
        r
    }
}
