//! The syslog receiver: UDP (one datagram, one message) and TCP (octet-counted or newline
//! framed, detected per message) listeners feeding one processing thread that parses,
//! dedupes, maps and appends; non-alarm lines and alarms without a v1 meaning go to a raw
//! side file with the reason, malformed alarms to a rejects file: nothing is dropped silently.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver as Rx, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Map;

use callstate_ingest::Appender;
use callstate_schemas::Body;

use super::map::{Mapped, map, node_of, raw_record};
use super::parse::{Line, parse};
use super::sidefile::SideFile;
use crate::clock::Clock;
use crate::error::CucmError;
use crate::outbox::Outbox;
use crate::tracker::Pending;

/// Settings of one receiver (one cluster).
#[derive(Debug, Clone)]
pub struct SyslogConfig {
    /// `udp://ADDR:PORT` and/or `tcp://ADDR:PORT`.
    pub listen: Vec<String>,
    /// Cluster id put on every event.
    pub cluster: String,
    /// `source` of every event (default `syslog:<cluster>`).
    pub source: String,
    /// Application users whose CTI provider alarms become provider events.
    pub cti_users: Vec<String>,
    /// The persisted sequence-number file.
    pub seq_file: PathBuf,
    /// Malformed alarms, with the reason (NDJSON, rotated).
    pub rejects_file: PathBuf,
    /// Lines that are not alarms, and alarms without a v1 meaning, with the reason (NDJSON,
    /// rotated).
    pub raw_file: PathBuf,
    /// Bytes a side file may reach before it is rotated (4 rotations kept).
    pub side_file_bytes: u64,
    /// UDP socket receive buffer asked for (the kernel caps it at `net.core.rmem_max`).
    pub udp_buffer_bytes: usize,
    /// How long a message's dedupe key is remembered.
    pub dedupe_window: Duration,
}

impl SyslogConfig {
    /// Defaults for `cluster`, listening on `listen`, files under `dir`.
    pub fn new(cluster: &str, listen: Vec<String>, dir: &std::path::Path) -> SyslogConfig {
        SyslogConfig {
            listen,
            cluster: cluster.to_string(),
            source: format!("syslog:{cluster}"),
            cti_users: Vec::new(),
            seq_file: dir.join(format!("syslog-{cluster}.seq")),
            rejects_file: dir.join(format!("syslog-{cluster}.rejects.ndjson")),
            raw_file: dir.join(format!("syslog-{cluster}.raw.ndjson")),
            side_file_bytes: 64 << 20,
            udp_buffer_bytes: 32 << 20,
            dedupe_window: Duration::from_secs(600),
        }
    }
}

/// What the receiver has done.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyslogStatus {
    /// Where it listens (`udp://…`, `tcp://…`, the ports bound).
    pub listening: Vec<String>,
    /// The UDP receive buffer the kernel granted, bytes.
    pub udp_buffer_bytes: usize,
    /// Messages received.
    pub messages: u64,
    /// CiscoLog alarms among them.
    pub alarms: u64,
    /// Alarms dropped as duplicates (same node, application, SEQNUM, stamp and name).
    pub duplicates: u64,
    /// v1 events appended (heartbeats included).
    pub events: u64,
    /// Lines that are not CiscoLog (kept raw).
    pub not_alarms: u64,
    /// Alarms without a v1 meaning (kept raw), by reason.
    pub ignored: BTreeMap<String, u64>,
    /// Malformed alarms (rejects file).
    pub malformed: u64,
    /// Events the validation refused (a bug if ever non-zero).
    pub rejected: u64,
    /// Messages missing by SEQNUM gaps per (node, application): lost on the way.
    pub sequence_gaps: u64,
    /// Alarms whose `ClusterID` is not the configured cluster.
    pub cluster_id_mismatches: u64,
    /// The last error (appends, side files).
    pub last_error: Option<String>,
}

struct Msg {
    text: String,
    peer: SocketAddr,
    at: DateTime<Utc>,
}

