//! How the processes of a job find each other: rank 0 listens on the rendezvous port,
//! every other rank connects (retrying while rank 0 is not up yet) and says who it is and
//! what it runs (an identity: a hash of the config and the dataset). Rank 0 admits the
//! ranks once all have joined with its own identity and world size, and hands every one
//! the same payload (a communicator id, for backends that need one). The connections stay
//! open: the CPU backend carries its collectives over them, and a closed one is how a dead
//! rank is noticed.

use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::wire::{Link, Tag};
use crate::{DistError, Launch};

/// Rank 0's links to every other rank (by rank; its own slot empty), or a rank's link to
/// rank 0.
pub struct Star {
    pub rank: usize,
    pub world: usize,
    pub links: Vec<Option<Link>>,
    pub timeout: Duration,
}

impl Star {
    /// Tells the peers this rank stops, and why (best effort), and closes the connections
    /// cleanly.
    pub fn abort(&mut self, reason: &str) {
        for link in self.links.iter_mut().flatten() {
            link.send(Tag::Abort, reason.as_bytes(), "").ok();
            link.stream.shutdown(std::net::Shutdown::Write).ok();
        }
        // Closing a socket with unread bytes in it resets the connection, and a reset can
        // discard the abort frame before the peer reads it: read what the peers still send
        // (briefly) so the connections close cleanly.
        let until = Instant::now() + Duration::from_secs(1);
        for link in self.links.iter_mut().flatten() {
            use std::io::Read;
            link.stream
                .set_read_timeout(Some(Duration::from_millis(100)))
                .ok();
            let mut buf = [0u8; 1 << 16];
            while Instant::now() < until {
                match link.stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        }
    }

    /// Without waiting: the first peer that has closed its connection or sent an abort
    /// (for backends whose collectives do not run over these connections, to tell a dead
    /// peer from a slow one).
    pub fn peer_trouble(&mut self) -> Option<DistError> {
        for link in self.links.iter_mut().flatten() {
            link.stream.set_nonblocking(true).ok();
            let mut b = [0u8; 1];
            let r = link.stream.peek(&mut b);
            link.stream.set_nonblocking(false).ok();
            match r {
                Ok(0) => {
                    return Some(DistError::PeerGone {
                        rank: link.peer,
                        during: "during a collective".into(),
                    })
                }
                Ok(_) => {
                    // Only abort frames travel here once the job runs.
                    return Some(
                        link.recv(Tag::Abort, "")
                            .err()
                            .unwrap_or_else(|| DistError::Aborted(format!("rank {}", link.peer))),
                    );
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    return Some(DistError::PeerGone {
                        rank: link.peer,
                        during: "during a collective".into(),
                    })
                }
            }
        }
        None
    }
}

/// Join the job of `launch` under `identity`; returns the star and rank 0's payload.
pub fn join(
    launch: &Launch,
    identity: &str,
    timeout: Duration,
    payload: &[u8],
) -> Result<(Star, Vec<u8>), DistError> {
    if launch.rank == 0 {
        host(launch, identity, timeout, payload)
    } else {
        visit(launch, identity, timeout)
    }
}

fn host(
    launch: &Launch,
    identity: &str,
    timeout: Duration,
    payload: &[u8],
) -> Result<(Star, Vec<u8>), DistError> {
    let port = launch.rendezvous_port;
    let listener = TcpListener::bind(("0.0.0.0", port)).map_err(|e| {
        DistError::io(
            format!(
                "rank 0 could not listen on port {port} for the rendezvous (another job on it? \
                 choose another MASTER_PORT)"
            ),
            e,
        )
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|e| DistError::io("rendezvous listener", e))?;
    let deadline = Instant::now() + timeout;
    let mut links: Vec<Option<Link>> = (0..launch.world).map(|_| None).collect();
    let mut joined = 1;
    let refuse = |links: &mut Vec<Option<Link>>, extra: Option<&mut Link>, why: &str| {
        for l in links.iter_mut().flatten().chain(extra) {
            l.send(Tag::Abort, why.as_bytes(), "").ok();
        }
    };
    while joined < launch.world {
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    let missing: Vec<String> = (1..launch.world)
                        .filter(|&r| links[r].is_none())
                        .map(|r| r.to_string())
                        .collect();
                    let why = format!(
                        "rank(s) {} did not join within {} s",
                        missing.join(", "),
                        timeout.as_secs_f64()
                    );
                    refuse(&mut links, None, &why);
                    return Err(DistError::Launch(why));
                }
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Err(e) => return Err(DistError::io("accepting a rank at the rendezvous", e)),
        };
        stream
            .set_nonblocking(false)
            .map_err(|e| DistError::io("rendezvous connection", e))?;
        // The peer's rank is unknown until its hello; `world` marks "not yet known".
        let mut link = Link::new(stream, launch.world, timeout)?;
        let hello = link.recv(Tag::Hello, "while joining")?;
        let text = String::from_utf8_lossy(&hello).into_owned();
        let mut parts = text.splitn(3, ' ');
        let (r, w, id) = (
            parts.next().and_then(|s| s.parse::<usize>().ok()),
            parts.next().and_then(|s| s.parse::<usize>().ok()),
            parts.next().unwrap_or(""),
        );
        let (Some(r), Some(w)) = (r, w) else {
            return Err(DistError::Protocol {
                rank: launch.world,
                what: format!("a hello {text:?}"),
            });
        };
        link.peer = r;
        let problem = if w != launch.world {
            Some(DistError::Mismatch {
                rank: r,
                what: format!("world size {w}, rank 0 has {}", launch.world),
            })
        } else if r == 0 || r >= launch.world || links[r].is_some() {
            Some(DistError::Mismatch {
                rank: r,
                what: "a second process claims this rank (check RANK / SLURM_PROCID)".into(),
            })
        } else if id != identity {
            Some(DistError::Mismatch {
                rank: r,
                what: format!(
                    "another configuration or dataset (identity {id}, rank 0 has {identity}): \
                     every rank must run the same config on the same shards"
                ),
            })
        } else {
            None
        };
        if let Some(e) = problem {
            refuse(&mut links, Some(&mut link), &e.to_string());
            return Err(e);
        }
        links[r] = Some(link);
        joined += 1;
    }
    for l in links.iter_mut().flatten() {
        l.send(Tag::Welcome, payload, "while admitting it")?;
    }
    Ok((
        Star {
            rank: 0,
            world: launch.world,
            links,
            timeout,
        },
        payload.to_vec(),
    ))
}

