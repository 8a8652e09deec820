//! The shell: listeners, one task per association moving PDUs between the
//! socket and its [`Association`], the keep-alive timer, and topology
//! reloads.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nvmf_proto::tcp::{pdu_type, CommonHeader, Digests, Pdu, COMMON_HEADER_LEN, MAX_PDU_LEN};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::association::{Association, Output};
use crate::dc::Dc;
use crate::state::Recorder;
use crate::topology::{DcSpec, Topology};

/// Why the simulator could not serve a topology.
#[derive(Debug, Error)]
pub enum SimError {
    /// A listening socket could not be opened.
    #[error("{dc}: cannot listen on {addr}: {source} (is the address configured here, and the port free?)")]
    Listen {
        /// The DC.
        dc: String,
        /// Its address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Why reading a PDU from a host ended the association.
#[derive(Debug, Error)]
enum ReadPduError {
    /// The host closed the connection.
    #[error("the host closed the connection")]
    Closed,
    /// The socket failed.
    #[error("reading from the host: {0}")]
    Io(#[source] std::io::Error),
    /// The common header does not parse, or does not fit the digests in use.
    #[error("bad PDU header: {0}")]
    Header(#[source] nvmf_proto::ProtoError),
    /// The header claims a length out of range.
    #[error("PDU type {pdu_type:#04x} claims {plen} bytes; {COMMON_HEADER_LEN} to {MAX_PDU_LEN} accepted")]
    Length {
        /// The PDU type.
        pdu_type: u8,
        /// The length it claims.
        plen: u32,
    },
    /// The first PDU is not an ICReq.
    #[error("PDU type {0:#04x} before ICReq: not an NVMe/TCP host")]
    BeforeIcReq(u8),
    /// The PDU does not parse.
    #[error("bad PDU from the host: {0}")]
    Pdu(#[source] nvmf_proto::ProtoError),
}

impl From<std::io::Error> for ReadPduError {
    fn from(e: std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::UnexpectedEof => Self::Closed,
            _ => Self::Io(e),
        }
    }
}

/// Answers queued for one host beyond which its association is closed.
const MAX_QUEUED: usize = 8 << 20;

struct Running {
    dc: Arc<Dc>,
    local: SocketAddr,
    accept: JoinHandle<()>,
}

/// The simulated discovery controllers of one topology.
pub struct Simulator {
    running: HashMap<String, Running>,
    recorder: Arc<Recorder>,
    ids: Arc<AtomicU64>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("dcs", &self.listening())
            .finish()
    }
}

impl Simulator {
    /// Opens every DC's listening socket and starts serving.
    pub async fn start(topology: &Topology, recorder: Arc<Recorder>) -> Result<Self, SimError> {
        let mut sim = Self {
            running: HashMap::new(),
            recorder,
            ids: Arc::new(AtomicU64::new(1)),
        };
        sim.apply(topology).await?;
        Ok(sim)
    }

    /// Serves `topology` from now on. New DCs start, removed ones stop
    /// (their associations end), changed ones notify their hosts. If a new
    /// socket cannot be opened nothing changes.
    pub async fn apply(&mut self, topology: &Topology) -> Result<(), SimError> {
        let mut fresh = Vec::new();
        for spec in &topology.dcs {
            let kept = self
                .running
                .get(&spec.name)
                .is_some_and(|r| r.dc.spec().listen == spec.listen);
            if !kept {
                let listener = bind(spec).await?;
                fresh.push((spec.clone(), listener));
            }
        }
        let wanted: HashMap<&str, &DcSpec> =
            topology.dcs.iter().map(|d| (d.name.as_str(), d)).collect();
        let gone: Vec<String> = self
            .running
            .iter()
            .filter(|(name, r)| {
                wanted
                    .get(name.as_str())
                    .is_none_or(|s| s.listen != r.dc.spec().listen)
            })
            .map(|(n, _)| n.clone())
            .collect();
        for name in gone {
            if let Some(r) = self.running.remove(&name) {
                log::info!("{name}: removed; closing its associations");
                r.dc.retire();
                r.accept.abort();
            }
        }
        for r in self.running.values() {
            if let Some(spec) = wanted.get(r.dc.spec().name.as_str()) {
                if **spec != *r.dc.spec() {
                    r.dc.replace((*spec).clone());
                }
            }
        }
        for (spec, listener) in fresh {
            let local = listener.local_addr().unwrap_or(spec.listen);
            log::info!(
                "{}: {} DC listening on {local}",
                spec.name,
                spec.kind.stas_str()
            );
            let name = spec.name.clone();
            let dc = Dc::new(spec, self.recorder.clone());
            let accept = tokio::spawn(accept_loop(listener, dc.clone(), self.ids.clone()));
            self.running.insert(name, Running { dc, local, accept });
        }
        Ok(())
    }

    /// Each DC's name and the address it listens on.
    pub fn listening(&self) -> Vec<(String, SocketAddr)> {
        let mut v: Vec<_> = self
            .running
            .iter()
            .map(|(n, r)| (n.clone(), r.local))
            .collect();
        v.sort();
        v
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        for r in self.running.values() {
            r.dc.retire();
            r.accept.abort();
        }
    }
}

async fn bind(spec: &DcSpec) -> Result<TcpListener, SimError> {
    TcpListener::bind(spec.listen)
        .await
        .map_err(|source| SimError::Listen {
            dc: spec.name.clone(),
            addr: spec.listen,
            source,
        })
}

async fn accept_loop(listener: TcpListener, dc: Arc<Dc>, ids: Arc<AtomicU64>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let id = ids.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(serve(stream, peer, dc.clone(), id));
            }
            Err(e) => {
                log::warn!("{}: accept failed: {e}", dc.name());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads one whole PDU; the digests in use change after ICReq.
async fn read_pdu(
    rd: &mut OwnedReadHalf,
    digests: &mut Digests,
    started: &mut bool,
) -> Result<Pdu, ReadPduError> {
    let mut head = [0u8; COMMON_HEADER_LEN];
    rd.read_exact(&mut head).await?;
    let header = CommonHeader::parse(&head).map_err(ReadPduError::Header)?;
    let plen = usize::try_from(header.plen).unwrap_or(usize::MAX);
    if !(COMMON_HEADER_LEN..=MAX_PDU_LEN).contains(&plen) {
        return Err(ReadPduError::Length {
            pdu_type: header.pdu_type,
            plen: header.plen,
        });
    }
    // Judge the header before allocating what it claims.
    if !*started && header.pdu_type != pdu_type::IC_REQ {
        return Err(ReadPduError::BeforeIcReq(header.pdu_type));
    }
    header.check(*digests).map_err(ReadPduError::Header)?;
    let mut buf = vec![0u8; plen];
    buf[..COMMON_HEADER_LEN].copy_from_slice(&head);
    rd.read_exact(&mut buf[COMMON_HEADER_LEN..]).await?;
    let pdu = Pdu::parse(&buf, *digests).map_err(ReadPduError::Pdu)?;
    if let Pdu::IcReq(r) = &pdu {
        *digests = r.digests;
        *started = true;
    }
    Ok(pdu)
}

async fn serve(stream: TcpStream, peer: SocketAddr, dc: Arc<Dc>, id: u64) {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    // Reading runs in its own task so that a partial PDU is never lost to
    // the select below.
    let (pdu_tx, mut pdus) = mpsc::channel::<Result<Pdu, ReadPduError>>(8);
    let reader = tokio::spawn(async move {
        let (mut digests, mut started) = (Digests::default(), false);
        loop {
            let r = read_pdu(&mut rd, &mut digests, &mut started).await;
            let end = r.is_err();
            if pdu_tx.send(r).await.is_err() || end {
                break;
            }
        }
    });
    let (out_tx, mut out) = mpsc::unbounded_channel::<Vec<u8>>();
    // Bytes answered but not yet written: a host that stops reading must
    // not make the simulator buffer without bound.
    let queued = Arc::new(AtomicUsize::new(0));
    let written = queued.clone();
    let mut writer = tokio::spawn(async move {
        while let Some(bytes) = out.recv().await {
            let n = bytes.len();
            if wr.write_all(&bytes).await.is_err() {
                break;
            }
            written.fetch_sub(n, Ordering::Relaxed);
        }
        let _ = wr.shutdown().await;
    });
    let mut delayed = tokio::task::JoinSet::new();
    let mut a = Association::new(id, dc.clone(), peer.to_string());
    let mut changes = dc.subscribe();
    let mut deadline: Option<Instant> = None;
    let reason = 'run: loop {
        // Accepted just before the DC was removed: subscribing marked that
        // change as seen.
        if dc.is_retired() {
            break 'run "the DC was removed from the topology".to_owned();
        }
        let outputs = tokio::select! {
            m = pdus.recv() => match m {
                Some(Ok(p)) => a.on_pdu(p),
                Some(Err(e)) => break 'run e.to_string(),
                None => break 'run "the reader stopped".to_owned(),
            },
            r = changes.changed() => match r {
                Ok(()) => a.on_change(),
                Err(_) => break 'run "the simulator stopped".to_owned(),
            },
            () = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                let ms = a.kato().map_or(0, |k| k.as_millis());
                break 'run format!("keep-alive timeout: no Keep Alive within KATO ({ms} ms)");
            }
        };
        for o in outputs {
            match o {
                Output::Send { pdus, after } => {
                    let mut bytes = Vec::new();
                    for p in &pdus {
                        match p.emit(a.digests()) {
                            Ok(b) => bytes.extend(b),
                            Err(e) => break 'run format!("cannot emit a {}: {e}", p.type_name()),
                        }
                    }
                    let pending = queued.fetch_add(bytes.len(), Ordering::Relaxed) + bytes.len();
                    if pending > MAX_QUEUED {
                        break 'run format!(
                            "the host is not reading: {pending} bytes of answers queued, more than {MAX_QUEUED}"
                        );
                    }
                    if after.is_zero() {
                        let _ = out_tx.send(bytes);
                    } else {
                        let tx = out_tx.clone();
                        delayed.spawn(async move {
                            tokio::time::sleep(after).await;
                            let _ = tx.send(bytes);
                        });
                    }
                }
                Output::Alive => deadline = a.kato().map(|k| Instant::now() + k),
                Output::Close(why) => break 'run why,
            }
        }
    };
    let hostnqn = a.hostnqn().to_owned();
    log::info!(
        "{}: association {id} from {peer} ({hostnqn}) ended: {reason}",
        dc.name()
    );
    a.closed(&reason);
    reader.abort();
    delayed.abort_all();
    drop(out_tx);
    // Let what was answered reach the host before the socket closes, but
    // not wait on a host that does not read.
    if tokio::time::timeout(Duration::from_secs(1), &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
}