/// A running receiver.
pub struct SyslogReceiver {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    processor: Option<JoinHandle<Result<(), CucmError>>>,
    status: Arc<Mutex<SyslogStatus>>,
    bound: Vec<String>,
}

/// Heartbeat period while the sockets are bound.
const HEARTBEAT: Duration = Duration::from_secs(30);
/// Longest a received event waits before it is appended.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Events per append at most.
const BATCH: usize = 8192;
/// Dedupe keys remembered at most (a flood of 100,000 alarms a second still covers 10 s).
const MAX_DEDUPE_KEYS: usize = 1 << 20;
/// The longest message taken over TCP (CiscoLog's own limit is 800 octets).
const MAX_MESSAGE: usize = 1 << 20;
/// Messages waiting between the sockets and the processor.
const QUEUE: usize = 1 << 17;

impl SyslogReceiver {
    /// Binds every listener and starts receiving into `out`.
    pub fn start(
        cfg: SyslogConfig,
        clock: Arc<dyn Clock>,
        out: Arc<dyn Appender>,
    ) -> Result<SyslogReceiver, CucmError> {
        if cfg.listen.is_empty() {
            return Err(CucmError::Config(
                "no listen address (udp://ADDR:PORT or tcp://ADDR:PORT)".into(),
            ));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = sync_channel::<Msg>(QUEUE);
        let status = Arc::new(Mutex::new(SyslogStatus::default()));
        let mut threads = Vec::new();
        let mut bound = Vec::new();
        for l in &cfg.listen {
            let (proto, addr) = l.split_once("://").ok_or_else(|| {
                CucmError::Config(format!("`{l}`: give udp://ADDR:PORT or tcp://ADDR:PORT"))
            })?;
            let bind_err =
                |e: std::io::Error| CucmError::Config(format!("cannot listen on {l}: {e}"));
            match proto {
                "udp" => {
                    let (sock, granted) =
                        udp_socket(addr, cfg.udp_buffer_bytes).map_err(bind_err)?;
                    bound.push(format!("udp://{}", sock.local_addr().map_err(bind_err)?));
                    status
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .udp_buffer_bytes = granted;
                    let (tx, stop) = (tx.clone(), stop.clone());
                    threads.push(std::thread::spawn(move || udp_loop(&sock, &tx, &stop)));
                }
                "tcp" => {
                    let listener = TcpListener::bind(addr).map_err(bind_err)?;
                    listener.set_nonblocking(true).map_err(bind_err)?;
                    bound.push(format!(
                        "tcp://{}",
                        listener.local_addr().map_err(bind_err)?
                    ));
                    let (tx, stop) = (tx.clone(), stop.clone());
                    threads.push(std::thread::spawn(move || tcp_loop(&listener, &tx, &stop)));
                }
                _ => {
                    return Err(CucmError::Config(format!(
                        "`{l}`: the protocol must be udp or tcp"
                    )));
                }
            }
        }
        drop(tx);
        status.lock().unwrap_or_else(|p| p.into_inner()).listening = bound.clone();
        let mut p = Processor {
            outbox: Outbox::open(&cfg.source, &cfg.cluster, &cfg.seq_file)?,
            raw: SideFile::new(cfg.raw_file.clone(), cfg.side_file_bytes),
            rejects: SideFile::new(cfg.rejects_file.clone(), cfg.side_file_bytes),
            seen: HashMap::new(),
            expiry: VecDeque::new(),
            last_seq: HashMap::new(),
            status: status.clone(),
            next_heartbeat: clock.now(),
            clock,
            out,
            cfg,
        };
        let stop2 = stop.clone();
        let processor = std::thread::spawn(move || p.run(&rx, &stop2));
        Ok(SyslogReceiver {
            stop,
            threads,
            processor: Some(processor),
            status,
            bound,
        })
    }

    /// The bound addresses (`udp://127.0.0.1:5514`, …).
    pub fn bound(&self) -> &[String] {
        &self.bound
    }

    /// A handle on the status, readable while it runs.
    pub fn status_handle(&self) -> Arc<Mutex<SyslogStatus>> {
        self.status.clone()
    }

    /// The status now.
    pub fn status(&self) -> SyslogStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Stops listening, processes what was received and appends it.
    pub fn stop(mut self) -> Result<SyslogStatus, CucmError> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Some(p) = self.processor.take() {
            p.join()
                .map_err(|_| CucmError::Config("the syslog processor panicked".into()))??;
        }
        Ok(self.status())
    }
}

