//! The status of the collectors running inside `serve`, as `/metrics` samples: a poller's
//! cycles, requests, faults and node gaps; a syslog receiver's messages, losses and drops.

use std::sync::{Arc, Mutex};

use callstate_cucm::PollerStatus;
use callstate_cucm::syslog::SyslogStatus;
use callstate_server::metrics::{Sample, SampleSource};

fn sample(name: &str, help: &str, counter: bool, labels: &[(&str, &str)], value: f64) -> Sample {
    Sample {
        name: name.to_string(),
        help: help.to_string(),
        counter,
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        value,
    }
}

/// A RisPort poller's samples.
pub fn poller(cluster: String, status: Arc<Mutex<PollerStatus>>) -> SampleSource {
    Arc::new(move || {
        let s = status.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let c = [("cluster", cluster.as_str())];
        let mut out = vec![
            sample(
                "risport_cycles",
                "RisPort poll cycles completed",
                true,
                &c,
                s.cycles as f64,
            ),
            sample(
                "risport_requests",
                "RisPort requests sent",
                true,
                &c,
                s.risport_requests as f64,
            ),
            sample(
                "risport_rate_faults",
                "RisPort Server.RateControl faults",
                true,
                &c,
                s.rate_faults as f64,
            ),
            sample(
                "risport_errors",
                "RisPort poll cycles failed (other than rate faults)",
                true,
                &c,
                s.errors as f64,
            ),
            sample(
                "risport_events",
                "Events the poller appended",
                true,
                &c,
                s.events as f64,
            ),
            sample(
                "risport_devices_watched",
                "Devices in the poller's inventory",
                false,
                &c,
                s.watched as f64,
            ),
            sample(
                "risport_devices_known",
                "Devices whose registration the poller knows",
                false,
                &c,
                s.known as f64,
            ),
            sample(
                "risport_max_cycle_gap_seconds",
                "Longest time between two poll cycles' starts",
                false,
                &c,
                s.max_cycle_gap_s,
            ),
        ];
        if let Some(t) = s.last_cycle {
            out.push(sample(
                "risport_last_cycle_timestamp_seconds",
                "When the last poll cycle completed",
                false,
                &c,
                t.timestamp() as f64,
            ));
        }
        let mut nodes: Vec<(&str, bool)> = Vec::new();
        for g in &s.node_gaps {
            match nodes.iter_mut().find(|(n, _)| *n == g.node) {
                Some(n) => n.1 = g.to.is_none(),
                None => nodes.push((&g.node, g.to.is_none())),
            }
        }
        for (node, open) in nodes {
            out.push(sample(
                "risport_node_not_responding",
                "1 while a node's RisPort part is missing (its devices keep their last state)",
                false,
                &[("cluster", cluster.as_str()), ("node", node)],
                f64::from(u8::from(open)),
            ));
        }
        out
    })
}

/// A syslog receiver's samples.
pub fn syslog(cluster: String, status: Arc<Mutex<SyslogStatus>>) -> SampleSource {
    Arc::new(move || {
        let s = status.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let c = [("cluster", cluster.as_str())];
        vec![
            sample(
                "syslog_messages",
                "Syslog messages received",
                true,
                &c,
                s.messages as f64,
            ),
            sample(
                "syslog_alarms",
                "CiscoLog alarms received",
                true,
                &c,
                s.alarms as f64,
            ),
            sample(
                "syslog_duplicates",
                "Alarms dropped as duplicate frames",
                true,
                &c,
                s.duplicates as f64,
            ),
            sample(
                "syslog_events",
                "Events the receiver appended",
                true,
                &c,
                s.events as f64,
            ),
            sample(
                "syslog_not_alarms",
                "Lines that are not CiscoLog (kept raw)",
                true,
                &c,
                s.not_alarms as f64,
            ),
            sample(
                "syslog_malformed",
                "Unreadable alarms (rejects file)",
                true,
                &c,
                s.malformed as f64,
            ),
            sample(
                "syslog_sequence_gaps",
                "Messages missing by SEQNUM gaps: lost on the way",
                true,
                &c,
                s.sequence_gaps as f64,
            ),
            sample(
                "syslog_udp_buffer_bytes",
                "The UDP receive buffer the kernel granted",
                false,
                &c,
                s.udp_buffer_bytes as f64,
            ),
        ]
    })
}