fn visit(launch: &Launch, identity: &str, timeout: Duration) -> Result<(Star, Vec<u8>), DistError> {
    let addr = (launch.master_addr.as_str(), launch.rendezvous_port);
    let deadline = Instant::now() + timeout;
    let stream = loop {
        let resolved = addr.to_socket_addrs().map_err(|e| {
            DistError::io(format!("resolving MASTER_ADDR {}", launch.master_addr), e)
        })?;
        let mut last = None;
        let mut got = None;
        for a in resolved {
            match TcpStream::connect_timeout(&a, Duration::from_secs(2)) {
                Ok(s) => {
                    got = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        if let Some(s) = got {
            break s;
        }
        if Instant::now() > deadline {
            return Err(DistError::io(
                format!(
                    "rank {} could not reach rank 0 at {}:{} within {} s",
                    launch.rank,
                    launch.master_addr,
                    launch.rendezvous_port,
                    timeout.as_secs_f64()
                ),
                last.unwrap_or_else(|| std::io::Error::other("no address")),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut link = Link::new(stream, 0, timeout)?;
    let hello = format!("{} {} {identity}", launch.rank, launch.world);
    link.send(Tag::Hello, hello.as_bytes(), "while joining")?;
    // Rank 0 admits everyone at once, so the wait covers the slowest rank's start.
    let payload = link.recv_within(Tag::Welcome, timeout * 2, "while waiting to be admitted")?;
    let mut links: Vec<Option<Link>> = (0..launch.world).map(|_| None).collect();
    links[0] = Some(link);
    Ok((
        Star {
            rank: launch.rank,
            world: launch.world,
            links,
            timeout,
        },
        payload,
    ))
}