fn udp_socket(addr: &str, buffer: usize) -> std::io::Result<(UdpSocket, usize)> {
    use socket2::{Domain, Protocol, Socket, Type};
    let addr: SocketAddr = addr
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{e}")))?;
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // the kernel caps the size at net.core.rmem_max (docs/cucm.md)
    let _ = s.set_recv_buffer_size(buffer);
    s.bind(&addr.into())?;
    let granted = s.recv_buffer_size().unwrap_or(0);
    let sock: UdpSocket = s.into();
    sock.set_read_timeout(Some(Duration::from_millis(200)))?;
    Ok((sock, granted))
}

fn udp_loop(sock: &UdpSocket, tx: &SyncSender<Msg>, stop: &AtomicBool) {
    let mut buf = vec![0u8; 65_536];
    let mut drain = Drain::default();
    loop {
        if drain.over(stop) {
            return;
        }
        match sock.recv_from(&mut buf) {
            Ok((n, peer)) => {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                if tx
                    .send(Msg {
                        text,
                        peer,
                        at: Utc::now(),
                    })
                    .is_err()
                {
                    return;
                }
            }
            // stopping: only once what the socket holds has been taken
            Err(e) if is_timeout(&e) => {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "syslog UDP receive failed");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn tcp_loop(listener: &TcpListener, tx: &SyncSender<Msg>, stop: &Arc<AtomicBool>) {
    let mut conns = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((s, peer)) => {
                let (tx, stop) = (tx.clone(), stop.clone());
                conns.push(std::thread::spawn(move || tcp_conn(s, peer, &tx, &stop)));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                tracing::warn!(error = %e, "syslog TCP accept failed");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    for c in conns {
        let _ = c.join();
    }
}

/// One TCP connection: each message is octet-counted (`LEN SP MSG`, RFC 6587) when it starts
/// with a digit, else newline framed.
fn tcp_conn(s: TcpStream, peer: SocketAddr, tx: &SyncSender<Msg>, stop: &AtomicBool) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let mut r = BufReader::with_capacity(1 << 16, s);
    let mut pending: Vec<u8> = Vec::new();
    let mut drain = Drain::default();
    loop {
        if drain.over(stop) {
            return;
        }
        // stopping: once the sender is quiet (what the socket holds has been taken)
        let first = match r.fill_buf() {
            Ok([]) => return,
            Ok(b) => b[0],
            Err(e) if is_timeout(&e) => {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                continue;
            }
            Err(_) => return,
        };
        pending.clear();
        let complete = if first.is_ascii_digit() && first != b'0' {
            // LEN SP MSG
            let mut len = Vec::new();
            read_until_retrying(&mut r, b' ', &mut len, 8, stop)
                && std::str::from_utf8(&len[..len.len().saturating_sub(1)])
                    .ok()
                    .and_then(|l| l.parse::<usize>().ok())
                    .filter(|&n| n <= MAX_MESSAGE)
                    .is_some_and(|n| {
                        pending.resize(n, 0);
                        read_exact_retrying(&mut r, &mut pending, stop)
                    })
        } else {
            // a line longer than any message: what came is passed on (it reads as truncated),
            // the connection closed (its framing cannot be trusted)
            read_until_retrying(&mut r, b'\n', &mut pending, MAX_MESSAGE, stop)
        };
        if !pending.is_empty() {
            let text = String::from_utf8_lossy(&pending)
                .trim_end_matches(['\n', '\r'])
                .to_string();
            if !text.is_empty()
                && tx
                    .send(Msg {
                        text,
                        peer,
                        at: Utc::now(),
                    })
                    .is_err()
            {
                return;
            }
        }
        if !complete {
            return;
        }
    }
}

/// How long a listener goes on taking what its socket holds after the stop: a sender that
/// never pauses cannot hold the shutdown.
#[derive(Default)]
struct Drain(Option<Instant>);

impl Drain {
    fn over(&mut self, stop: &AtomicBool) -> bool {
        if !stop.load(Ordering::Relaxed) {
            return false;
        }
        self.0.get_or_insert_with(Instant::now).elapsed() > Duration::from_secs(2)
    }
}

/// A read that timed out (the sockets' read timeout lets the loops look at the stop flag).
fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// Reads up to `delim` (included), at most `max` bytes: `false` at the end of the stream, on
/// an error, when stopping, or when `max` bytes came without `delim`.
fn read_until_retrying(
    r: &mut impl BufRead,
    delim: u8,
    out: &mut Vec<u8>,
    max: usize,
    stop: &AtomicBool,
) -> bool {
    loop {
        let room = (max - out.len().min(max)) as u64;
        if room == 0 {
            return false;
        }
        match r.by_ref().take(room).read_until(delim, out) {
            Ok(0) => return false,
            Ok(_) if out.last() == Some(&delim) => return true,
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {
                if stop.load(Ordering::Relaxed) {
                    return false;
                }
            }
            Err(_) => return false,
        }
    }
}

fn read_exact_retrying(r: &mut impl Read, buf: &mut [u8], stop: &AtomicBool) -> bool {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => return false,
            Ok(n) => got += n,
            Err(e) if is_timeout(&e) => {
                if stop.load(Ordering::Relaxed) {
                    return false;
                }
            }
            Err(_) => return false,
        }
    }
    true
}

type DedupeKey = (String, String, u64, String, String);

struct Processor {
    cfg: SyslogConfig,
    out: Arc<dyn Appender>,
    outbox: Outbox,
    raw: SideFile,
    rejects: SideFile,
    seen: HashMap<DedupeKey, DateTime<Utc>>,
    expiry: VecDeque<(DateTime<Utc>, DedupeKey)>,
    last_seq: HashMap<(String, String), u64>,
    status: Arc<Mutex<SyslogStatus>>,
    clock: Arc<dyn Clock>,
    next_heartbeat: DateTime<Utc>,
}

impl Processor {
    fn with_status(&self, f: impl FnOnce(&mut SyslogStatus)) {
        f(&mut self.status.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn run(&mut self, rx: &Rx<Msg>, stop: &AtomicBool) -> Result<(), CucmError> {
        let mut last_flush = Instant::now();
        loop {
            self.heartbeats();
            match rx.recv_timeout(FLUSH_EVERY) {
                Ok(m) => self.handle(m),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return self.flush();
                }
            }
            if self.outbox.len() >= BATCH || last_flush.elapsed() >= FLUSH_EVERY {
                if let Err(e) = self.flush() {
                    tracing::warn!(error = %e, "appending syslog events failed: kept, retried");
                    self.with_status(|s| s.last_error = Some(e.to_string()));
                }
                last_flush = Instant::now();
            }
            if stop.load(Ordering::Relaxed) && self.outbox.is_empty() {
                // the listeners are stopping: drain what they sent, then end
                while let Ok(m) = rx.recv_timeout(Duration::from_millis(300)) {
                    self.handle(m);
                }
                return self.flush();
            }
        }
    }

    /// A heartbeat for every 30 s the sockets have been bound, including those the processor
    /// spent busy (a stalled append): the sockets were receiving all along. After a gap of
    /// more than a week (a clock set forward) it starts again from now.
    fn heartbeats(&mut self) {
        let now = self.clock.now();
        let step = chrono::Duration::from_std(HEARTBEAT).unwrap_or_default();
        if now - self.next_heartbeat > chrono::Duration::days(7) {
            self.next_heartbeat = now;
        }
        while self.next_heartbeat <= now {
            let time = self.next_heartbeat;
            self.push(Pending {
                time,
                body: Body::CollectorHeartbeat,
                extra: Map::new(),
            });
            self.next_heartbeat = time + step;
        }
    }

    fn push(&mut self, p: Pending) {
        if let Err(e) = self.outbox.push(p) {
            tracing::error!(error = %e, "no sequence number: event dropped");
            self.with_status(|s| s.last_error = Some(e.to_string()));
        }
    }

    fn flush(&mut self) -> Result<(), CucmError> {
        let r = self.outbox.flush_blocking(&self.out);
        let (raw, rej) = (self.raw.flush(), self.rejects.flush());
        let f = r?;
        self.with_status(|s| {
            s.events += f.stored as u64;
            s.rejected += f.rejected as u64;
        });
        raw.and(rej)
            .map_err(|e| CucmError::Config(format!("side file: {e}")))
    }

    fn side(&mut self, rejects: bool, m: &Msg, reason: &str) {
        let rec = raw_record(&m.text, &m.peer.to_string(), reason);
        let f = if rejects {
            &mut self.rejects
        } else {
            &mut self.raw
        };
        if let Err(e) = f.write(m.at, rec) {
            self.with_status(|s| s.last_error = Some(format!("side file: {e}")));
        }
    }

    fn handle(&mut self, m: Msg) {
        self.with_status(|s| s.messages += 1);
        let alarm = match parse(&m.text, m.at) {
            Line::Alarm(a) => a,
            Line::Other => {
                self.with_status(|s| s.not_alarms += 1);
                self.side(false, &m, "not a CiscoLog alarm");
                return;
            }
            Line::Malformed(why) => {
                self.with_status(|s| s.malformed += 1);
                self.side(true, &m, &why);
                return;
            }
        };
        self.with_status(|s| s.alarms += 1);
        let who = node_of(&alarm).unwrap_or_else(|| m.peer.ip().to_string());
        // duplicates: two destinations or a relay sending the same frame again
        while self.expiry.front().is_some_and(|(t, _)| {
            *t < m.at - chrono::Duration::from_std(self.cfg.dedupe_window).unwrap_or_default()
        }) {
            let (_, k) = self.expiry.pop_front().expect("peeked");
            self.seen.remove(&k);
        }
        let key = (
            who.clone(),
            alarm.app.clone(),
            alarm.seqnum,
            alarm.stamp_text.clone(),
            alarm.name.clone(),
        );
        if self.seen.contains_key(&key) {
            self.with_status(|s| s.duplicates += 1);
            return;
        }
        self.seen.insert(key.clone(), m.at);
        self.expiry.push_back((m.at, key));
        // a flood cannot make the window hold more than this many keys (the oldest go first;
        // duplicate frames come seconds apart, not minutes)
        while self.expiry.len() > MAX_DEDUPE_KEYS {
            let (_, k) = self.expiry.pop_front().expect("non-empty");
            self.seen.remove(&k);
        }
        // SEQNUM gaps per (node, application): messages lost on the way (0 = a restart)
        let last = self.last_seq.insert((who, alarm.app.clone()), alarm.seqnum);
        if let Some(l) = last
            && alarm.seqnum > l + 1
        {
            let gap = alarm.seqnum - l - 1;
            self.with_status(|s| s.sequence_gaps += gap);
        }
        if alarm
            .tag("clusterid")
            .is_some_and(|c| c != self.cfg.cluster)
        {
            self.with_status(|s| s.cluster_id_mismatches += 1);
        }
        match map(&alarm, &self.cfg.cti_users) {
            Mapped::Event(p) => self.push(p),
            Mapped::Ignored(why) => {
                self.with_status(|s| *s.ignored.entry(why.clone()).or_insert(0) += 1);
                self.side(false, &m, &why);
            }
        }
    }
}
